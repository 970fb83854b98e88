"""The audit head signed with a key kept outside the database (``AUTOPILOT_AUDIT_KEY``): a log
rewritten or truncated *together with* its head record no longer verifies, and the trail is
never extended from a forged head."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent import audit
from agent.db import make_engine, session_factory, upgrade
from agent.models import AuditHead, AuditLog, Cycle
from agent.settings import AUDIT_KEY_MIN_CHARS, Settings, get_settings
from cli.main import main

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
KEY = "k" * AUDIT_KEY_MIN_CHARS


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOPILOT_AUDIT_KEY", KEY)
    get_settings.cache_clear()


def _write(engine: Engine, n: int, start: int = 0) -> None:
    with session_factory(engine)() as session:
        for i in range(start, start + n):
            audit.append(session, actor="agent", action="decision", target=f"d:{i}",
                         details={"i": i}, now=T0 + timedelta(minutes=i))  # fmt: skip
        session.commit()


def _rewrite(engine: Engine, keep: int, *, mac: str | None = "keep") -> None:
    """What someone with write access to the database (not the key) can do: keep the first
    ``keep`` entries, recompute every hash from there and fix the head record to match."""
    with session_factory(engine)() as session:
        session.execute(delete(AuditLog).where(AuditLog.id > keep))
        prev = audit.GENESIS
        for entry in session.scalars(select(AuditLog).order_by(AuditLog.id)):
            entry.details = {**entry.details, "rewritten": True}
            entry.prev_hash = prev
            entry.entry_hash = audit.entry_digest(
                prev_hash=prev, entry_id=entry.id, occurred_at=entry.occurred_at,
                actor=entry.actor, action=entry.action, target=entry.target,
                details=entry.details, cycle_id=entry.cycle_id, execution_id=entry.execution_id,
            )  # fmt: skip
            prev = entry.entry_hash
        values: dict[str, object] = {"entries": keep, "last_id": keep, "last_hash": prev}
        if mac != "keep":
            values["mac"] = mac
        session.execute(update(AuditHead).values(**values))
        session.commit()


def _verify(engine: Engine) -> audit.ChainReport:
    get_settings.cache_clear()
    with session_factory(engine)() as session:
        return audit.verify_chain(session)


def test_with_a_key_every_append_signs_the_head(engine: Engine, keyed: None) -> None:
    _write(engine, 3)
    with Session(engine) as session:
        head = session.get(AuditHead, audit.CHAIN)
        assert head is not None and head.mac == audit.head_mac(KEY.encode(), 3, 3, head.last_hash)
    assert _verify(engine).ok


@pytest.mark.parametrize("keep", [0, 2, 5], ids=["wiped-to-nothing", "truncated", "rewritten"])
def test_a_log_rewritten_with_its_head_is_caught_with_the_key(
    engine: Engine, keyed: None, keep: int
) -> None:
    _write(engine, 5)
    _rewrite(engine, keep)
    report = _verify(engine)
    assert not report.ok and "signature does not match" in report.reason


@pytest.mark.parametrize("keep", [2, 5], ids=["truncated", "rewritten"])
def test_without_the_key_the_same_rewrite_verifies(engine: Engine, keep: int) -> None:
    """The limit the key removes: head and log live in one database."""
    _write(engine, 5)
    _rewrite(engine, keep)
    assert _verify(engine).ok


def test_a_forged_head_is_never_extended(engine: Engine, keyed: None) -> None:
    _write(engine, 4)
    _rewrite(engine, 2, mac=audit.head_mac(b"not the real key!", 2, 2, "x"))
    with session_factory(engine)() as session:
        with pytest.raises(audit.AuditError, match="refusing to extend the audit trail"):
            audit.append(session, actor="agent", action="decision")
        session.rollback()
        assert session.scalar(select(AuditLog.id).order_by(AuditLog.id.desc())) == 2


def test_an_unsigned_head_is_reported_then_signed_by_a_named_operator(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(engine, 3)  # before the key was configured
    monkeypatch.setenv("AUTOPILOT_AUDIT_KEY", KEY)
    report = _verify(engine)
    assert not report.ok and "not signed" in report.reason and "audit sign" in report.reason
    with session_factory(engine)() as session:
        with pytest.raises(audit.AuditError, match="must name who"):
            audit.sign_head(session, by=" ")
        signed = audit.sign_head(session, by="ops")
        session.commit()
    assert signed.ok and signed.entries == 4
    assert _verify(engine).ok
    with Session(engine) as session:
        last = session.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
        assert last is not None and (last.action, last.actor) == ("audit_head_signed", "ops")


def test_a_trail_that_does_not_verify_is_not_signed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(engine, 3)
    with engine.begin() as connection:
        connection.execute(update(AuditLog).where(AuditLog.id == 2).values(actor="mallory"))
    monkeypatch.setenv("AUTOPILOT_AUDIT_KEY", KEY)
    get_settings.cache_clear()
    with (
        session_factory(engine)() as session,
        pytest.raises(audit.AuditError, match="entry 2 was edited"),
    ):
        audit.sign_head(session, by="ops")


def test_sign_needs_a_key(engine: Engine) -> None:
    with (
        session_factory(engine)() as session,
        pytest.raises(audit.AuditError, match="no audit key"),
    ):
        audit.sign_head(session, by="ops")


def test_a_wiped_trail_is_caught_by_the_cycles_it_described(engine: Engine) -> None:
    """Log and head deleted together: the cycles still name entries that are gone."""
    with session_factory(engine)() as session:
        cycle = Cycle(started_at=T0.replace(tzinfo=None), as_of=T0.replace(tzinfo=None))
        session.add(cycle)
        session.flush()
        audit.append(session, actor="agent", action="cycle_started", cycle_id=cycle.id, now=T0)
        session.commit()
    assert _verify(engine).ok
    with engine.begin() as connection:
        connection.execute(delete(AuditLog))
        connection.execute(delete(AuditHead))
    report = _verify(engine)
    assert not report.ok and any(
        "cycle record(s) without an audit entry" in m for m in report.missing
    )


@pytest.mark.parametrize(
    ("length", "ok"),
    [
        (AUDIT_KEY_MIN_CHARS - 1, False),
        (AUDIT_KEY_MIN_CHARS, True),
        (AUDIT_KEY_MIN_CHARS + 1, True),
    ],
    ids=["just-under", "at", "just-over"],
)
def test_the_key_has_a_minimum_length(length: int, ok: bool) -> None:
    if ok:
        assert Settings(audit_key="x" * length).audit_key is not None
        return
    with pytest.raises(ValidationError, match=f"at least {AUDIT_KEY_MIN_CHARS} characters"):
        Settings(audit_key="x" * length)


def test_the_commands_verify_and_sign(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", str(engine.url)]
    _write(engine, 2)
    monkeypatch.setenv("AUTOPILOT_AUDIT_KEY", KEY)
    get_settings.cache_clear()
    assert main(["audit", "verify", *db]) == 1
    assert "not signed" in capsys.readouterr().out
    assert main(["audit", "sign", "--by", "ops", *db]) == 0
    assert "audit head signed by ops: 3 entries" in capsys.readouterr().out
    assert main(["audit", "verify", *db]) == 0
    monkeypatch.delenv("AUTOPILOT_AUDIT_KEY")
    get_settings.cache_clear()
    assert main(["audit", "sign", "--by", "ops", *db]) == 1
    assert "no audit key is configured" in capsys.readouterr().err
