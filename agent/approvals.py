"""Approvals: decisions the guardrails held for a human.

An approval is requested by the orchestrator (verdict ``needs_approval``) through
:func:`request_approval`, which stores the plan that is shown (counts and, up to
:data:`agent.actuators.MAX_SCOPED_ROWS` rows, their ids) with the approval, and expires at
``expires_at``.

A human step must not bypass the rules. :func:`approve`:

1. needs a named approver and a clock not before the request nor the audit trail's last entry;
2. refuses while the kill switch is on;
3. executes exactly the plan that was shown: the listed rows that still qualify (never a
   recount that picked up new rows), or, for a plan stored without ids, only if the count and
   the setting's old value are what was shown;
4. re-checks governance at approval time (``allowed``, ``max_per_day``, cooldowns, blast
   radius on the rows it would now touch).

If 3 or 4 fails, nothing executes: the approval is marked ``refused`` with the reason in its
``note`` (audited), and the next cycle may request it again. The execution happens in
the same transaction as the approval's answer and its audit entries; :func:`reject` records the
answer. Each can happen once: the answer is a conditional ``UPDATE ... WHERE status =
'pending'``, so two approvers racing cannot both succeed. The approver is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from agent import actuators, audit
from agent.actuators import executions_by_action
from agent.cycle_config import resolve_governance
from agent.guardrails import Governance, GuardContext, Verdict, evaluate_decision
from agent.kill_switch import kill_switch_state
from agent.models import Approval, ApprovalPlan, AuditLog, DecisionRecord
from agent.observe import as_utc_naive
from environment.actions import action_index

STATUSES = ("pending", "approved", "rejected", "expired", "refused")
"""``refused``: approved by a human but not executed, because the data or the rules moved."""


class ApprovalError(ValueError):
    """An approval that cannot be given or refused; the message says why."""


@dataclass(frozen=True, slots=True)
class ApprovalView:
    """One approval with its decision, for listing."""

    id: int
    decision_id: int
    action: str
    confidence: float
    status: str
    requested_at: datetime
    expires_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    reasons: tuple[str, ...]
    execution_id: int | None
    plan: dict[str, Any] | None = None
    """The plan shown at request time (action, target, rows, population...)."""
    note: str | None = None
    """The answer's note; for a ``refused`` approval, why it could not execute."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "decision_id": self.decision_id,
            "action": self.action,
            "confidence": self.confidence,
            "status": self.status,
            "requested_at": self.requested_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "reasons": list(self.reasons),
            "execution_id": self.execution_id,
            "plan": self.plan,
            "note": self.note,
        }


def request_approval(
    session: Session,
    decision: DecisionRecord,
    planned: actuators.Plan | None,
    *,
    at: datetime,
    expires_at: datetime,
    actor: str = "agent",
) -> Approval:
    """Hold ``decision`` for a human: the approval, the plan it shows (counts and row ids)
    and its audit entry, flushed in the caller's transaction."""
    approval = Approval(
        decision_id=decision.id, requested_at=at, status="pending", expires_at=expires_at
    )
    session.add(approval)
    session.flush()
    shown = planned.to_dict() if planned is not None else {"action": decision.action}
    ids = (
        actuators.target_ids(session, decision.action, at)
        if decision.action in actuators.ROW_ACTIONS
        else None
    )
    session.add(ApprovalPlan(approval_id=approval.id, plan=shown, target_ids=ids))
    audit.append(
        session,
        actor=actor,
        action="approval_requested",
        target=decision.action,
        details={"approval_id": approval.id, "decision_id": decision.id, "plan": shown},
        cycle_id=decision.cycle_id,
        now=at,
    )
    session.flush()
    return approval


def shown_plan(
    session: Session, approval: Approval
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the plan shown, its row ids per table or None) of ``approval``: the stored plan, or for
    an approval requested without one, the plan in its decision's audit entry."""
    stored = session.get(ApprovalPlan, approval.id)
    if stored is not None:
        return dict(stored.plan), stored.target_ids
    for details in session.scalars(
        select(AuditLog.details).where(AuditLog.action == "decision").order_by(AuditLog.id.desc())
    ):
        if isinstance(details, dict) and details.get("decision_id") == approval.decision_id:
            return dict(details.get("plan") or {}), None
    return {}, None


