"""The cycle lock as a lease: a dead holder on this host is recognised at once, a holder on
another host holds exactly while its lease runs, a live holder is reported at once (never waited
for on SQLite), the heartbeat renews, and a dead cycle is recorded aborted in the audit trail."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.orm import Session

from agent import lock
from agent.audit import AuditError, verify_chain
from agent.models import AuditLog, Cycle, CycleLock
from agent.orchestrator import run_full_cycle

REPO = Path(__file__).parents[2]
HOST = socket.gethostname()


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _plant(engine: Engine, holder: str, *, expires_in: timedelta = lock.LEASE_TTL) -> None:
    """A lock row as a holder left it (acquired a minute ago)."""
    now = lock.utc_now()
    with engine.begin() as connection:
        connection.execute(
            insert(CycleLock).values(
                name=lock.LOCK_NAME,
                holder=holder,
                acquired_at=now - timedelta(minutes=1),
                expires_at=now + expires_in,
            )
        )


def _holders(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(CycleLock.holder)))


def _audit_actions(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def _cycles(engine: Engine) -> list[tuple[str, str | None]]:
    with Session(engine) as session:
        return [(c.status, c.error) for c in session.scalars(select(Cycle).order_by(Cycle.id))]


def _chain_ok(engine: Engine) -> bool:
    with Session(engine) as session:
        return verify_chain(session).ok


# --- who holds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "stale"),
    [(timedelta(microseconds=-1), False), (timedelta(0), False), (timedelta(microseconds=1), True)],
    ids=["just-before-expiry", "at-expiry", "just-after-expiry"],
)
def test_a_holder_on_another_host_holds_exactly_while_its_lease_runs(
    offset: timedelta, stale: bool
) -> None:
    end = datetime(2026, 1, 1, 12, 0, 0)
    holder = lock.LockHolder("cycle", "elsewhere:4242:abcd", end - lock.LEASE_TTL, end)
    why = lock.staleness(holder, end + offset)
    assert bool(why) is stale
    if stale:
        assert "lease expired at 2026-01-01 12:00:00" in why


def test_a_holder_on_this_host_is_judged_by_its_process_not_its_lease() -> None:
    long_ago = datetime(2000, 1, 1)
    alive = lock.LockHolder("cycle", f"{HOST}:{os.getpid()}:abcd", long_ago, long_ago)
    assert lock.staleness(alive, lock.utc_now()) == ""  # lease long past, process alive
    pid = _dead_pid()
    future = lock.utc_now() + timedelta(hours=1)
    dead = lock.LockHolder("cycle", f"{HOST}:{pid}:abcd", long_ago, future)
    assert lock.staleness(dead, lock.utc_now()) == f"its process {pid} on {HOST} is gone"


def test_an_unreaped_killed_process_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert lock.process_alive(child.pid)
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 5
        while lock.process_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # a zombie until reaped: dead all the same
        assert not lock.process_alive(child.pid)
    finally:
        child.wait()


# --- acquiring ------------------------------------------------------------------------------


def test_a_live_holder_is_reported_with_pid_since_and_lease_end(any_engine: Engine) -> None:
    with lock.cycle_lock(any_engine) as holder:
        with pytest.raises(lock.CycleRunning) as refused:
            lock.acquire(any_engine)
        message = str(refused.value)
        assert holder in message and f"pid {os.getpid()} on {HOST}" in message
        assert "since " in message and "lease expires " in message
        details = refused.value.details()
        assert details["holder"] == holder and details["pid"] == os.getpid()
        assert details["since"].endswith("Z") and details["lease_expires_at"].endswith("Z")
    assert _holders(any_engine) == []
    assert _cycles(any_engine) == []  # nothing aborted: the holder was alive


def test_a_live_local_holder_past_its_lease_is_not_taken_over(any_engine: Engine) -> None:
    """On SQLite the heartbeat cannot write while the cycle writes: the pid decides."""
    _plant(any_engine, f"{HOST}:{os.getpid()}:mine", expires_in=-timedelta(minutes=5))
    with pytest.raises(lock.CycleRunning, match=f"pid {os.getpid()}"):
        lock.acquire(any_engine)


def test_a_dead_local_holder_is_taken_over_at_once_and_its_cycle_aborted(
    any_engine: Engine,
) -> None:
    pid = _dead_pid()
    _plant(any_engine, f"{HOST}:{pid}:ghost")  # its lease still runs for a minute
    holder = lock.acquire(any_engine)
    try:
        assert _holders(any_engine) == [holder]
        [(status, error)] = _cycles(any_engine)
        assert status == "aborted" and error is not None
        assert f"{HOST}:{pid}:ghost" in error and f"process {pid}" in error
        assert _audit_actions(any_engine) == ["cycle_aborted"]
        with Session(any_engine) as session:
            entry = session.scalars(select(AuditLog)).one()
            assert entry.details["taken_over_by"] == holder
            assert entry.details["pid"] == pid
        assert _chain_ok(any_engine)
    finally:
        lock.release(any_engine, holder)


@pytest.mark.parametrize(
    ("expires_in", "taken_over"),
    [(timedelta(seconds=30), False), (timedelta(seconds=-1), True)],
    ids=["lease-running", "lease-expired"],
)
def test_a_holder_on_another_host_is_taken_over_once_its_lease_expired(
    any_engine: Engine, expires_in: timedelta, taken_over: bool
) -> None:
    _plant(any_engine, "elsewhere:4242:remote", expires_in=expires_in)
    if not taken_over:
        with pytest.raises(
            lock.CycleRunning, match=r"elsewhere:4242:remote \(pid 4242 on elsewhere"
        ):
            lock.acquire(any_engine)
        assert _cycles(any_engine) == []
        return
    holder = lock.acquire(any_engine)
    lock.release(any_engine, holder)
    [(status, error)] = _cycles(any_engine)
    assert status == "aborted" and error is not None and "lease expired" in error


def test_a_cycle_row_left_running_is_the_one_marked_aborted(any_engine: Engine) -> None:
    started = datetime(2025, 6, 1, 8)
    with any_engine.begin() as connection:
        connection.execute(
            insert(Cycle).values(started_at=started, as_of=started, status="running")
        )
    _plant(any_engine, f"{HOST}:{_dead_pid()}:ghost")
    lock.release(any_engine, lock.acquire(any_engine))
    with Session(any_engine) as session:
        [cycle] = session.scalars(select(Cycle)).all()
        assert (cycle.status, cycle.started_at) == ("aborted", started)
        assert session.scalars(select(AuditLog.cycle_id)).all() == [cycle.id]


def test_on_sqlite_a_running_cycle_is_reported_at_once_not_waited_for(
    sqlite_engine: Engine,
) -> None:
    """The running cycle's transaction holds SQLite's write lock; the second acquire reads the
    lock row (which never waits in WAL) and refuses within a fraction of the driver's 5 s."""
    with lock.cycle_lock(sqlite_engine) as holder, sqlite_engine.connect() as writer:
        writer.execute(text("BEGIN IMMEDIATE"))  # as a cycle's session does once it writes
        writer.execute(update(CycleLock).values(acquired_at=CycleLock.acquired_at))
        began = time.perf_counter()
        with pytest.raises(lock.CycleRunning, match=holder):
            lock.acquire(sqlite_engine)
        waited = time.perf_counter() - began
        writer.execute(text("ROLLBACK"))
    assert waited < 1.0, f"acquire waited {waited:.2f}s for the write lock"


