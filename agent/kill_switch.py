"""The kill switch: one flag that pauses every execution.

It is on when the settings force it (``AUTOPILOT_KILL_SWITCH``, :class:`agent.settings.Settings`)
or when the latest ``kill_switch`` row of ``settings`` (the table, with history) says so. The
guardrails read the answer from their context; nothing here commits: the caller owns the
transaction (see :func:`agent.db.session_scope`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from agent import audit
from agent.actuators import free_instant
from agent.models import Setting
from agent.observe import as_utc_naive
from agent.settings import ENV_PREFIX, Settings, get_settings

KILL_SWITCH_KEY = "kill_switch"
"""The key of the kill switch's rows in the ``settings`` table."""
KILL_SWITCH_ENV = f"{ENV_PREFIX}KILL_SWITCH"


def kill_switch_state(session: Session, settings: Settings | None = None) -> tuple[bool, str]:
    """(on, reason): forced on by ``settings`` (default :func:`get_settings`), else the
    latest ``kill_switch`` row. Reads only."""
    if (settings or get_settings()).kill_switch:
        return True, f"environment variable {KILL_SWITCH_ENV} is on"
    value = session.execute(
        select(Setting.value)
        .where(Setting.key == KILL_SWITCH_KEY)
        .order_by(Setting.effective_at.desc(), Setting.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if isinstance(value, dict) and value.get("on"):
        return True, f"kill switch set: {value.get('reason') or 'no reason given'}"
    return False, ""


def set_kill_switch(
    session: Session,
    on: bool,
    *,
    reason: str = "",
    by: str = "operator",
    now: datetime | None = None,
) -> None:
    """Turn the kill switch on or off: adds a ``settings`` row (history is kept) and its audit
    entry, and flushes; the caller commits."""
    moment = as_utc_naive(now)
    session.add(
        Setting(
            key=KILL_SWITCH_KEY,
            value={"on": on, "reason": reason},
            effective_at=free_instant(session, KILL_SWITCH_KEY, moment),
            set_by=by,
            note=reason or None,
        )
    )
    audit.append(
        session,
        actor=by,
        action="kill_switch_on" if on else "kill_switch_off",
        target=KILL_SWITCH_KEY,
        details={"reason": reason},
        now=moment,
    )
    session.flush()
