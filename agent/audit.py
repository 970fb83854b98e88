"""The audit trail: append-only, hash-chained entries in ``audit_log``.

Every decision, verdict, execution, approval, undo and cycle is an entry. Entry ``n`` stores
``prev_hash`` (the ``entry_hash`` of entry ``n - 1``) and its own ``entry_hash``::

    entry_hash = sha256(prev_hash | id | occurred_at | actor | action | target | details
                        | cycle_id | execution_id)

over a canonical JSON encoding (sorted keys, no whitespace). Ids are assigned by the chain
(previous id + 1), not by the database, so a deleted entry leaves a gap. :func:`verify_chain`
recomputes every hash and checks every link and every id, and names the first bad entry: an
edited entry fails its own hash, a deleted one breaks the link (and the id sequence) of the
entry after it. Each entry is checked against its own hash before its link, so an entry moved
or swapped is blamed itself, not its neighbour.

Removing entries from the *end* would leave a valid shorter chain, so the chain is anchored as
CloudTrail's digest files anchor a trail: :class:`~agent.models.AuditHead` holds the entry
count and the last id and hash, moved by :func:`append` in the same transaction as the entry.
An edit to ``audit_log`` alone (a truncated tail, a rewritten chain) no longer matches it.

The head record sits in the same database, so whoever can rewrite the log can rewrite the head
too. With an audit key configured (``AUTOPILOT_AUDIT_KEY``, kept outside the database) the head
is also signed: ``mac = HMAC-SHA256(key, "audit_log|entries|last_id|last_hash")``
(:func:`head_mac`), re-signed by every :func:`append`. Without the key nobody can forge the
signature of a rewritten or truncated trail, so :func:`verify_chain` detects it; and
:func:`append` refuses to extend a head whose signature does not match (fail closed). A head
written before the key was configured is unsigned: verify reports it, and
:func:`sign_head` (``autopilot audit sign --by NAME``) signs it once the chain verifies.
Wiping the log and its head together leaves an empty trail; verify then still finds the
cycles, executions and approvals that have no audit entry.
:func:`verify_chain` also checks completeness: every execution, every answered approval and
every undo has its audit entry, and timestamps never decrease. For an anchor outside the
database too, record :func:`chain_head` elsewhere (a log line, a ticket).

Time never runs backwards in the trail: an entry dated before the last one is stored at the
last one's time (the requested time kept in ``details["clock"]``), and a human step
(:func:`check_human_step`) with such a clock is refused.

Two writers racing for the same position both try to insert the same id; the loser's insert
fails on the primary key inside its transaction, and the caller's transaction is rolled back
whole, effect included — so an effect never survives without its audit entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy.orm import Session

from agent.models import Approval, AuditHead, AuditLog, Cycle, Execution
from agent.observe import as_utc_naive
from agent.settings import get_settings

GENESIS = "0" * 64
"""``prev_hash`` of the first entry."""
CHAIN = "audit_log"
"""The name of the chain's head record."""
ANSWERS = ("approval_approved", "approval_rejected", "approval_expired", "approval_refused")
"""The audit actions that answer an approval."""
MAX_LISTED = 10
"""Missing entries named per kind in a report."""


class AuditError(ValueError):
    """An entry that cannot be appended (empty actor, clock before the trail, head record out
    of step with the chain); the message says why and what to do."""


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
    """Add the next entry of the chain to ``session`` and move the head record (flushed, not
    committed: both commit or roll back with the caller's transaction).

    ``AuditError`` for an empty ``actor`` or a head record that does not match the chain.
    """
    if not isinstance(actor, str) or not actor.strip():
        raise AuditError(f"every audit entry names who acted; got actor={actor!r}")
    prev_id, prev_hash, prev_at = _last_entry(session)
    requested = as_utc_naive(now or datetime.now(UTC))
    occurred_at = max(requested, prev_at) if prev_at is not None else requested
    payload = dict(details or {})
    if occurred_at != requested:
        payload["clock"] = requested.isoformat()
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
    key = audit_key()
    if key is not None:
        _check_signature(session, key)
    session.add(entry)
    session.flush()
    _move_head(session, prev_id, prev_hash, entry)
    if key is not None:
        _sign(session, key)
    return entry


def audit_key() -> bytes | None:
    """The configured audit key (``AUTOPILOT_AUDIT_KEY``) as bytes, or ``None``."""
    secret = get_settings().audit_key
    return secret.get_secret_value().encode() if secret is not None else None


