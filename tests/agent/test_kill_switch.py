"""The kill switch fails closed, is a human step, and alerts each change (real SQLite)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text

from agent.audit import AuditError
from agent.db import session_factory
from agent.kill_switch import KILL_SWITCH_KEY, kill_switch_state, set_kill_switch
from agent.models import Alert, Setting
from agent.settings import Settings

AT = datetime(2026, 1, 1, 12)
"""The clock of these tests."""


def _store_raw(engine: Engine, raw: str) -> None:
    """A kill-switch row whose stored JSON text is ``raw`` exactly (bypassing the ORM)."""
    with session_factory(engine)() as session:
        session.add(Setting(key=KILL_SWITCH_KEY, value={}, effective_at=AT, set_by="test"))
        session.commit()
        session.execute(text("UPDATE settings SET value = :raw"), {"raw": raw})
        session.commit()


@pytest.mark.parametrize(
    ("raw", "on"),
    [
        ('{"on": false, "reason": ""}', False),
        ('{"on": true, "reason": "incident"}', True),
        ('"on"', True),
        ('"off"', True),
        ('{"on": "no"}', True),
        ('{"on": 0}', True),
        ("{}", True),
        ("null", True),
        ("[false]", True),
        ("garbage {", True),
    ],
)
def test_a_stored_value_not_clearly_off_reads_as_on(
    sqlite_engine: Engine, raw: str, on: bool
) -> None:
    _store_raw(sqlite_engine, raw)
    with session_factory(sqlite_engine)() as session:
        state, reason = kill_switch_state(session, Settings())
    assert state is on
    if on and "incident" not in raw:
        assert raw in reason and "treated as on" in reason
    if not on:
        assert reason == ""


def test_no_row_is_off(sqlite_engine: Engine) -> None:
    with session_factory(sqlite_engine)() as session:
        assert kill_switch_state(session, Settings()) == (False, "")


@pytest.mark.parametrize("by", ["", "  "])
def test_setting_it_needs_a_name(sqlite_engine: Engine, by: str) -> None:
    with session_factory(sqlite_engine)() as session:
        with pytest.raises(AuditError, match="must name who"):
            set_kill_switch(session, True, reason="x", by=by, now=AT)
        assert session.scalars(select(Setting)).all() == []


def test_setting_it_refuses_a_clock_before_the_trail(sqlite_engine: Engine) -> None:
    with session_factory(sqlite_engine)() as session:
        set_kill_switch(session, True, reason="x", by="ops", now=AT)
        set_kill_switch(session, False, by="ops", now=AT)  # at the last entry: allowed
        with pytest.raises(AuditError, match="before the audit trail"):
            set_kill_switch(session, True, by="ops", now=AT - timedelta(seconds=1))


def test_each_change_raises_its_alert(sqlite_engine: Engine) -> None:
    with session_factory(sqlite_engine)() as session:
        set_kill_switch(session, True, reason="incident 7", by="ops", now=AT)
        set_kill_switch(session, False, by="ops", now=AT + timedelta(minutes=1))
        session.commit()
        alerts = session.scalars(select(Alert).order_by(Alert.id)).all()
    assert [(a.kind, a.severity, a.details["on"]) for a in alerts] == [
        ("kill_switch", "critical", True),
        ("kill_switch", "info", False),
    ]
    assert "incident 7" in alerts[0].summary and "ops" in alerts[0].summary
