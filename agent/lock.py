"""The cycle lock: one cycle at a time per database, held as a lease with a heartbeat.

The lock is a row of ``cycle_locks`` whose primary key is the lock name; a second holder's
insert fails on the key. The holder is named ``host:pid:token``. While a cycle runs, a
heartbeat thread (:class:`Heartbeat`) pushes ``expires_at`` to :data:`LEASE_TTL` from now every
:data:`HEARTBEAT_EVERY`. Whoever finds the row decides whether its holder still lives
(:func:`staleness`):

- a holder on this host is alive exactly while its process is (its pid exists and is not a
  zombie): a holder whose process is gone is recognised at once, whatever its lease says, and a
  live one is never taken over, even past its lease (on SQLite the heartbeat cannot write while
  the cycle's own transaction holds the database's one write lock, so there only the pid tells);
- a holder on another host is alive while its lease runs (at ``expires_at`` exactly it still
  holds; after it, it is stale).

:func:`acquire` takes the lock, or takes over a stale one: the dead holder's cycle (a row left
``running``, or, when its transaction died with it, a new row) is recorded ``aborted`` with a
``cycle_aborted`` audit entry, in the same transaction as the takeover. A live holder is
reported at once by :class:`CycleRunning` (holder, host, pid, since, when the lease expires): the
lock row is *read* first, which never waits on SQLite's write lock (WAL journaling), and the
write itself waits at most :data:`SQLITE_WRITE_WAIT_MS` for that lock before the row is read
again. :func:`force_release` is the operator's way out (``autopilot lock release --force``),
audited.

Known limit: a pid reused by an unrelated process after the holder died keeps the lock held
until an operator releases it (the status names the pid, so it can be checked).

This is the one documented exception to "the caller owns the transaction": acquiring, renewing
and releasing the lock each commit at once, on a connection of their own, because the lock
exists only to be seen by other processes while the cycle's own transaction is still open.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from agent import audit
from agent.models import Cycle, CycleLock
from agent.ticks import runner_name, utc_now

log = logging.getLogger(__name__)

LOCK_NAME = "cycle"
LEASE_TTL = timedelta(seconds=60)
"""How long a lease lasts without a heartbeat: what a holder on another host that stopped
beating keeps the lock for."""
HEARTBEAT_EVERY = LEASE_TTL / 3
"""How often a running cycle renews its lease (three beats may fail before it lapses)."""
SQLITE_WRITE_WAIT_MS = 200
"""How long taking the lock waits for SQLite's write lock (held by a running cycle's
transaction) before reading the lock row again, instead of the driver's 5 s."""
ABORTED = "aborted"
"""The status of a cycle whose holder died before it finished."""


def new_holder() -> str:
    """A fresh holder name for this process: the runner's ``host:pid`` and a token. The lock
    always runs on the wall clock (:func:`agent.ticks.utc_now`), never on a cycle's simulated
    ``as_of``."""
    return f"{runner_name()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class LockHolder:
    """The row of a held lock: who (``host:pid:token``), since when, until when its lease runs."""

    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime

    @property
    def host(self) -> str:
        return self.holder.split(":")[0]

    @property
    def pid(self) -> int | None:
        parts = self.holder.split(":")
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None

    def describe(self, now: datetime | None = None) -> str:
        """One line: holder, pid, since and the lease's end (or why it is stale)."""
        moment = now or utc_now()
        why = staleness(self, moment)
        state = f"stale: {why}" if why else "alive"
        return (
            f"{self.holder} (pid {self.pid} on {self.host}) since "
            f"{self.acquired_at:%Y-%m-%d %H:%M:%S} UTC, lease expires "
            f"{self.expires_at:%Y-%m-%d %H:%M:%S} UTC; {state}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The holder as JSON values (times ISO-8601, UTC)."""
        return {
            "holder": self.holder,
            "host": self.host,
            "pid": self.pid,
            "since": self.acquired_at.isoformat() + "Z",
            "lease_expires_at": self.expires_at.isoformat() + "Z",
        }


class CycleRunning(RuntimeError):
    """Another cycle holds this database's cycle lock; ``holder`` says who (``None`` when the
    database was too busy writing to tell)."""

    def __init__(self, holder: LockHolder | str | None, message: str | None = None) -> None:
        if isinstance(holder, str):  # a message alone, the exception's old form
            holder, message = None, message or holder
        self.holder = holder
        text = message or (
            f"a cycle is already running on this database: {holder.describe()}"
            if holder is not None
            else "a cycle is already running on this database"
        )
        super().__init__(text)

    def details(self) -> dict[str, Any]:
        """The holder's fields for an API body (empty when unknown)."""
        return self.holder.to_dict() if self.holder is not None else {}


class NoLockHeld(LookupError):
    """:func:`force_release` found nothing to release."""


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie (a killed process its
    parent has not reaped yet is dead for the lock's purposes)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): existence is all we can tell
    return state not in ("Z", "X")


def staleness(holder: LockHolder, now: datetime) -> str:
    """Why ``holder`` no longer holds the lock, or ``""`` when it does (see the module
    docstring for the rule)."""
    if holder.host == socket.gethostname() and holder.pid is not None:
        if process_alive(holder.pid):
            return ""
        return f"its process {holder.pid} on {holder.host} is gone"
    if now > holder.expires_at:
        return f"its lease expired at {holder.expires_at:%Y-%m-%d %H:%M:%S} UTC"
    return ""


def engine_of(target: Session | Engine) -> Engine:
    """The engine behind a session (or the engine itself)."""
    if isinstance(target, Engine):
        return target
    bind = target.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def current_holder(engine: Engine, name: str = LOCK_NAME) -> LockHolder | None:
    """The lock's row as it stands (live or stale), or ``None`` when nobody holds it. A read:
    on SQLite it never waits for a writer."""
    with engine.connect() as connection:
        row = connection.execute(
            select(CycleLock.holder, CycleLock.acquired_at, CycleLock.expires_at).where(
                CycleLock.name == name
            )
        ).first()
    return LockHolder(name, row[0], row[1], row[2]) if row is not None else None


@contextmanager
def _write(engine: Engine, *, wait_ms: int | None) -> Iterator[Connection]:
    """A committed-at-exit transaction on a connection of its own; on SQLite with a busy
    timeout of ``wait_ms`` (``None``: the driver's) for the write lock, restored afterwards."""
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite" and wait_ms is not None
        previous = None
        if sqlite:
            previous = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_ms or 0)}")
            connection.commit()
        try:
            with connection.begin():
                yield connection
        finally:
            if sqlite:
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous or 0)}")
                connection.commit()