def test_two_processes_racing_for_the_lock_one_wins(any_engine: Engine) -> None:
    results: list[str] = []

    def take() -> None:
        try:
            results.append(lock.acquire(any_engine))
        except lock.CycleRunning:
            results.append("refused")

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r != "refused"]
    assert len(winners) == 1 and _holders(any_engine) == winners
    lock.release(any_engine, winners[0])


# --- the heartbeat --------------------------------------------------------------------------


def test_the_heartbeat_renews_the_lease_while_held(any_engine: Engine) -> None:
    holder = "test:1:beat"
    _plant(any_engine, holder, expires_in=timedelta(0))
    before = lock.utc_now()
    beat = lock.Heartbeat.start_for(any_engine, lock.LOCK_NAME, holder, timedelta(seconds=0.05))
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with Session(any_engine) as session:
                expires = session.scalar(select(CycleLock.expires_at))
            if expires is not None and expires >= before + lock.LEASE_TTL:
                break
            time.sleep(0.02)
        assert expires is not None and expires >= before + lock.LEASE_TTL
    finally:
        lock.Heartbeat.stop_for(holder)
    assert not beat._thread.is_alive() and not beat.lost


def test_a_heartbeat_that_lost_its_lock_stops(any_engine: Engine) -> None:
    beat = lock.Heartbeat.start_for(
        any_engine, lock.LOCK_NAME, "test:1:gone", timedelta(seconds=0.02)
    )
    beat._thread.join(timeout=5)
    assert beat.lost and not beat._thread.is_alive()
    lock.Heartbeat.stop_for("test:1:gone")


