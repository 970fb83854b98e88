"""Approvals: decisions the guardrails held for a human.

An approval is requested by the orchestrator (verdict ``needs_approval``) and expires at
``expires_at``. :func:`approve` executes the held action through :mod:`agent.actuators` in the
same transaction as the approval's answer and its audit entries; :func:`reject` records the
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
from agent.kill_switch import kill_switch_state
from agent.models import Approval, DecisionRecord
from agent.observe import as_utc_naive

STATUSES = ("pending", "approved", "rejected", "expired")


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
        }


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
    return [_view(approval, decision) for approval, decision in session.execute(query).all()]


def _claim(
    session: Session, approval_id: int, status: str, by: str, moment: datetime, note: str | None
) -> tuple[Approval, DecisionRecord]:
    if not by or not by.strip():
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
) -> ApprovalView:
    """Approve and execute the held decision (live), audited; flushed, the caller commits.

    Raises :class:`ApprovalError` for an unknown, answered or expired approval, or when the
    kill switch is on (nothing executes while paused).
    """
    moment = as_utc_naive(now)
    on, reason = kill_switch_state(session)
    if on:
        raise ApprovalError(f"cannot execute approval {approval_id}: paused ({reason})")
    decision = _answer(session, approval_id, "approved", by, moment, note)
    if decision.action in actuators.ACTUATED:
        outcome = actuators.execute(
            session,
            decision.action,
            moment,
            cycle_id=decision.cycle_id,
            actor=by,
            decision_id=decision.id,
        )
        decision.execution_id = outcome.execution.id
    decision.verdict = "executed"
    decision.verdict_reasons = [*decision.verdict_reasons, f"approved by {by}"]
    session.flush()
    return _view_by_id(session, approval_id)


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
    return _view(approval, decision)


def _view(approval: Approval, decision: DecisionRecord) -> ApprovalView:
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
    )
