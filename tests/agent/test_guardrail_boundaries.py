"""Every limit of the guardrails at, just under and just over its boundary, so that turning
any ``<`` into ``<=`` (or ``>`` into ``>=``) in :mod:`agent.guardrails` fails a test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.guardrails import (
    ActionRule,
    Governance,
    GuardContext,
    GuardVerdict,
    Verdict,
    evaluate_decision,
)
from environment.actions import action_index

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TICK = timedelta(seconds=1)
"""Just under / just over a time limit."""
ACTION = "data_fix"
RULE = ActionRule(max_per_day=2, cooldown_hours=3.0, max_rows=100, max_share=0.5)
GOVERNANCE = Governance(rules={**Governance().rules, ACTION: RULE})
THRESHOLD = 0.75
THRESHOLDS = {ACTION: THRESHOLD}


def verdict(
    *,
    confidence: float = 1.0,
    executions: tuple[datetime, ...] = (),
    rows: int = 0,
    population: int = 0,
) -> GuardVerdict:
    context = GuardContext(
        now=NOW,
        dry_run=False,
        executions={ACTION: executions},
        rows=rows,
        population=population,
    )
    return evaluate_decision(action_index(ACTION), confidence, GOVERNANCE, THRESHOLDS, context)


def rule_of(result: GuardVerdict) -> str:
    return result.rule


@pytest.mark.parametrize(
    ("ago", "rule"),
    [
        (timedelta(hours=3) - TICK, "governance.cooldown"),  # just under the cooldown
        (timedelta(hours=3), "passed"),  # at it: waited long enough
        (timedelta(hours=3) + TICK, "passed"),
    ],
)
def test_cooldown_boundary(ago: timedelta, rule: str) -> None:
    assert rule_of(verdict(executions=(NOW - ago,))) == rule


@pytest.mark.parametrize(
    ("count", "rule"),
    [(1, "passed"), (2, "governance.max_per_day"), (3, "governance.max_per_day")],
)
def test_max_per_day_boundary(count: int, rule: str) -> None:
    # spaced beyond the cooldown so that only the daily count can decide
    times = tuple(NOW - timedelta(hours=4 + 5 * i) for i in range(count))
    assert rule_of(verdict(executions=times)) == rule


@pytest.mark.parametrize(
    ("ago", "rule"),
    [
        (timedelta(hours=24) - TICK, "governance.max_per_day"),  # still inside the 24 h
        (timedelta(hours=24), "passed"),  # at 24 h it has left the window
        (timedelta(hours=24) + TICK, "passed"),
    ],
)
def test_the_daily_window_is_24_hours(ago: timedelta, rule: str) -> None:
    times = (NOW - timedelta(hours=4), NOW - ago)
    assert rule_of(verdict(executions=times)) == rule


@pytest.mark.parametrize(
    ("rows", "rule"), [(99, "passed"), (100, "passed"), (101, "governance.blast_radius")]
)
def test_max_rows_boundary(rows: int, rule: str) -> None:
    assert rule_of(verdict(rows=rows)) == rule


@pytest.mark.parametrize(
    ("rows", "population", "rule"),
    [
        (49, 100, "passed"),
        (50, 100, "passed"),  # exactly max_share
        (51, 100, "governance.blast_radius"),
        (100, 0, "passed"),  # no population: the share does not apply
    ],
)
def test_max_share_boundary(rows: int, population: int, rule: str) -> None:
    assert rule_of(verdict(rows=rows, population=population)) == rule


@pytest.mark.parametrize(
    ("confidence", "rule"),
    [(THRESHOLD - 1e-9, "confidence"), (THRESHOLD, "passed"), (THRESHOLD + 1e-9, "passed")],
)
def test_confidence_threshold_boundary(confidence: float, rule: str) -> None:
    result = verdict(confidence=confidence)
    assert rule_of(result) == rule
    expected = Verdict.NEEDS_APPROVAL if rule == "confidence" else Verdict.EXECUTED
    assert result.verdict is expected


@pytest.mark.parametrize("confidence", [0.0, 1.0])
def test_confidence_at_its_bounds_is_accepted(confidence: float) -> None:
    verdict(confidence=confidence)


@pytest.mark.parametrize("confidence", [-1e-9, 1.0 + 1e-9, float("nan")])
def test_confidence_outside_its_bounds_is_refused(confidence: float) -> None:
    with pytest.raises(ValueError, match=r"must be a number in \[0, 1\]"):
        verdict(confidence=confidence)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_per_day", -1, "max_per_day=-1 must be >= 0"),
        ("cooldown_hours", -0.001, "cooldown_hours=-0.001"),
        ("max_rows", -1, "max_rows=-1 must be >= 0"),
        ("max_share", -0.001, r"max_share=-0.001 must be in \[0, 1\]"),
        ("max_share", 1.001, r"max_share=1.001 must be in \[0, 1\]"),
    ],
)
def test_rule_limits_just_outside_their_range_are_refused(
    field: str, value: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ActionRule(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_per_day", 0),
        ("cooldown_hours", 0.0),
        ("max_rows", 0),
        ("max_share", 0.0),
        ("max_share", 1.0),
    ],
)
def test_rule_limits_at_their_bounds_are_accepted(field: str, value: float) -> None:
    assert getattr(ActionRule(**{field: value}), field) == value  # type: ignore[arg-type]