def test_release_stops_the_heartbeat(any_engine: Engine) -> None:
    holder = lock.acquire(any_engine)
    beat = lock.Heartbeat._running[holder]
    assert beat._thread.is_alive()
    lock.release(any_engine, holder)
    assert not beat._thread.is_alive() and holder not in lock.Heartbeat._running
    assert _holders(any_engine) == []


# --- the operator's release -----------------------------------------------------------------


def test_force_release_without_a_lock_says_so(any_engine: Engine) -> None:
    with pytest.raises(lock.NoLockHeld, match="no cycle lock is held"):
        lock.force_release(any_engine, by="ops")
    assert _audit_actions(any_engine) == []


@pytest.mark.parametrize("by", ["", "   "])
def test_force_release_needs_a_name_and_keeps_the_lock_without_one(
    any_engine: Engine, by: str
) -> None:
    _plant(any_engine, "elsewhere:1:x")
    with pytest.raises(AuditError, match="names who acted"):
        lock.force_release(any_engine, by=by)
    assert _holders(any_engine) == ["elsewhere:1:x"] and _audit_actions(any_engine) == []


def test_force_release_of_a_live_holder_is_audited_and_aborts_nothing(any_engine: Engine) -> None:
    _plant(any_engine, "elsewhere:77:live")
    held, why = lock.force_release(any_engine, by="ops")
    assert (held.holder, why) == ("elsewhere:77:live", "")
    assert _holders(any_engine) == [] and _cycles(any_engine) == []
    with Session(any_engine) as session:
        entry = session.scalars(select(AuditLog)).one()
        assert (entry.actor, entry.action, entry.details["holder"]) == (
            "ops",
            "cycle_lock_released",
            "elsewhere:77:live",
        )
    assert _chain_ok(any_engine)


def test_force_release_of_a_dead_holder_aborts_its_cycle(any_engine: Engine) -> None:
    _plant(any_engine, f"{HOST}:{_dead_pid()}:ghost")
    _held, why = lock.force_release(any_engine, by="ops")
    assert "is gone" in why
    assert _audit_actions(any_engine) == ["cycle_lock_released", "cycle_aborted"]
    assert [status for status, _ in _cycles(any_engine)] == ["aborted"]
    assert _chain_ok(any_engine)


# --- a SIGKILLed cycle ----------------------------------------------------------------------

HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from agent.db import make_engine
    from agent.lock import acquire
    engine = make_engine(sys.argv[1])
    print(acquire(engine), flush=True)
    time.sleep(120)
    """
)


@pytest.mark.faults
def test_a_sigkilled_holder_does_not_block_the_next_cycle(
    seeded: tuple[Engine, object], tmp_path: Path
) -> None:
    engine, _ = seeded
    script = tmp_path / "holder.py"
    script.write_text(HOLDER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(engine.url)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    dead_holder = child.stdout.readline().strip()
    with pytest.raises(lock.CycleRunning, match=str(child.pid)):
        run_full_cycle(engine, policy="rules")
    child.send_signal(signal.SIGKILL)
    child.wait()
    result = run_full_cycle(engine, policy="rules")  # at once: no 30-minute wait
    with Session(engine) as session:
        statuses = dict(
            session.execute(select(Cycle.status, func.count()).group_by(Cycle.status)).all()
        )
        aborted = session.scalars(select(AuditLog).where(AuditLog.action == "cycle_aborted")).one()
        assert aborted.details["holder"] == dead_holder
        assert session.scalar(select(func.count()).select_from(CycleLock)) == 0
    assert statuses.get("aborted") == 1 and statuses.get("finished") == 1
    assert result.cycle_id is not None
    assert _chain_ok(engine)


def test_cycle_running_with_a_message_alone_has_no_details() -> None:
    error = lock.CycleRunning("busy")
    assert (str(error), error.holder, error.details()) == ("busy", None, {})
