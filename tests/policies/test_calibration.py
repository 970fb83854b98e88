"""Isotonic calibration of confidence onto P(executing beats holding)."""

from __future__ import annotations

import numpy as np
import pytest

from environment.actions import action_index
from policies.calibration import Calibration, IsotonicMap, fit_calibration, fit_isotonic


def test_pool_adjacent_violators_on_a_known_case() -> None:
    # Outcomes 1, 0, 1, 1 at rising confidence: the violating pair (1, 0) pools to 0.5.
    mapping = fit_isotonic(np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, 0.0, 1.0, 1.0]))
    assert mapping.upper == (0.2, 0.4)
    assert mapping.rate == (0.5, 1.0)
    np.testing.assert_allclose(mapping(np.array([0.0, 0.2, 0.25, 0.4, 0.9])), [0.5, 0.5, 1, 1, 1])


def test_the_map_is_non_decreasing_and_matches_the_outcome_rates() -> None:
    rng = np.random.default_rng(0)
    raw = rng.random(2_000)
    truth = 0.2 + 0.6 * raw  # a well-ordered but miscalibrated confidence
    outcomes = (rng.random(2_000) < truth).astype(float)
    mapping = fit_isotonic(raw, outcomes)
    grid = np.linspace(0, 1, 101)
    assert (np.diff(mapping(grid)) >= 0).all()
    # Pooling preserves the mean outcome exactly.
    assert mapping(raw).mean() == pytest.approx(outcomes.mean(), abs=1e-12)
    assert mapping(np.array([0.5]))[0] == pytest.approx(0.5, abs=0.08)


def test_ties_pool_before_they_are_compared() -> None:
    mapping = fit_isotonic(np.array([0.5, 0.5, 0.5]), np.array([1.0, 0.0, 0.0]))
    assert mapping.rate == pytest.approx((1 / 3,))


def test_actions_with_enough_samples_get_their_own_map() -> None:
    retry, fix = action_index("payment_retry"), action_index("data_fix")
    actions = np.array([retry] * 20 + [fix] * 19)
    confidences = np.full(39, 0.9)
    outcomes = np.array([1.0] * 20 + [0.0] * 19)
    calibration = fit_calibration(actions, confidences, outcomes, min_samples=20)
    assert set(calibration.per_action) == {"payment_retry"}
    out = calibration.apply(np.array([retry, fix]), np.array([0.9, 0.9]))
    assert out[0] == pytest.approx(1.0)
    assert out[1] == pytest.approx(20 / 39)  # the pooled map
    at_the_limit = fit_calibration(actions, confidences, outcomes, min_samples=19)
    assert set(at_the_limit.per_action) == {"payment_retry", "data_fix"}


def test_a_calibration_survives_json() -> None:
    calibration = fit_calibration(
        np.array([1, 1, 2, 2]),
        np.array([0.2, 0.8, 0.3, 0.6]),
        np.array([0, 1, 1, 1.0]),
        min_samples=2,
    )
    again = Calibration.from_dict(calibration.to_dict())
    assert again == calibration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"actions": [], "confidences": [], "outcomes": []}, "at least one decision"),
        ({"actions": [13], "confidences": [0.5], "outcomes": [1.0]}, r"in \[0, 12\]"),
        ({"actions": [1, 2], "confidences": [0.5], "outcomes": [1.0]}, "one length"),
    ],
)
def test_bad_evidence_is_refused(kwargs: dict[str, list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_calibration(*(np.asarray(kwargs[k]) for k in ("actions", "confidences", "outcomes")))


def test_malformed_maps_are_refused() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        IsotonicMap((0.1, 0.5), (0.9, 0.2))
    with pytest.raises(ValueError, match="unknown actions"):
        Calibration(IsotonicMap((1.0,), (0.5,)), {"sell_company": IsotonicMap((1.0,), (0.5,))})
    with pytest.raises(ValueError, match="malformed calibration"):
        Calibration.from_dict({"per_action": {}})
