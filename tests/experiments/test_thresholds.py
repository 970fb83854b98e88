"""Confidence thresholds: the optimizer's maths, the file the guardrails read, the command."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from agent.guardrails import Governance, GuardContext, Verdict, evaluate_decision
from agent.settings import CHAMPION_URI, get_settings
from agent.thresholds_file import read_thresholds
from environment.actions import ACTION_NAMES, action_index
from experiments.models import CHAMPION, log_policy_model, set_alias
from experiments.thresholds import (
    EVALUATION_SEED_START,
    DecisionSamples,
    ThresholdsFile,
    best_threshold,
    calibration_of,
    collect_decisions,
    optimal_thresholds,
    run_thresholds,
    write_thresholds,
)
from experiments.tracking import Tracking, start_run
from policies.registry import load_policy
from policies.rules import calibrated_rules
from tests.experiments.conftest import TINY_SCENARIOS


def test_best_threshold_executes_exactly_the_profitable_confident_decisions() -> None:
    # Confident decisions help, unsure ones hurt: the cut is at 0.7.
    confidences = np.array([0.9, 0.8, 0.7, 0.5, 0.3, 0.2])
    values = np.array([2.0, 1.0, 0.5, -1.0, -2.0, 0.1])
    threshold, value = best_threshold(confidences, values)
    assert threshold == 0.7
    assert value == pytest.approx(3.5 / 6)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([-1.0, -2.0, -0.5]), math.inf),  # every decision hurts: hold them all
        (np.array([1.0, 2.0, 0.5]), 0.2),  # every decision helps: execute all
        (np.array([0.0, 0.0, 0.0]), math.inf),  # no value either way: prefer holding
    ],
)
def test_best_threshold_extremes(values: np.ndarray, expected: float) -> None:
    threshold, _ = best_threshold(np.array([0.9, 0.5, 0.2]), values)
    assert threshold == expected


def test_tied_confidences_execute_together() -> None:
    # Two decisions at 0.5 worth +3 and -1: a threshold cannot split them.
    threshold, value = best_threshold(np.array([0.5, 0.5, 0.9]), np.array([3.0, -1.0, -0.5]))
    assert threshold == 0.5
    assert value == pytest.approx(1.5 / 3)


def test_the_optimum_beats_every_other_threshold_on_random_data() -> None:
    rng = np.random.default_rng(1)
    confidences = rng.uniform(size=200)
    values = rng.normal(confidences - 0.5, 1.0)
    threshold, value = best_threshold(confidences, values)
    for t in np.linspace(0, 1, 101):
        assert np.mean(values * (confidences >= t)) <= value + 1e-12
    assert np.mean(values * (confidences >= threshold)) == pytest.approx(value)


def _samples(action: str, n: int) -> DecisionSamples:
    rng = np.random.default_rng(0)
    return DecisionSamples(
        np.full(n, action_index(action), dtype=np.int64),
        rng.uniform(size=n),
        rng.normal(size=n),
    )


def test_too_few_samples_keep_the_guardrail_default() -> None:
    chosen = optimal_thresholds(_samples("data_fix", 4), min_samples=5)
    assert chosen["data_fix"].threshold is None
    assert "fewer than 5" in chosen["data_fix"].reason
    assert "noop" not in chosen
    assert set(chosen) == set(ACTION_NAMES) - {"noop"}


def test_file_round_trip_and_the_guardrails_use_it(tmp_path: Path) -> None:
    chosen = optimal_thresholds(_samples("data_fix", 50), min_samples=10)
    chosen["payment_retry"] = type(chosen["data_fix"])("payment_retry", 30, math.inf)
    document = ThresholdsFile(chosen, "rules", "1", ("steady",), (1000,), 24, 6, "run")
    path = write_thresholds(document, tmp_path / "guardrails" / "thresholds.yaml")
    loaded = read_thresholds(path)
    assert loaded == document.guardrail_thresholds()
    assert loaded["payment_retry"] == math.inf
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert raw["version"] == 1 and raw["evidence"]["ship_feature"]["threshold"] is None

    # payment_retry with threshold inf always needs approval in the agent's guardrails.
    verdict = evaluate_decision(
        action_index("payment_retry"), 1.0, Governance(), loaded, GuardContext(now=_now())
    )
    assert verdict.verdict == Verdict.NEEDS_APPROVAL and verdict.rule == "confidence"


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("version: 2\nthresholds: {}\n", "version: 1"),
        ("version: 1\nthresholds: {teleport: 0.5}\n", "unknown action 'teleport'"),
        ("version: 1\nthresholds: {noop: 0.5}\n", "unknown action 'noop'"),
        (
            "version: 1\nthresholds: {data_fix: 1.5}\n",
            r"data_fix=1\.5 must be a number in \[0, 1\]",
        ),
        ("version: 1\nthresholds: {data_fix: high}\n", "data_fix='high'"),
        ("version: 1\nthresholds: [1, 2]\n", "'thresholds' must be a mapping"),
        (": : :\n", "not valid YAML"),
    ],
)
def test_bad_threshold_files_are_rejected(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        read_thresholds(path)


def test_thresholds_command_logs_and_writes_the_file(tracking: Tracking) -> None:
    document = run_thresholds(
        "rules", scenarios=TINY_SCENARIOS, seeds=1, stride=12, min_samples=2, tracking=tracking
    )
    path = Path("guardrails/thresholds.yaml")  # the default, in the test's working directory
    assert read_thresholds(path) == document.guardrail_thresholds()
    assert document.guardrail_thresholds(), "rules act often enough to set some thresholds"
    run = tracking.client().get_run(document.mlflow_run_id or "")
    for name, entry in document.thresholds.items():
        assert run.data.params[f"threshold.{name}"] == (
            "none" if entry.threshold is None else str(entry.threshold)
        )
        if entry.threshold is not None:
            assert run.data.metrics[f"expected_value.{name}"] == pytest.approx(entry.expected_value)
    artifacts = [a.path for a in tracking.client().list_artifacts(run.info.run_id, "thresholds")]
    assert artifacts == ["thresholds/thresholds.yaml"]
    assert 0.0 <= run.data.metrics["calibration/ece"] <= 1.0
    assert 0.0 <= run.data.metrics["calibration/brier"] <= 1.0


TINY_RUN: dict[str, Any] = {"scenarios": ("steady",), "seeds": 1, "stride": 12, "min_samples": 2}


def test_without_a_champion_the_thresholds_are_for_what_a_cycle_falls_back_to(
    tracking: Tracking,
) -> None:
    document = run_thresholds(tracking=tracking, **TINY_RUN)
    assert document.policy_name == "rules"
    assert document.policy_note.startswith(f"no champion at {CHAMPION_URI} (")
    assert document.policy_note.endswith("; using rules")
    samples = collect_decisions(
        calibrated_rules(), ("steady",), (EVALUATION_SEED_START,), horizon=24, stride=12
    )
    assert document.thresholds == optimal_thresholds(samples, min_samples=2)
    written = yaml.safe_load(Path("guardrails/thresholds.yaml").read_text())
    assert written["policy"] == {"name": "rules", "version": "1", "note": document.policy_note}
    tags = tracking.client().get_run(document.mlflow_run_id or "").data.tags
    assert tags["policy_note"] == document.policy_note


def test_with_a_champion_the_thresholds_are_the_champions(tracking: Tracking) -> None:
    with start_run(tracking, "thresholds-test", "register"):
        logged = log_policy_model(load_policy("rules"))
    set_alias(tracking, CHAMPION, logged.version or "")
    document = run_thresholds(tracking=tracking, **TINY_RUN)
    assert document.policy_version == f"models:/autopilot-policy/{logged.version}"
    assert document.policy_note == ""
    written = yaml.safe_load(Path("guardrails/thresholds.yaml").read_text())
    assert "note" not in written["policy"]


def test_the_agents_policy_setting_is_the_default(
    tracking: Tracking, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOPILOT_POLICY_URI", "random")
    get_settings.cache_clear()
    try:
        document = run_thresholds(tracking=tracking, **TINY_RUN)
    finally:
        get_settings.cache_clear()
    assert (document.policy_name, document.policy_note) == ("random", "")


def test_a_champion_named_explicitly_must_exist(tracking: Tracking) -> None:
    with pytest.raises(LookupError, match="no registered model 'autopilot-policy'"):
        run_thresholds(CHAMPION_URI, tracking=tracking, **TINY_RUN)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizon": 0}, "horizon=0"),
        ({"stride": -1}, "stride=-1"),
        ({"min_samples": 0}, "min_samples=0"),
        ({"scenarios": ["moon"]}, "unknown scenarios"),
        ({"seeds": 0}, "seeds=0"),
    ],
)
def test_bad_threshold_arguments(tracking: Tracking, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run_thresholds("rules", tracking=tracking, **kwargs)  # type: ignore[arg-type]


def _data_fix_samples(confidences: list[float], values: list[float]) -> DecisionSamples:
    n = len(values)
    return DecisionSamples(
        np.full(n, action_index("data_fix"), dtype=np.int64),
        np.asarray(confidences, dtype=np.float64),
        np.asarray(values, dtype=np.float64),
    )


def test_calibration_reads_confidence_as_the_chance_executing_beats_holding() -> None:
    # 0.25 confident: one of four beats holding (calibrated); 0.95 confident: one of two (not)
    samples = _data_fix_samples([0.25] * 4 + [0.95] * 2, [1.0, -1.0, -2.0, -0.5, 3.0, -3.0])
    report = calibration_of(samples, n_bins=10)
    assert report["n"] == 6
    assert report["beats_holding_rate"] == pytest.approx(2 / 6)
    assert report["mean_confidence"] == pytest.approx((4 * 0.25 + 2 * 0.95) / 6)
    # bins: 0.25 -> [0.2, 0.3) with rate 0.25 (gap 0); 0.95 -> [0.9, 1.0] with rate 0.5
    assert report["ece"] == pytest.approx(2 / 6 * 0.45, abs=1e-12)
    rows = [row for row in report["table"] if row["count"]]
    assert [(row["count"], row["outcome_rate"]) for row in rows] == [(4, 0.25), (2, 0.5)]
    expected_brier = (0.25**2 * 3 + 0.75**2 + 0.05**2 + 0.95**2) / 6
    assert report["brier"] == pytest.approx(expected_brier, abs=1e-12)


def test_a_value_of_exactly_zero_does_not_beat_holding() -> None:
    report = calibration_of(_data_fix_samples([0.5, 0.5], [0.0, 1e-9]))
    assert report["beats_holding_rate"] == pytest.approx(0.5)


def test_calibration_of_no_samples_is_nan() -> None:
    report = calibration_of(_data_fix_samples([], []))
    assert report["n"] == 0 and report["table"] == []
    assert math.isnan(report["ece"]) and math.isnan(report["brier"])
