"""The kill switch: one flag that pauses every execution.

It is on when the settings force it (``AUTOPILOT_KILL_SWITCH``, :class:`agent.settings.Settings`)
or when the latest ``kill_switch`` row of ``settings`` (the table, with history) says so. The
guardrails read the answer from their context; nothing here commits: the caller owns the
transaction (see :func:`agent.db.session_scope`).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from agent import audit
from agent.actuators import free_instant
from agent.alerts import kill_switch_alert
from agent.models import Setting
from agent.observe import as_utc_naive
from agent.settings import ENV_PREFIX, Settings, get_settings

KILL_SWITCH_KEY = "kill_switch"
"""The key of the kill switch's rows in the ``settings`` table."""
KILL_SWITCH_ENV = f"{ENV_PREFIX}KILL_SWITCH"


def kill_switch_state(session: Session, settings: Settings | None = None) -> tuple[bool, str]:
    """(on, reason): forced on by ``settings`` (default :func:`get_settings`), else the
    latest ``kill_switch`` row. Reads only.

    It fails closed: a stored value that is not clearly off (a JSON object whose ``on`` is
    ``false``) reads as on, with a reason quoting it: ``{"on": "no"}``, the string ``"on"``,
    a JSON ``null`` or text that is not JSON at all. No row at all is off."""
    if (settings or get_settings()).kill_switch:
        return True, f"environment variable {KILL_SWITCH_ENV} is on"
    rows = session.execute(
        select(cast(Setting.value, Text))  # the raw text: unparsable JSON must not raise
        .where(Setting.key == KILL_SWITCH_KEY)
        .order_by(Setting.effective_at.desc(), Setting.id.desc())
        .limit(1)
    ).all()
    return (False, "") if not rows else _read_stored(rows[0][0])


def _read_stored(raw: str | None) -> tuple[bool, str]:
    """(on, reason) of one stored kill-switch value (its JSON text); see
    :func:`kill_switch_state`."""
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        value = _UNPARSABLE
    if isinstance(value, dict) and value.get("on") is True:
        return True, f"kill switch set: {value.get('reason') or 'no reason given'}"
    if isinstance(value, dict) and value.get("on") is False:
        return False, ""
    return True, (
        f"kill switch value {raw!r} is not understood (allowed: an object with "
        '"on": true or false); treated as on'
    )


_UNPARSABLE = object()
"""What a stored value that is not JSON reads as (never clearly off)."""


def set_kill_switch(
    session: Session,
    on: bool,
    *,
    reason: str = "",
    by: str = "operator",
    now: datetime | None = None,
) -> None:
    """Turn the kill switch on or off: adds a ``settings`` row (history is kept), its audit
    entry and its alert (:func:`agent.alerts.kill_switch_alert`), and flushes; the caller
    commits. A human step: raises :class:`~agent.audit.AuditError` for an empty ``by`` or a
    ``now`` before the audit trail's last entry (:func:`agent.audit.check_human_step`)."""
    moment = as_utc_naive(now)
    audit.check_human_step(session, by, moment)
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
    kill_switch_alert(session, on, reason, by, now=moment)
    session.flush()
