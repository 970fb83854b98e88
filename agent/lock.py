"""The cycle lock: one cycle at a time per database.

The lock is a row of ``cycle_locks`` whose primary key is the lock name; a second holder's
insert fails on the key and is told who holds it (:class:`CycleRunning`). A lock left by a
crashed holder expires after :data:`LOCK_TTL`.

This is the one documented exception to "the caller owns the transaction": acquiring and
releasing the lock each commit at once, on a connection of their own, because the lock exists
only to be seen by other processes while the cycle's own transaction is still open.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from agent.models import CycleLock
from agent.observe import as_utc_naive

LOCK_NAME = "cycle"
LOCK_TTL = timedelta(minutes=30)
"""How long a lock stays valid; a cycle takes seconds, so an older lock was left by a crash."""


class CycleRunning(RuntimeError):
    """Another cycle holds this database's cycle lock."""


def engine_of(target: Session | Engine) -> Engine:
    """The engine behind a session (or the engine itself)."""
    if isinstance(target, Engine):
        return target
    bind = target.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def acquire(engine: Engine, name: str = LOCK_NAME) -> str:
    """Take the lock ``name`` (committed at once) and return the holder id; raises
    :class:`CycleRunning` naming the holder when another process has it."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    wall = as_utc_naive(None)
    row = {"name": name, "holder": holder, "acquired_at": wall, "expires_at": wall + LOCK_TTL}
    try:
        with engine.begin() as connection:
            connection.execute(
                delete(CycleLock).where(CycleLock.name == name, CycleLock.expires_at < wall)
            )
            connection.execute(insert(CycleLock).values(**row))
    except IntegrityError:
        with engine.connect() as connection:
            current = connection.execute(
                select(CycleLock.holder, CycleLock.acquired_at).where(CycleLock.name == name)
            ).first()
        who = f"{current[0]} since {current[1]:%Y-%m-%d %H:%M:%S}" if current else "another process"
        raise CycleRunning(f"a cycle is already running on this database ({who})") from None
    except OperationalError as error:
        if "locked" in str(error).lower():
            raise CycleRunning(
                "a cycle is already running on this database (it is busy writing)"
            ) from None
        raise
    return holder


def release(engine: Engine, holder: str, name: str = LOCK_NAME) -> None:
    """Drop the lock ``name`` if ``holder`` still has it (committed at once; idempotent)."""
    with engine.begin() as connection:
        connection.execute(
            delete(CycleLock).where(CycleLock.name == name, CycleLock.holder == holder)
        )


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
