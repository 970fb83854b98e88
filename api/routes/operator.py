"""The operator's controls: approvals, undo, the audit trail, the kill switch, the policy.

Reads need ``viewer`` (or ``operator``); answering approvals, undo and the kill switch need
``operator``; reloading the policy needs ``admin``. Every mutation is audited with the key's
name. An operator cannot approve a decision it requested itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Body, Query
from sqlalchemy import select

from agent import actuators, api_keys, approvals, audit
from agent.api_keys import Principal
from agent.models import AuditLog
from agent.orchestrator import kill_switch_state, set_kill_switch
from api.deps import PolicyDep, SessionDep, allow
from api.pagination import DEFAULT_PAGE_SIZE, Cursor, Limit, RowId, page_of
from api.problems import COMMON_ERRORS, Problem, problem_responses
from api.schemas import (
    ApprovalOut,
    AuditEntryOut,
    ChainOut,
    KillSwitchOut,
    KillSwitchRequest,
    NoteRequest,
    Page,
    PolicyOut,
    UndoResponse,
)
from api.state import policy_out

router = APIRouter(prefix="/api/v1", tags=["operator"])
READERS = ("viewer", "operator")
Operator = Annotated[Principal, allow("operator")]
ApprovalStatus = Literal["pending", "approved", "rejected", "expired", "refused"]
assert set(get_args(ApprovalStatus)) == set(approvals.STATUSES)
Status = Annotated[ApprovalStatus | None, Query(description="only approvals in this status")]


def _approval_problem(error: approvals.ApprovalError) -> Problem:
    message = str(error)
    return Problem(404 if "does not exist" in message else 409, message)


@router.get(
    "/approvals",
    response_model=Page[ApprovalOut],
    dependencies=[allow(*READERS)],
    responses=problem_responses(*COMMON_ERRORS),
)
def list_approvals(
    session: SessionDep, status: Status = None, cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> Any:  # fmt: skip
    """Approvals, newest first (expired ones marked first)."""
    rows = [a.to_dict() for a in approvals.list_approvals(session, status)]
    session.commit()
    return page_of(rows, cursor, limit)


@router.post(
    "/approvals/{approval_id}/approve",
    response_model=ApprovalOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409),
)
def approve(
    approval_id: RowId, session: SessionDep, caller: Operator,
    body: Annotated[NoteRequest | None, Body()] = None,
) -> Any:  # fmt: skip
    """Approve and execute a held decision (live)."""
    if caller.role == "operator" and api_keys.requested_by(session, approval_id) == caller.name:
        raise Problem(
            403,
            f"approval {approval_id} was requested by {caller.name!r}; an operator cannot "
            "approve its own request (ask another operator or an admin)",
        )
    try:
        view = approvals.approve(session, approval_id, by=caller.name, note=_note(body))
    except approvals.ApprovalError as error:
        raise _approval_problem(error) from None
    session.commit()
    return view.to_dict()


@router.post(
    "/approvals/{approval_id}/reject",
    response_model=ApprovalOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409),
)
def reject(
    approval_id: RowId, session: SessionDep, caller: Operator,
    body: Annotated[NoteRequest | None, Body()] = None,
) -> Any:  # fmt: skip
    """Reject a held decision (nothing executes)."""
    try:
        view = approvals.reject(session, approval_id, by=caller.name, note=_note(body))
    except approvals.ApprovalError as error:
        raise _approval_problem(error) from None
    session.commit()
    return view.to_dict()


def _note(body: NoteRequest | None) -> str | None:
    return body.note if body is not None else None


@router.post(
    "/executions/{execution_id}/undo",
    response_model=UndoResponse,
    responses=problem_responses(*COMMON_ERRORS, 404, 409),
)
def undo(execution_id: RowId, session: SessionDep, caller: Operator) -> Any:
    """Reverse an execution exactly (audited)."""
    try:
        execution = actuators.undo(session, execution_id, actor=caller.name).execution
    except actuators.ActuatorError as error:
        message = str(error)
        raise Problem(404 if "does not exist" in message else 409, message) from None
    session.commit()
    return UndoResponse(
        execution_id=execution.id,
        action=execution.action,
        status=execution.status,
        undone_at=execution.undone_at,
    )


@router.get(
    "/audit",
    response_model=Page[AuditEntryOut],
    dependencies=[allow(*READERS)],
    responses=problem_responses(*COMMON_ERRORS),
)
def audit_trail(
    session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE_SIZE
) -> Any:
    """The audit trail, newest first."""
    size = limit
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(size + 1)
    if cursor is not None:
        query = query.where(AuditLog.id < cursor)
    rows = session.scalars(query).all()
    items = [AuditEntryOut.model_validate(row, from_attributes=True) for row in rows[:size]]
    return Page[AuditEntryOut](
        items=items, next_cursor=items[-1].id if len(rows) > size and items else None
    )


@router.get(
    "/audit/verify",
    response_model=ChainOut,
    dependencies=[allow(*READERS)],
    responses=problem_responses(*COMMON_ERRORS),
)
def verify_audit(session: SessionDep) -> Any:
    """Recompute the hash chain; names the first bad entry."""
    report = audit.verify_chain(session)
    return ChainOut(
        ok=report.ok,
        entries=report.entries,
        first_bad_id=report.first_bad_id,
        reason=report.reason,
        head_hash=report.head_hash,
    )


@router.get(
    "/kill-switch",
    response_model=KillSwitchOut,
    dependencies=[allow(*READERS)],
    responses=problem_responses(*COMMON_ERRORS),
)
def kill_switch(session: SessionDep) -> Any:
    """Whether the kill switch is on, and why."""
    on, reason = kill_switch_state(session)
    return KillSwitchOut(on=on, reason=reason)


@router.post(
    "/kill-switch",
    response_model=KillSwitchOut,
    responses=problem_responses(*COMMON_ERRORS),
)
def set_kill(body: KillSwitchRequest, session: SessionDep, caller: Operator) -> Any:
    """Turn the kill switch on (``reason`` required) or off; audited."""
    set_kill_switch(session, body.on, reason=body.reason, by=caller.name)
    session.commit()
    on, reason = kill_switch_state(session)
    return KillSwitchOut(on=on, reason=reason)


@router.get(
    "/policy",
    response_model=PolicyOut,
    dependencies=[allow(*READERS, "client")],
    responses=problem_responses(*COMMON_ERRORS),
)
def policy(holder: PolicyDep) -> Any:
    """The policy the API decides with and the state of its loading."""
    return policy_out(holder)


@router.post(
    "/policy/reload",
    response_model=PolicyOut,
    responses=problem_responses(*COMMON_ERRORS),
)
def reload_policy(
    holder: PolicyDep, session: SessionDep, caller: Annotated[Principal, allow()]
) -> Any:
    """Check the champion alias (or reload the policy URI) now; audited."""
    loaded = holder.reload()
    audit.append(
        session,
        actor=caller.name,
        action="policy_reload",
        target=holder.uri,
        details={"version": loaded.version, "error": loaded.last_error},
    )
    session.commit()
    return policy_out(holder)
