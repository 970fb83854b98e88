"""Treated is not healed: an issue counts as healed only when a later cycle's observation no
longer detects it (:mod:`agent.healing`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from agent import audit
from agent.detect import Issue, Severity
from agent.healing import Treatment, pending_treatments, resolve, treatments
from agent.models import AuditLog, Cycle
from agent.orchestrator import run_full_cycle
from agent.seed import SeedResult
from environment.actions import ACTION_NAMES

EAGER = dict.fromkeys(ACTION_NAMES, 0.0)


@dataclass(frozen=True)
class Outcome:
    action: str
    source: str
    verdict: str
    execution_id: int | None
    issue: str | None = None


def _issue(kind: str, detail: str, action: str) -> Issue:
    return Issue(kind=kind, detail=detail, severity=Severity.HIGH, count=3, action=action,
                 message="test")  # fmt: skip


FAILED_JOBS = _issue("system_health", "failed_jobs", "data_fix")
EMAILS = _issue("data_quality", "malformed_email", "data_fix")
ORPHANS = _issue("orphaned_records", "events", "orphan_cleanup")


def test_a_policy_action_treats_the_issues_it_addresses_but_heals_none() -> None:
    """The finding: ``system_health:failed_jobs`` reported healed by ``data_fix``."""
    outcomes = [Outcome("data_fix", "policy", "executed", 7)]
    treated = treatments(outcomes, [FAILED_JOBS, EMAILS, ORPHANS], cycle_id=1)
    assert {t.issue for t in treated} == {
        "system_health:failed_jobs",
        "data_quality:malformed_email",
    }
    healed, pending = resolve([], [FAILED_JOBS, EMAILS, ORPHANS], treated)
    assert healed == [] and pending == treated


@pytest.mark.parametrize(
    ("outcome", "treated"),
    [
        (Outcome("orphan_cleanup", "self_healing", "executed", 3, "orphaned_records:events"), 1),
        (Outcome("orphan_cleanup", "self_healing", "executed", None, "orphaned_records:events"), 0),
        (Outcome("orphan_cleanup", "self_healing", "dry_run", None, "orphaned_records:events"), 0),
        (Outcome("orphan_cleanup", "self_healing", "needs_approval", None, "x:y"), 0),
    ],
    ids=["executed", "nothing-to-do", "dry-run", "held"],
)
def test_only_an_execution_treats(outcome: Outcome, treated: int) -> None:
    assert len(treatments([outcome], [ORPHANS], cycle_id=1)) == treated


def test_a_later_observation_decides_healed_or_still_pending() -> None:
    pending = [
        Treatment("system_health:failed_jobs", "data_fix", 7, 1),
        Treatment("orphaned_records:events", "orphan_cleanup", 8, 1),
    ]
    healed, still = resolve(pending, [FAILED_JOBS], [])
    assert [t.issue for t in healed] == ["orphaned_records:events"]
    assert [t.issue for t in still] == ["system_health:failed_jobs"]
    retreated = Treatment("system_health:failed_jobs", "scale_infra", 9, 2)
    _, still = resolve(pending, [FAILED_JOBS], [retreated])
    assert still == [retreated]  # one pending treatment per issue, the latest


def test_pending_treatments_skip_what_they_cannot_read(sqlite_engine: Engine) -> None:
    good = Treatment("orphaned_records:events", "orphan_cleanup", 8, 1)
    junk = [{"issue": "x"}, "junk", {**good.to_dict(), "cycle_id": "a"}]
    with Session(sqlite_engine) as session:
        assert pending_treatments(session, before_cycle=5) == []
        cycle = Cycle(started_at=datetime(2025, 6, 1), as_of=datetime(2025, 6, 1))
        session.add(cycle)
        session.flush()
        audit.append(session, actor="agent", action="cycle_finished", cycle_id=cycle.id,
                     details={"pending": [good.to_dict(), *junk]})  # fmt: skip
        assert pending_treatments(session, before_cycle=cycle.id + 1) == [good]
        assert pending_treatments(session, before_cycle=cycle.id) == []  # only earlier cycles


def test_healed_is_reported_by_the_cycle_that_sees_the_issue_gone(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    first = run_full_cycle(engine, dry_run=False, policy="rules", as_of=result.as_of,
                           thresholds=EAGER)  # fmt: skip
    assert first.executions and first.issues_treated
    assert first.issues_healed == []  # treated, not yet seen resolved
    between = run_full_cycle(engine, dry_run=True, policy="rules",
                             as_of=result.as_of + timedelta(hours=2))  # fmt: skip
    second = run_full_cycle(engine, dry_run=False, policy="rules",
                            as_of=result.as_of + timedelta(hours=4), thresholds=EAGER)  # fmt: skip
    everything_healed = set(between.issues_healed) | set(second.issues_healed)
    seen_later = {f"{i['kind']}:{i['detail']}" for i in between.issues_found}
    assert set(between.issues_healed) == set(first.issues_treated) - seen_later
    assert everything_healed <= set(first.issues_treated)
    assert everything_healed, "the orphan cleanup resolves its issue at once"
    for issue in second.issues_healed:
        assert issue not in {f"{i['kind']}:{i['detail']}" for i in second.issues_found}
    with Session(engine) as session:
        details = session.scalars(
            select(AuditLog.details).where(
                AuditLog.action == "cycle_finished", AuditLog.cycle_id == first.cycle_id
            )
        ).one()
        assert {t["issue"] for t in details["treated"]} == set(first.issues_treated)
        assert details["healed"] == []
        assert audit.verify_chain(session).ok
