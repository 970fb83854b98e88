"""The feedback loop's figures: calibration by hand, adoption counts, uplift on a known log."""

from __future__ import annotations

import math

import numpy as np
import pytest

from environment.actions import N_ACTIONS
from policies.exploration import LogConfig, simulate_log
from policies.feedback import (
    adoption_report,
    brier_score,
    calibration_report,
    expected_calibration_error,
    reliability_table,
    uplift_report,
)
from policies.registry import load_policy


def test_calibration_by_hand() -> None:
    confidences = [0.05, 0.15, 0.95, 0.95, 1.0]
    outcomes = [0, 1, 1, 1, 0]
    table = reliability_table(confidences, outcomes, n_bins=10)
    assert [row["count"] for row in table] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert table[9]["mean_confidence"] == pytest.approx((0.95 + 0.95 + 1.0) / 3)
    assert table[9]["outcome_rate"] == pytest.approx(2 / 3)
    assert math.isnan(table[2]["outcome_rate"])
    # Brier: (0.05^2 + 0.85^2 + 0.05^2 + 0.05^2 + 1) / 5
    assert brier_score(confidences, outcomes) == pytest.approx(
        (0.0025 + 0.7225 + 0.0025 + 0.0025 + 1.0) / 5
    )
    # ECE: (1 * 0.05 + 1 * 0.85 + 3 * |0.9667 - 0.6667|) / 5
    assert expected_calibration_error(confidences, outcomes) == pytest.approx(
        (0.05 + 0.85 + 3 * abs((2.9 / 3) - (2 / 3))) / 5
    )
    assert expected_calibration_error([0.7] * 10, [1] * 7 + [0] * 3) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("confidences", "outcomes", "message"),
    [([1.1], [1], "in \\[0, 1\\]"), ([0.5], [2], "0 or 1"), ([0.5, 0.5], [1], "one length")],
)
def test_calibration_rejects_bad_input(
    confidences: list[float], outcomes: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        brier_score(confidences, outcomes)


def test_adoption_counts_by_action_and_bucket() -> None:
    report = adoption_report(
        [
            ("price_increase", 0.9, "approved"),
            ("price_increase", 0.85, "rejected"),
            ("price_increase", 0.81, "expired"),
            ("price_increase", 0.2, "pending"),
        ]
    )
    high = report["price_increase"]["0.8-1"]
    assert (high["approved"], high["rejected"], high["expired"]) == (1.0, 1.0, 1.0)
    assert high["approval_rate"] == pytest.approx(1 / 3)
    assert math.isnan(report["price_increase"]["0.2-0.4"]["approval_rate"])
    with pytest.raises(ValueError, match="unknown status 'maybe'"):
        adoption_report([("noop", 0.5, "maybe")])


def test_uplift_and_calibration_on_a_simulated_log() -> None:
    records = simulate_log(
        load_policy("random"), LogConfig(scenarios=("steady",), seeds=(0,), explore=1.0, steps=200)
    )
    uplift = uplift_report(records, n_bootstrap=100)
    assert len(uplift) == N_ACTIONS - 1
    for row in uplift.values():
        assert row["low"] <= row["uplift"] <= row["high"]
        assert 1.0 <= row["ess"] <= 200.0
    report = calibration_report(records)
    assert report["n"] == sum(r.action != "noop" for r in records)
    assert 0.0 <= report["brier"] <= 1.0 and 0.0 <= report["ece"] <= 1.0
    assert np.isclose(sum(row["count"] for row in report["table"]), report["n"])