def head_mac(key: bytes, entries: int, last_id: int, last_hash: str) -> str:
    """The signature of a head record: HMAC-SHA256 (hex) of ``audit_log|entries|id|hash``."""
    message = f"{CHAIN}|{int(entries)}|{int(last_id)}|{last_hash}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _head_fields(session: Session) -> tuple[int, int, str, str | None] | None:
    row = session.execute(
        select(AuditHead.entries, AuditHead.last_id, AuditHead.last_hash, AuditHead.mac).where(
            AuditHead.name == CHAIN
        )
    ).first()
    return (int(row[0]), int(row[1]), str(row[2]), row[3]) if row is not None else None


def _signature_problem(session: Session, key: bytes) -> str:
    """Why the head's signature does not hold under ``key`` ("" when it does, or there is no
    head yet)."""
    head = _head_fields(session)
    if head is None:
        return ""
    entries, last_id, last_hash, mac = head
    if mac is None:
        return (
            "the audit head record is not signed although AUTOPILOT_AUDIT_KEY is set: if the "
            "key was just configured, check the trail and run `autopilot audit sign --by NAME`; "
            "otherwise the head was rewritten"
        )
    if not hmac.compare_digest(mac, head_mac(key, entries, last_id, last_hash)):
        return (
            "the audit head record's signature does not match AUTOPILOT_AUDIT_KEY: the log and "
            "its head were rewritten together (or the key changed)"
        )
    return ""


def _check_signature(session: Session, key: bytes) -> None:
    problem = _signature_problem(session, key)
    if problem:
        raise AuditError(f"refusing to extend the audit trail: {problem}")


def _sign(session: Session, key: bytes) -> None:
    """Sign the head record as it now stands (flushed)."""
    head = _head_fields(session)
    if head is None:
        return
    entries, last_id, last_hash, _ = head
    session.execute(
        update(AuditHead)
        .where(AuditHead.name == CHAIN)
        .values(mac=head_mac(key, entries, last_id, last_hash))
    )


def sign_head(session: Session, *, by: str) -> ChainReport:
    """Sign an unsigned (or re-sign a) head record with the configured key, after the chain
    verifies without it, and audit the step (``audit_head_signed``, actor ``by``); flushed.
    ``AuditError`` when no key is configured, ``by`` is empty or the chain does not verify."""
    key = audit_key()
    if key is None:
        raise AuditError("no audit key is configured: set AUTOPILOT_AUDIT_KEY first")
    if not isinstance(by, str) or not by.strip():
        raise AuditError(f"a human step must name who takes it (--by); got {by!r}")
    report = verify_chain(session, check_signature=False)
    if not report.ok:
        raise AuditError(
            f"the trail does not verify, so it is not signed: {report.reason} "
            f"{'; '.join(report.missing)}".strip()
        )
    _sign(session, key)
    append(session, actor=by, action="audit_head_signed", details={"entries": report.entries})
    return verify_chain(session)


def _move_head(session: Session, prev_id: int, prev_hash: str, entry: AuditLog) -> None:
    """Advance the head from ``(prev_id, prev_hash)`` to ``entry`` (compare and set)."""
    moved = session.execute(
        update(AuditHead)
        .where(AuditHead.name == CHAIN, AuditHead.last_hash == prev_hash)
        .values(
            entries=AuditHead.entries + 1,
            last_id=entry.id,
            last_hash=entry.entry_hash,
            updated_at=entry.occurred_at,
        )
    )
    if moved.rowcount == 1:  # type: ignore[attr-defined]
        return
    if prev_id == 0 and session.get(AuditHead, CHAIN) is None:
        session.add(
            AuditHead(
                name=CHAIN,
                entries=1,
                last_id=entry.id,
                last_hash=entry.entry_hash,
                updated_at=entry.occurred_at,
            )
        )
        session.flush()
        return
    raise AuditError(
        f"the audit head record does not match the chain (last entry {prev_id}); the trail "
        "may have been tampered with: run `autopilot audit verify`"
    )


