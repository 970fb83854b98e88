"""detect(): the issues of the hand-built database, exactly; bad input."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from agent.db import session_scope
from agent.detect import Issue, Severity, detect, format_issues
from agent.observe import observe
from tests.agent import handbuilt
from tests.agent.handbuilt import A


def issues_of(engine: Engine, **kwargs: object) -> list[Issue]:
    with session_scope(engine) as session:
        return detect(session, observe(session, A), **kwargs)  # type: ignore[arg-type]


def by_detail(issues: list[Issue]) -> dict[tuple[str, str], Issue]:
    return {(issue.kind, issue.detail): issue for issue in issues}


def test_every_issue_of_the_hand_built_database(any_engine: Engine) -> None:
    handbuilt.build(any_engine)
    issues = by_detail(issues_of(any_engine))
    expected = handbuilt.expected_kpis()
    assert set(issues) == {
        ("system_health", "bloat"),  # 3 orphans of 34 records: 16 points, the largest
        ("data_quality", "null_email"),
        ("data_quality", "future_timestamp"),
        ("data_quality", "unknown_event_type"),
        ("data_quality", "negative_amount"),
        ("orphaned_records", "events"),
        ("failed_payments", "past_due"),
        ("users_at_risk", "silent_14_days"),
        ("kpi_below_target", "ltv_cac"),
        ("kpi_below_target", "mrr_growth"),
    }
    health = issues[("system_health", "bloat")]
    assert expected["health_score"] < 50
    assert health.action == "orphan_cleanup" and health.severity is Severity.CRITICAL
    assert health.gap == pytest.approx(80.0 - expected["health_score"])
    samples = {
        key: (issue.count, issue.sample_table, issue.sample_ids) for key, issue in issues.items()
    }
    assert samples[("data_quality", "null_email")] == (1, "users", (3,))
    assert samples[("data_quality", "future_timestamp")] == (1, "users", (12,))
    assert samples[("data_quality", "unknown_event_type")] == (1, "events", (5,))
    assert samples[("data_quality", "negative_amount")] == (1, "billing_events", (5,))
    assert samples[("orphaned_records", "events")] == (3, "events", (10, 11, 15))
    assert samples[("failed_payments", "past_due")] == (1, "subscriptions", (3,))
    assert samples[("users_at_risk", "silent_14_days")] == (2, "users", (5, 7))
    at_risk = issues[("users_at_risk", "silent_14_days")]
    assert at_risk.action == "retention_campaign" and at_risk.severity is Severity.HIGH
    assert at_risk.gap == pytest.approx(2 / 5 - 0.15)
    ltv = issues[("kpi_below_target", "ltv_cac")]
    assert (ltv.action, ltv.target, ltv.severity) == ("shift_marketing", 4.0, Severity.HIGH)
    assert ltv.gap == pytest.approx(4.0 - expected["ltv_cac"])
    assert issues[("failed_payments", "past_due")].severity is Severity.CRITICAL  # 50% failing
    assert all(
        issue.action in {"data_fix"}
        for (kind, _), issue in issues.items()
        if kind == "data_quality"
    )
    ranks = [issue.severity.rank for issue in issues_of(any_engine)]
    assert ranks == sorted(ranks)


def test_sample_size_zero_gives_counts_without_ids(sqlite_engine: Engine) -> None:
    handbuilt.build(sqlite_engine)
    issues = issues_of(sqlite_engine, sample_size=0)
    assert issues and all(issue.sample_ids == () for issue in issues)
    assert "orphan_cleanup" in format_issues(issues)


def test_the_seeded_business_has_the_planted_issues(seeded: tuple[Engine, object]) -> None:
    engine, result = seeded
    with session_scope(engine) as session:
        snapshot = observe(session, result.as_of)  # type: ignore[attr-defined]
        issues = detect(session, snapshot)
    kinds = {issue.kind for issue in issues}
    assert {"data_quality", "orphaned_records", "users_at_risk"} <= kinds
    for issue in issues:
        assert issue.count > 0
        assert len(issue.sample_ids) <= 5
        assert issue.to_dict()["severity"] == issue.severity.value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_size": -1}, r"sample_size must be an integer in \[0, 1000\], got -1"),
        ({"sample_size": "5"}, r"sample_size must be an integer in \[0, 1000\], got '5'"),
        ({"sample_size": 1001}, r"sample_size must be an integer in \[0, 1000\], got 1001"),
        ({"health_floor": 150.0}, r"health_floor must be a number in \[0, 100\], got 150.0"),
    ],
)
def test_bad_detect_arguments_are_rejected(
    sqlite_engine: Engine, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        issues_of(sqlite_engine, **kwargs)


def test_detect_needs_a_snapshot(sqlite_engine: Engine) -> None:
    with (
        session_scope(sqlite_engine) as session,
        pytest.raises(ValueError, match="must be a KpiSnapshot"),
    ):
        detect(session, {"mrr": 1.0})  # type: ignore[arg-type]


def test_an_issue_must_name_a_catalogue_action() -> None:
    with pytest.raises(ValueError, match="unknown action 'reboot'; allowed: "):
        Issue("x", "y", Severity.LOW, 1, "reboot", "m")
