"""The audit trail: append-only, hash-chained entries in ``audit_log``.

Every decision, verdict, execution, approval, undo and cycle is an entry. Entry ``n`` stores
``prev_hash`` (the ``entry_hash`` of entry ``n - 1``) and its own ``entry_hash``::

    entry_hash = sha256(prev_hash | id | occurred_at | actor | action | target | details
                        | cycle_id | execution_id)

over a canonical JSON encoding (sorted keys, no whitespace). Ids are assigned by the chain
(previous id + 1), not by the database, so a deleted entry leaves a gap. :func:`verify_chain`
recomputes every hash and checks every link and every id, and names the first bad entry: an
edited entry fails its own hash, a deleted one breaks the link (and the id sequence) of the
entry after it. Removing entries from the *end* leaves a valid shorter chain: record
:func:`chain_head` outside the database (a log line, a ticket) to detect that too.

Two writers racing for the same position both try to insert the same id; the loser's insert
fails on the primary key inside its transaction, and the caller's transaction is rolled back
whole, effect included — so an effect never survives without its audit entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.models import AuditLog
from agent.observe import as_utc_naive

GENESIS = "0" * 64
"""``prev_hash`` of the first entry."""


def entry_digest(
    *,
    prev_hash: str,
    entry_id: int,
    occurred_at: datetime,
    actor: str,
    action: str,
    target: str | None,
    details: dict[str, Any],
    cycle_id: int | None,
    execution_id: int | None,
) -> str:
    """The SHA-256 (hex) of one entry's content and its predecessor's hash."""
    content = [
        prev_hash,
        entry_id,
        as_utc_naive(occurred_at).isoformat(timespec="microseconds"),
        actor,
        action,
        target,
        details,
        cycle_id,
        execution_id,
    ]
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    cycle_id: int | None = None,
    execution_id: int | None = None,
    now: datetime | None = None,
) -> AuditLog:
    """Add the next entry of the chain to ``session`` (flushed, not committed: it commits or
    rolls back with the caller's transaction)."""
    prev_id, prev_hash = chain_head(session)
    occurred_at = as_utc_naive(now)
    payload = dict(details or {})
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as error:
        raise ValueError(f"audit details must be plain JSON values: {error}") from None
    fields: dict[str, Any] = {
        "occurred_at": occurred_at,
        "actor": actor,
        "action": action,
        "target": target,
        "details": payload,
        "cycle_id": cycle_id,
        "execution_id": execution_id,
    }
    entry = AuditLog(
        id=prev_id + 1,
        prev_hash=prev_hash,
        entry_hash=entry_digest(prev_hash=prev_hash, entry_id=prev_id + 1, **fields),
        **fields,
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of :func:`verify_chain`: ``ok``, how many entries were checked, and the first
    bad entry's id with the reason (``None`` when the chain is intact)."""

    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str = ""
    head_hash: str = GENESIS


def verify_chain(session: Session, batch_size: int = 5_000) -> ChainReport:
    """Recompute every entry's hash and check every link, in id order, streaming in batches."""
    expected_id, prev_hash, count = 1, GENESIS, 0
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.id > last_id).order_by(AuditLog.id).limit(batch_size)
        ).all()
        if not rows:
            return ChainReport(True, count, head_hash=prev_hash)
        for entry in rows:
            bad_id, problem = _check_entry(entry, expected_id, prev_hash)
            if problem:
                return ChainReport(False, count, bad_id, problem, prev_hash)
            count += 1
            expected_id, prev_hash, last_id = entry.id + 1, entry.entry_hash, entry.id
        session.expunge_all()


def _check_entry(entry: AuditLog, expected_id: int, prev_hash: str) -> tuple[int, str]:
    """(id of the first bad entry, why) if ``entry`` breaks the chain, else ``(0, "")``."""
    if entry.id != expected_id:
        missing = (
            f"{expected_id}" if entry.id == expected_id + 1 else f"{expected_id}..{entry.id - 1}"
        )
        return expected_id, f"entry {missing} is missing (deleted)"
    if entry.prev_hash != prev_hash:
        return entry.id - 1, (
            f"entry {entry.id - 1} was changed: entry {entry.id} links to another hash"
        )
    digest = entry_digest(
        prev_hash=entry.prev_hash or "",
        entry_id=entry.id,
        occurred_at=entry.occurred_at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        details=entry.details,
        cycle_id=entry.cycle_id,
        execution_id=entry.execution_id,
    )
    if digest != entry.entry_hash:
        return entry.id, f"entry {entry.id} was edited: its content does not match its hash"
    return 0, ""


def chain_head(session: Session) -> tuple[int, str]:
    """(id, hash) of the last entry: ``(0, GENESIS)`` for an empty trail."""
    last = session.execute(
        select(AuditLog.id, AuditLog.entry_hash).order_by(AuditLog.id.desc()).limit(1)
    ).first()
    return (last[0], last[1]) if last is not None else (0, GENESIS)