def anchor(session: Session) -> None:
    """Set the head record to the chain as it stands (flushed, not committed). Only for a
    trail just written in bulk by a trusted writer (the seed); never to "repair" a trail that
    fails :func:`verify_chain`."""
    last_id, last_hash, last_at = _last_entry(session)
    entries = session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
    head = session.get(AuditHead, CHAIN)
    if head is None:
        head = AuditHead(name=CHAIN)
        session.add(head)
    head.entries, head.last_id, head.last_hash = int(entries), last_id, last_hash
    head.updated_at = last_at or datetime.now(UTC).replace(tzinfo=None)
    session.flush()
    key = audit_key()
    if key is not None:
        _sign(session, key)


HISTORY_TABLES: tuple[str, ...] = (
    "cycles", "decisions", "executions", "approvals", "approval_plans", "audit_log",
    "audit_head", "outbox", "archive", "settings",
)  # fmt: skip
"""What the agent wrote and an operator may need later: the trail and what it describes."""
DECISION_TABLES: tuple[str, ...] = ("cycles", "decisions", "executions", "approvals")
"""Tables whose rows only the agent writes: any row means the agent has history here."""


def agent_history(connection: Connection) -> dict[str, int]:
    """Rows per table of :data:`DECISION_TABLES` (empty dict: no agent history)."""
    counts = {
        name: int(connection.execute(select(func.count()).select_from(table(name))).scalar_one())
        for name in DECISION_TABLES
    }
    return {name: n for name, n in counts.items() if n}


def export_history(connection: Connection, path: Path) -> dict[str, int]:
    """Write every row of :data:`HISTORY_TABLES` to ``path`` as JSON lines (``{"table": ...,
    "row": {...}}``, times in ISO format) and return the rows per table. The file is written
    whole before anything else happens; an existing file is refused with ``ValueError`` (never
    overwritten)."""
    if path.exists():
        raise ValueError(f"history archive {str(path)!r} already exists; choose a new path")
    counts: dict[str, int] = {}
    with path.open("x", encoding="utf-8") as out:
        for name in HISTORY_TABLES:
            counts[name] = 0
            for row in connection.execute(select(table(name))).mappings():
                out.write(json.dumps({"table": name, "row": dict(row)}, default=str) + "\n")
                counts[name] += 1
    return counts


def table(name: str) -> Table:
    from agent.models import Base

    return Base.metadata.tables[name]


def check_human_step(session: Session, actor: str, moment: datetime) -> None:
    """Refuse a human step (approve, reject, undo, kill switch) without a named actor or with
    a clock before the trail's last entry: ``AuditError`` naming both times."""
    if not isinstance(actor, str) or not actor.strip():
        raise AuditError(f"a human step must name who takes it (--by); got {actor!r}")
    _, _, last_at = _last_entry(session)
    if last_at is not None and as_utc_naive(moment) < last_at:
        raise AuditError(
            f"clock {moment:%Y-%m-%d %H:%M:%S} is before the audit trail's last entry "
            f"({last_at:%Y-%m-%d %H:%M:%S}); time cannot run backwards: use --now at or after it"
        )


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of :func:`verify_chain`: ``ok``, how many entries were checked, and the first
    bad entry's id with the reason (``None`` when the chain is intact)."""

    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str = ""
    head_hash: str = GENESIS
    missing: tuple[str, ...] = ()
    """Executions, approvals and undos without their audit entry."""


def verify_chain(
    session: Session, batch_size: int = 5_000, *, check_signature: bool = True
) -> ChainReport:
    """Recompute every entry's hash and check every link and time in id order (streaming in
    batches), then the head record (and its signature, when an audit key is configured and
    ``check_signature``) and the completeness of the trail."""
    expected_id, prev_hash, count = 1, GENESIS, 0
    last_id, last_at = 0, None
    while True:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.id > last_id).order_by(AuditLog.id).limit(batch_size)
        ).all()
        if not rows:
            break
        for entry in rows:
            bad_id, problem = _check_entry(entry, expected_id, prev_hash)
            if not problem and last_at is not None and entry.occurred_at < last_at:
                bad_id, problem = (
                    entry.id,
                    (
                        f"entry {entry.id} is dated {entry.occurred_at} before entry "
                        f"{entry.id - 1} ({last_at}): the trail's time ran backwards"
                    ),
                )
            if problem:
                return ChainReport(False, count, bad_id, problem, prev_hash)
            count += 1
            expected_id, prev_hash, last_id = entry.id + 1, entry.entry_hash, entry.id
            last_at = entry.occurred_at
        session.expunge_all()
    head_problem = _check_head(session, count, last_id, prev_hash)
    key = audit_key() if check_signature else None
    if not head_problem and key is not None:
        head_problem = _signature_problem(session, key)
    if head_problem:
        return ChainReport(False, count, last_id + 1 if last_id else 1, head_problem, prev_hash)
    missing = _missing_entries(session)
    if missing:
        return ChainReport(
            False, count, None, "records without their audit entry", prev_hash, missing
        )
    return ChainReport(True, count, head_hash=prev_hash)