def _is_busy(error: OperationalError) -> bool:
    return "locked" in str(error).lower() or "busy" in str(error).lower()


def acquire(engine: Engine, name: str = LOCK_NAME) -> str:
    """Take the lock ``name`` (committed at once), start its heartbeat, and return the holder
    name. A stale holder is taken over and its cycle recorded aborted; a live one raises
    :class:`CycleRunning` at once, naming it."""
    me = new_holder()
    for wait_ms in (SQLITE_WRITE_WAIT_MS, None):
        now = utc_now()
        current = current_holder(engine, name)
        if current is not None and not staleness(current, now):
            raise CycleRunning(current)
        try:
            with _write(engine, wait_ms=wait_ms) as connection:
                taken = 0
                if current is not None:
                    taken = connection.execute(
                        delete(CycleLock).where(
                            CycleLock.name == name, CycleLock.holder == current.holder
                        )
                    ).rowcount
                connection.execute(
                    insert(CycleLock).values(
                        name=name, holder=me, acquired_at=now, expires_at=now + LEASE_TTL
                    )
                )
                if current is not None and taken == 1:
                    abort_dead_cycle(connection, current, staleness(current, now), me, now)
        except IntegrityError:  # another process took it between our read and our write
            continue
        except OperationalError as error:
            if not _is_busy(error):
                raise
            continue  # a writer held the database: read the lock again
        Heartbeat.start_for(engine, name, me)
        if current is not None:
            log.warning("took over the cycle lock from %s", current.describe(now))
        return me
    holder = current_holder(engine, name)
    if holder is not None:
        raise CycleRunning(holder)
    raise CycleRunning(
        None,
        "the database stayed locked by another writer (no cycle holds the lock); try again",
    )


def abort_dead_cycle(
    connection: Connection, dead: LockHolder, reason: str, by: str, now: datetime
) -> int:
    """Record the cycle of ``dead`` (a holder found stale) as ``aborted`` with a
    ``cycle_aborted`` audit entry, inside ``connection``'s transaction; returns its id.

    A cycle row still ``running`` is that cycle (only the lock holder runs one); when there is
    none (its transaction died with its process), a row is written for it, started when it took
    the lock."""
    with Session(bind=connection) as session:
        running = session.scalars(select(Cycle).where(Cycle.status == "running")).all()
        if not running:
            running = [
                Cycle(
                    started_at=dead.acquired_at,
                    as_of=dead.acquired_at,
                    mode="unknown",
                    status="running",
                )
            ]
            session.add(running[0])
        for cycle in running:
            cycle.status = ABORTED
            cycle.finished_at = now
            cycle.error = f"aborted: the cycle lock's holder {dead.holder} died ({reason})"
        session.flush()
        for cycle in running:
            audit.append(
                session,
                actor="agent",
                action="cycle_aborted",
                target="cycle",
                details={**dead.to_dict(), "reason": reason, "taken_over_by": by},
                cycle_id=cycle.id,
                now=now,
            )
        session.flush()
        return running[-1].id


def release_dead_runner(connection: Connection, runner: str, by: str, now: datetime) -> int | None:
    """Drop the cycle lock that ``runner`` (``host:pid``, a scheduler whose tick lease
    expired: :func:`agent.ticks.claim_tick`) held and record its cycle aborted
    (:func:`abort_dead_cycle`, taken over ``by``), inside ``connection``'s transaction. Returns
    the aborted cycle's id, or None when the runner held no lock."""
    row = connection.execute(
        select(CycleLock.name, CycleLock.holder, CycleLock.acquired_at, CycleLock.expires_at).where(
            CycleLock.holder.like(f"{runner}:%")
        )
    ).first()
    if row is None:
        return None
    dead = LockHolder(*row)
    connection.execute(
        delete(CycleLock).where(CycleLock.name == dead.name, CycleLock.holder == dead.holder)
    )
    return abort_dead_cycle(connection, dead, "its runner's tick lease expired", by, now)