def expire(session: Session, now: datetime | None = None) -> int:
    """Mark pending approvals past their expiry as expired (audited; flushed, the caller
    commits). Returns how many expired."""
    moment = as_utc_naive(now)
    ids = (
        session.execute(
            select(Approval.id).where(Approval.status == "pending", Approval.expires_at <= moment)
        )
        .scalars()
        .all()
    )
    for approval_id in ids:
        session.execute(
            update(Approval)
            .where(Approval.id == approval_id, Approval.status == "pending")
            .values(status="expired", decided_at=moment, decided_by="system")
        )
        audit.append(
            session,
            actor="system",
            action="approval_expired",
            target=str(approval_id),
            details={"approval_id": approval_id},
            now=moment,
        )
    session.flush()
    return len(ids)


def list_approvals(
    session: Session, status: str | None = None, now: datetime | None = None
) -> list[ApprovalView]:
    """Approvals (expired ones marked first), newest first; ``status`` filters."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown approval status {status!r}; allowed: {list(STATUSES)}")
    expire(session, now)
    query = (
        select(Approval, DecisionRecord)
        .join(DecisionRecord, DecisionRecord.id == Approval.decision_id)
        .order_by(Approval.id.desc())
    )
    if status is not None:
        query = query.where(Approval.status == status)
    return [
        _view(approval, decision, shown_plan(session, approval)[0])
        for approval, decision in session.execute(query).all()
    ]


def _pending(session: Session, approval_id: int, by: str, moment: datetime) -> Approval:
    """The approval, after the checks every human answer passes: a named actor, an existing
    approval, a clock not before its request nor the audit trail's last entry."""
    if not isinstance(by, str) or not by.strip():
        raise ApprovalError("the approver's name (--by) must not be empty")
    approval = session.get(Approval, approval_id)
    if approval is None:
        raise ApprovalError(f"approval {approval_id} does not exist")
    if approval.status != "pending":
        raise ApprovalError(
            f"approval {approval_id} is already {approval.status}"
            + (f" by {approval.decided_by}" if approval.decided_by else "")
            + "; only pending approvals can be answered"
        )
    if approval.expires_at is not None and approval.expires_at <= moment:
        raise ApprovalError(
            f"approval {approval_id} expired at {approval.expires_at:%Y-%m-%d %H:%M}"
        )
    if moment < approval.requested_at:
        raise ApprovalError(
            f"clock {moment:%Y-%m-%d %H:%M} is before approval {approval_id} was requested "
            f"({approval.requested_at:%Y-%m-%d %H:%M}); time cannot run backwards"
        )
    try:
        audit.check_human_step(session, by, moment)
    except audit.AuditError as error:
        raise ApprovalError(str(error)) from None
    return approval


