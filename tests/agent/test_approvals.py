"""Approvals: approve executes through the actuator, once; reject; expiry; the approver."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from agent.approvals import ApprovalError, approve, list_approvals, reject
from agent.db import session_factory
from agent.models import AuditLog, Execution
from agent.orchestrator import APPROVAL_TTL, run_full_cycle, set_kill_switch
from agent.seed import SeedResult
from environment.actions import ACTION_NAMES

STRICT = dict.fromkeys(ACTION_NAMES, 0.99)


def _held(engine: Engine, result: SeedResult) -> list[int]:
    outcome = run_full_cycle(
        engine, dry_run=False, policy="rules", as_of=result.as_of, thresholds=STRICT
    )
    ids = [d.approval_id for d in outcome.decisions if d.approval_id]
    assert ids
    return ids


def test_approve_executes_once_and_records_the_approver(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    approval_id = _held(engine, result)[0]
    now = result.as_of + timedelta(hours=1)
    with session_factory(engine)() as session:
        view = approve(session, approval_id, by="alice", now=now)
        assert view.status == "approved" and view.decided_by == "alice"
        assert view.execution_id is not None
        execution = session.get(Execution, view.execution_id)
        assert execution is not None and execution.status == "executed"
        with pytest.raises(
            ApprovalError, match=f"approval {approval_id} is already approved by alice"
        ):
            approve(session, approval_id, by="bob", now=now)
        with pytest.raises(ApprovalError, match="already approved"):
            reject(session, approval_id, by="bob", now=now)
        actors = session.scalars(
            select(AuditLog.actor).where(AuditLog.action.in_(["approval_approved", "execution"]))
        ).all()
        assert actors == ["alice", "alice"]


def test_reject_executes_nothing(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    approval_id = _held(engine, result)[0]
    with session_factory(engine)() as session:
        view = reject(session, approval_id, by="carol", note="not now", now=result.as_of)
        assert view.status == "rejected" and view.execution_id is None
        assert session.scalars(select(Execution)).all() == []


def test_an_expired_approval_cannot_be_given(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    approval_id = _held(engine, result)[0]
    late = result.as_of + APPROVAL_TTL + timedelta(minutes=1)
    with session_factory(engine)() as session:
        with pytest.raises(ApprovalError, match=f"approval {approval_id} expired at"):
            approve(session, approval_id, by="dave", now=late)
        statuses = {a.id: a.status for a in list_approvals(session, now=late)}
        assert statuses[approval_id] == "expired"
        assert list_approvals(session, "pending", now=late) == []


@pytest.mark.parametrize(
    ("approval_id", "by", "message"),
    [(999_999, "erin", "approval 999999 does not exist"), (None, " ", r"approver's name \(--by\)")],
)
def test_bad_answers_are_named(
    seeded: tuple[Engine, SeedResult], approval_id: int | None, by: str, message: str
) -> None:
    engine, result = seeded
    target = approval_id or _held(engine, result)[0]
    with session_factory(engine)() as session, pytest.raises(ApprovalError, match=message):
        approve(session, target, by=by, now=result.as_of)


def test_unknown_status_filter_is_named(seeded: tuple[Engine, SeedResult]) -> None:
    engine, _ = seeded
    with session_factory(engine)() as session, pytest.raises(ValueError, match=r"'maybe'.*pending"):
        list_approvals(session, "maybe")


def test_nothing_executes_while_paused(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    approval_id = _held(engine, result)[0]
    with session_factory(engine)() as session:
        set_kill_switch(session, True, reason="freeze", now=result.as_of)
        with pytest.raises(ApprovalError, match="paused"):
            approve(session, approval_id, by="frank", now=result.as_of)
        assert [
            a.status for a in list_approvals(session, now=result.as_of) if a.id == approval_id
        ] == ["pending"]
