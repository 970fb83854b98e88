"""The hash-chained audit trail: appends, verification, and tampering caught."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent import audit
from agent.db import make_engine, session_factory, upgrade
from agent.models import AuditLog

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


def write_chain(session: Session, n: int) -> None:
    for i in range(n):
        audit.append(
            session,
            actor="agent",
            action="decision",
            target=f"decision:{i}",
            details={"confidence": 0.5 + i / 100, "reasons": ["x", "y"], "nested": {"k": i}},
            now=T0 + timedelta(minutes=i),
        )
    session.commit()


def test_an_intact_chain_verifies(session: Session) -> None:
    write_chain(session, 12)
    report = audit.verify_chain(session, batch_size=5)  # several batches
    assert report.ok
    assert report.entries == 12
    assert audit.chain_head(session) == (12, report.head_hash)


def test_empty_chain_verifies(session: Session) -> None:
    assert audit.verify_chain(session) == audit.ChainReport(True, 0)


def test_entries_link_to_their_predecessor(session: Session) -> None:
    write_chain(session, 3)
    entries = session.query(AuditLog).order_by(AuditLog.id).all()
    assert entries[0].prev_hash == audit.GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]


def test_an_edited_entry_is_named(session: Session) -> None:
    write_chain(session, 10)
    session.execute(update(AuditLog).where(AuditLog.id == 4).values(details={"confidence": 1.0}))
    session.commit()
    report = audit.verify_chain(session)
    assert not report.ok
    assert report.first_bad_id == 4
    assert "edited" in report.reason


def test_an_edit_with_a_recomputed_hash_is_named(session: Session) -> None:
    write_chain(session, 10)
    forged = session.get(AuditLog, 6)
    assert forged is not None
    forged.actor = "mallory"
    forged.entry_hash = audit.entry_digest(
        prev_hash=forged.prev_hash or "",
        entry_id=6,
        occurred_at=forged.occurred_at,
        actor="mallory",
        action=forged.action,
        target=forged.target,
        details=forged.details,
        cycle_id=None,
        execution_id=None,
    )
    session.commit()
    report = audit.verify_chain(session)
    assert (report.ok, report.first_bad_id) == (False, 6)


def test_a_deleted_entry_is_named(session: Session) -> None:
    write_chain(session, 10)
    session.execute(delete(AuditLog).where(AuditLog.id == 7))
    session.commit()
    report = audit.verify_chain(session)
    assert (report.ok, report.first_bad_id) == (False, 7)
    assert "missing" in report.reason


def test_details_must_be_json(session: Session) -> None:
    with pytest.raises(ValueError, match="plain JSON values"):
        audit.append(session, actor="agent", action="x", details={"when": datetime.now(UTC)})


def test_a_seeded_trail_is_a_valid_chain_the_agent_extends(seeded: tuple[Engine, Any]) -> None:
    engine, _ = seeded
    with session_factory(engine)() as s:
        before = audit.verify_chain(s)
        assert before.ok
        assert before.entries > 0
        audit.append(s, actor="agent", action="cycle", details={"n": 1})
        s.commit()
        after = audit.verify_chain(s)
    assert after.ok
    assert after.entries == before.entries + 1