def renew(engine: Engine, holder: str, name: str = LOCK_NAME) -> bool:
    """Push ``holder``'s lease to :data:`LEASE_TTL` from now; ``False`` when it no longer holds
    the lock (taken over or released)."""
    with _write(engine, wait_ms=SQLITE_WRITE_WAIT_MS) as connection:
        renewed = connection.execute(
            update(CycleLock)
            .where(CycleLock.name == name, CycleLock.holder == holder)
            .values(expires_at=utc_now() + LEASE_TTL)
        ).rowcount
    return bool(renewed == 1)


def release(engine: Engine, holder: str, name: str = LOCK_NAME) -> None:
    """Stop ``holder``'s heartbeat and drop the lock ``name`` if it still has it (committed at
    once; idempotent)."""
    Heartbeat.stop_for(holder)
    with engine.begin() as connection:
        connection.execute(
            delete(CycleLock).where(CycleLock.name == name, CycleLock.holder == holder)
        )


def force_release(
    engine: Engine, *, by: str, name: str = LOCK_NAME, now: datetime | None = None
) -> tuple[LockHolder, str]:
    """The operator's release of whatever holds ``name``, audited (``cycle_lock_released``,
    actor ``by``); a stale holder's cycle is recorded aborted too. Returns the holder removed
    and why it was stale (``""``: it was alive, and its cycle may still be running).

    ``NoLockHeld`` when nobody holds the lock; ``AuditError`` for an empty ``by``."""
    moment = now or utc_now()
    with _write(engine, wait_ms=None) as connection:
        row = connection.execute(
            select(CycleLock.holder, CycleLock.acquired_at, CycleLock.expires_at).where(
                CycleLock.name == name
            )
        ).first()
        if row is None:
            raise NoLockHeld(
                f"no cycle lock is held on this database (lock {name!r}): nothing to release"
            )
        held = LockHolder(name, row[0], row[1], row[2])
        why = staleness(held, moment)
        with Session(bind=connection) as session:
            connection.execute(
                delete(CycleLock).where(CycleLock.name == name, CycleLock.holder == held.holder)
            )
            audit.append(
                session,
                actor=by,
                action="cycle_lock_released",
                target=name,
                details={**held.to_dict(), "stale": why or None, "forced": True},
                now=moment,
            )
            session.flush()
        if why:
            abort_dead_cycle(connection, held, why, by, moment)
    return held, why


@contextmanager
def cycle_lock(engine: Engine, name: str = LOCK_NAME) -> Iterator[str]:
    """Hold the lock ``name`` for the ``with`` block (see :func:`acquire`, :func:`release`).

    Enter it before the cycle's session writes anything: on SQLite, a session holding an
    open write transaction would block the lock's own connection.
    """
    holder = acquire(engine, name)
    try:
        yield holder
    finally:
        release(engine, holder, name)


class Heartbeat:
    """Renew a holder's lease every :data:`HEARTBEAT_EVERY` in a daemon thread until
    :func:`release` stops it. A failed renewal (SQLite busy with the cycle's own writes, a
    database hiccup) is retried at the next beat; a lost lock stops the beat with an error."""

    _running: dict[str, Heartbeat] = {}  # noqa: RUF012 - the process's beats, by holder
    _guard = threading.Lock()

    def __init__(self, engine: Engine, name: str, holder: str, every: timedelta) -> None:
        self.engine, self.name, self.holder = engine, name, holder
        self.every = every.total_seconds()
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{name}", daemon=True)

    @classmethod
    def start_for(
        cls, engine: Engine, name: str, holder: str, every: timedelta = HEARTBEAT_EVERY
    ) -> Heartbeat:
        beat = cls(engine, name, holder, every)
        with cls._guard:
            cls._running[holder] = beat
        beat._thread.start()
        return beat

    @classmethod
    def stop_for(cls, holder: str) -> None:
        with cls._guard:
            beat = cls._running.pop(holder, None)
        if beat is not None:
            beat._stop.set()
            if beat._thread is not threading.current_thread():
                beat._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not renew(self.engine, self.holder, self.name):
                    self.lost = True
                    log.error("lost the cycle lock %s (holder %s)", self.name, self.holder)
                    return
            except OperationalError as error:  # busy or a hiccup: the next beat tries again
                log.debug("renewing the cycle lock failed: %s", error)


__all__ = [
    "ABORTED",
    "HEARTBEAT_EVERY",
    "LEASE_TTL",
    "LOCK_NAME",
    "CycleRunning",
    "Heartbeat",
    "LockHolder",
    "NoLockHeld",
    "acquire",
    "current_holder",
    "cycle_lock",
    "engine_of",
    "force_release",
    "release",
    "renew",
    "staleness",
]
