"""Read-only views of the engine for the health, metrics and system-state endpoints."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from agent.db import DatabaseError, check_schema, current_revision, ping
from agent.models import Approval, Cycle
from agent.observe import as_utc_naive
from agent.orchestrator import kill_switch_state
from api.policy import PolicyHolder
from api.schemas import KillSwitchOut, PolicyOut, ReadyOut, SystemState, json_safe, utc_text


def policy_out(holder: PolicyHolder) -> PolicyOut:
    """The policy the API decides with and how its loading went."""
    current = holder.current
    return PolicyOut(
        name=current.name,
        version=current.version,
        uri=holder.uri,
        loaded_at=current.loaded_at,
        last_error=current.last_error,
        checked_at=current.checked_at,
    )


def approvals_pending(session: Session) -> int:
    """Pending approvals that have not expired."""
    now = as_utc_naive(None)
    return int(
        session.execute(
            select(func.count())
            .select_from(Approval)
            .where(Approval.status == "pending", Approval.expires_at > now)
        ).scalar_one()
    )


def engine_state(engine: Engine) -> dict[str, Any]:
    """Approvals pending and the kill switch, read now."""
    with Session(engine) as session:
        on, _ = kill_switch_state(session)
        return {"approvals_pending": approvals_pending(session), "kill_switch": on}


def readiness(engine: Engine, holder: PolicyHolder) -> ReadyOut:
    """Whether the API can serve: database reachable, schema at head, policy loaded."""
    problems: list[str] = []
    revision = None
    try:
        ping(engine)
        revision = current_revision(engine)
        check_schema(engine)
    except DatabaseError as error:
        problems.append(str(error))
    policy = policy_out(holder)
    if policy.last_error is not None:
        problems.append(f"policy: {policy.last_error} (deciding with {policy.version})")
    database = engine.url.render_as_string(hide_password=True)
    ready = not any(not p.startswith("policy:") for p in problems)
    return ReadyOut(
        ready=ready,
        database=database,
        schema_revision=revision,
        policy=policy,
        problems=problems,
    )


def last_cycle(session: Session) -> dict[str, Any] | None:
    """The latest cycle's summary, if any."""
    cycle = session.scalars(select(Cycle).order_by(Cycle.id.desc()).limit(1)).first()
    if cycle is None:
        return None
    return {
        "id": cycle.id,
        "started_at": utc_text(cycle.started_at),
        "finished_at": utc_text(cycle.finished_at) if cycle.finished_at else None,
        "mode": cycle.mode,
        "status": cycle.status,
        "kpis": json_safe(cycle.kpis),
        "issues": len(cycle.issues or []),
        "error": cycle.error,
    }


def system_state(session: Session, holder: PolicyHolder) -> SystemState:
    """Mode, kill switch, policy, approvals pending and the last cycle."""
    on, reason = kill_switch_state(session)
    return SystemState(
        mode="dry_run",
        kill_switch=KillSwitchOut(on=on, reason=reason),
        policy=policy_out(holder),
        approvals_pending=approvals_pending(session),
        last_cycle=last_cycle(session),
    )