def _claim(
    session: Session, approval_id: int, status: str, by: str, moment: datetime, note: str | None
) -> tuple[Approval, DecisionRecord]:
    approval = _pending(session, approval_id, by, moment)
    claimed = session.execute(
        update(Approval)
        .where(Approval.id == approval_id, Approval.status == "pending")
        .values(status=status, decided_by=by, decided_at=moment, note=note)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ApprovalError(f"approval {approval_id} was answered concurrently")
    session.refresh(approval)
    decision = session.get(DecisionRecord, approval.decision_id)
    assert decision is not None  # foreign key
    return approval, decision


def _answer(
    session: Session, approval_id: int, status: str, by: str, moment: datetime, note: str | None
) -> DecisionRecord:
    """Record a human's answer (claim the approval, audit it) and return its decision."""
    _, decision = _claim(session, approval_id, status, by, moment, note)
    audit.append(
        session,
        actor=by,
        action=f"approval_{status}",
        target=decision.action,
        details={"approval_id": approval_id, "decision_id": decision.id, "note": note},
        cycle_id=decision.cycle_id,
        now=moment,
    )
    return decision


def approve(
    session: Session,
    approval_id: int,
    *,
    by: str,
    note: str | None = None,
    now: datetime | None = None,
    governance: Governance | None = None,
) -> ApprovalView:
    """Approve and execute the held decision (live), audited; flushed, the caller commits.

    Raises :class:`ApprovalError` for an unknown, answered or expired approval, an empty
    approver, a clock that runs backwards, or when the kill switch is on (nothing executes
    while paused). When the plan shown can no longer be executed within the rules (see the
    module docstring) the approval is marked ``refused``, committed, and the error says why.
    ``governance`` defaults to the one the cycle uses (:func:`resolve_governance`).
    """
    moment = as_utc_naive(now)
    on, reason = kill_switch_state(session)
    if on:
        raise ApprovalError(f"cannot execute approval {approval_id}: paused ({reason})")
    approval = _pending(session, approval_id, by, moment)
    decision = session.get(DecisionRecord, approval.decision_id)
    assert decision is not None  # foreign key
    shown, shown_ids = shown_plan(session, approval)
    scope, refusal = _recheck(
        session, decision, shown, shown_ids, moment, resolve_governance(governance)
    )
    if refusal:
        _refuse(session, approval_id, decision, by, moment, refusal)
        session.flush()
        session.refresh(approval)
        return _view_by_id(session, approval_id)
    decision = _answer(session, approval_id, "approved", by, moment, note)
    if decision.action in actuators.ACTUATED:
        outcome = actuators.execute(
            session,
            decision.action,
            moment,
            cycle_id=decision.cycle_id,
            actor=by,
            decision_id=decision.id,
            scope=scope,
        )
        decision.execution_id = outcome.execution.id
    decision.verdict = "executed"
    decision.verdict_reasons = [*decision.verdict_reasons, f"approved by {by}"]
    session.flush()
    return _view_by_id(session, approval_id)


def _recheck(
    session: Session,
    decision: DecisionRecord,
    shown: dict[str, Any],
    shown_ids: dict[str, Any] | None,
    moment: datetime,
    governance: Governance,
) -> tuple[actuators.Scope | None, str]:
    """(the rows to execute, why not: "" when the plan may run) at approval time."""
    action = decision.action
    if action not in actuators.ACTUATED:
        return None, ""
    current = actuators.plan(session, action, moment)
    scope: actuators.Scope | None = None
    rows = current.rows
    if shown_ids is not None:
        now_ids = actuators.target_ids(session, action, moment) or {}
        scope = {
            table: sorted(set(ids) & set(now_ids.get(table, ())))
            for table, ids in shown_ids.items()
        }
        rows = sum(map(len, scope.values()))
    elif "rows" in shown and int(shown["rows"]) != current.rows:
        return None, (
            f"the data moved since the request: {shown['rows']} rows were shown, "
            f"{current.rows} qualify now"
        )
    if "old" in shown and shown["old"] != current.details.get("old"):
        return None, (
            f"setting {shown.get('key')!r} changed since the request: "
            f"{shown['old']} was shown, {current.details.get('old')} now"
        )
    context = GuardContext(
        now=moment,
        dry_run=False,
        executions=executions_by_action(session, moment, governance.lookback),
        rows=rows,
        population=current.population,
    )
    verdict = evaluate_decision(action_index(action), 1.0, governance, {}, context)
    if verdict.verdict == Verdict.BLOCKED:
        return None, f"governance now forbids it ({verdict.rule}: {'; '.join(verdict.reasons)})"
    return scope, ""


def _refuse(
    session: Session,
    approval_id: int,
    decision: DecisionRecord,
    by: str,
    moment: datetime,
    reason: str,
) -> None:
    """Mark the approval refused (approved by ``by`` but not executable), audited."""
    session.execute(
        update(Approval)
        .where(Approval.id == approval_id, Approval.status == "pending")
        .values(
            status="refused",
            decided_by=by,
            decided_at=moment,
            note=f"{reason}; nothing was executed, the next cycle may request it again",
        )
    )
    audit.append(
        session,
        actor=by,
        action="approval_refused",
        target=decision.action,
        details={"approval_id": approval_id, "decision_id": decision.id, "reason": reason},
        cycle_id=decision.cycle_id,
        now=moment,
    )


def reject(
    session: Session,
    approval_id: int,
    *,
    by: str,
    note: str | None = None,
    now: datetime | None = None,
) -> ApprovalView:
    """Reject the held decision (nothing executes), audited; flushed, the caller commits."""
    moment = as_utc_naive(now)
    _answer(session, approval_id, "rejected", by, moment, note)
    session.flush()
    return _view_by_id(session, approval_id)


def _view_by_id(session: Session, approval_id: int) -> ApprovalView:
    approval = session.get(Approval, approval_id)
    assert approval is not None
    decision = session.get(DecisionRecord, approval.decision_id)
    assert decision is not None
    return _view(approval, decision, shown_plan(session, approval)[0])


def _view(
    approval: Approval, decision: DecisionRecord, plan: dict[str, Any] | None = None
) -> ApprovalView:
    """The public view of an approval and the decision it holds."""
    return ApprovalView(
        id=approval.id,
        decision_id=decision.id,
        action=decision.action,
        confidence=decision.confidence,
        status=approval.status,
        requested_at=approval.requested_at,
        expires_at=approval.expires_at,
        decided_by=approval.decided_by,
        decided_at=approval.decided_at,
        reasons=tuple(str(r) for r in decision.verdict_reasons or ()),
        execution_id=decision.execution_id,
        plan=plan,
        note=approval.note,
    )