def _check_head(session: Session, entries: int, last_id: int, last_hash: str) -> str:
    """Why the head record disagrees with the verified chain ("" when it agrees)."""
    head = session.get(AuditHead, CHAIN)
    if head is None:
        return "" if entries == 0 else "the audit head record is missing (deleted or never kept)"
    if (head.entries, head.last_id, head.last_hash) == (entries, last_id, last_hash):
        return ""
    if head.entries > entries or head.last_id > last_id:
        return (
            f"entries after {last_id} are missing: the head record counts {head.entries} "
            f"entries up to id {head.last_id}, the log has {entries}"
        )
    return (
        f"the head record ({head.entries} entries, last {head.last_id}) does not match the "
        f"chain ({entries} entries, last {last_id}): the log was rewritten"
    )


def _missing_entries(session: Session) -> tuple[str, ...]:
    """Executions, answered approvals, undos and cycles that have no audit entry."""
    missing: list[str] = []
    audited = {
        (action, execution_id)
        for action, execution_id in session.execute(
            select(AuditLog.action, AuditLog.execution_id)
            .where(AuditLog.action.in_(("execution", "undo")))
            .group_by(AuditLog.action, AuditLog.execution_id)
        )
    }
    executions = session.execute(select(Execution.id, Execution.undone_at)).all()
    no_entry = [i for i, _ in executions if ("execution", i) not in audited]
    no_undo = [i for i, undone in executions if undone is not None and ("undo", i) not in audited]
    answered = {
        int(details.get("approval_id", -1))
        for details in session.scalars(select(AuditLog.details).where(AuditLog.action.in_(ANSWERS)))
        if isinstance(details, dict)
    }
    approvals = session.scalars(select(Approval.id).where(Approval.status != "pending")).all()
    no_answer = [i for i in approvals if i not in answered]
    cycle_audited = select(AuditLog.cycle_id).where(AuditLog.cycle_id.is_not(None)).distinct()
    no_cycle_entry = list(
        session.scalars(select(Cycle.id).where(Cycle.id.not_in(cycle_audited)).order_by(Cycle.id))
    )
    for what, ids in (("execution", no_entry), ("undo of execution", no_undo),
                      ("answer to approval", no_answer), ("cycle", no_cycle_entry)):  # fmt: skip
        if ids:
            listed = ", ".join(map(str, ids[:MAX_LISTED])) + (
                ", ..." if len(ids) > MAX_LISTED else ""
            )
            missing.append(f"{len(ids)} {what} record(s) without an audit entry: {listed}")
    return tuple(missing)


def _check_entry(entry: AuditLog, expected_id: int, prev_hash: str) -> tuple[int, str]:
    """(id of the first bad entry, why) if ``entry`` breaks the chain, else ``(0, "")``."""
    if entry.id != expected_id:
        missing = (
            f"{expected_id}" if entry.id == expected_id + 1 else f"{expected_id}..{entry.id - 1}"
        )
        return expected_id, f"entry {missing} is missing (deleted)"
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
    if entry.prev_hash != prev_hash:
        return entry.id - 1, (
            f"entry {entry.id - 1} was changed: entry {entry.id} links to another hash"
        )
    return 0, ""


def chain_head(session: Session) -> tuple[int, str]:
    """(id, hash) of the last entry: ``(0, GENESIS)`` for an empty trail."""
    last_id, last_hash, _ = _last_entry(session)
    return last_id, last_hash


def _last_entry(session: Session) -> tuple[int, str, datetime | None]:
    """(id, hash, time) of the last entry; ``(0, GENESIS, None)`` for an empty trail."""
    last = session.execute(
        select(AuditLog.id, AuditLog.entry_hash, AuditLog.occurred_at)
        .order_by(AuditLog.id.desc())
        .limit(1)
    ).first()
    return (last[0], last[1], last[2]) if last is not None else (0, GENESIS, None)
