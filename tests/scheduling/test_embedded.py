"""The embedded scheduler (``autopilot agent run``): one run per tick across schedulers, a
missed tick caught up once, and signals that finish the pass or abort at once."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm import Session

from agent.db import make_engine
from agent.models import Cycle, CycleLock, ScheduledRun
from agent.scheduling import EmbeddedScheduler, latest_tick, parse_schedule
from agent.settings import Settings
from tests.scheduling.conftest import Spawn, child_env

AGENT_RUN = ("-m", "cli.main", "agent", "run", "--monitor-schedule", "off")


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def runs(engine: Engine) -> list[ScheduledRun]:
    with Session(engine) as session:
        return list(session.scalars(select(ScheduledRun).order_by(ScheduledRun.tick)))


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def start_scheduler(spawn: Spawn, url: str, name: str) -> subprocess.Popen[str]:
    return spawn(
        *AGENT_RUN,
        "--db",
        url,
        "--cycle-schedule",
        "every 2s",
        env=child_env(tick_lease_s="3"),
        log_name=name,
    )


def assert_one_run_per_tick(engine: Engine, step_s: float, at_least: int) -> list[ScheduledRun]:
    """Every tick from the first to the last has exactly one record, and every cycle that ran
    belongs to exactly one tick. A tick may be ``skipped`` only because the previous tick's
    cycle still held the cycle lock (a busy machine): the second line, never an overlap."""
    recorded = runs(engine)
    ticks = [run.tick for run in recorded]
    assert len(ticks) >= at_least, f"only {len(ticks)} ticks ran"
    steps = {(b - a).total_seconds() for a, b in itertools.pairwise(ticks)}
    assert steps == {step_s}, f"ticks missed or doubled: {ticks}"
    succeeded = [run for run in recorded if run.outcome == "succeeded"]
    for run in recorded:
        if run.outcome != "succeeded":
            assert run.outcome == "skipped" and "already running" in (run.detail or ""), run.detail
    assert len(succeeded) * 2 >= len(recorded), "most ticks must run their cycle"
    cycle_ids = [run.cycle_id for run in succeeded]
    assert len(set(cycle_ids)) == len(cycle_ids) == count(engine, Cycle)  # none ran twice
    return recorded


@contextmanager
def audit_log_locked(engine: Engine) -> Iterator[Connection]:
    """Hold PostgreSQL's lock on ``audit_log`` so that a cycle blocks at its first audit
    entry, mid-cycle: it holds its tick and the cycle lock, and has written nothing."""
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
        try:
            yield connection
        finally:
            if transaction.is_active:
                transaction.commit()


@pytest.mark.postgres
def test_three_schedulers_on_one_database_run_each_tick_once(
    pg_url: str, spawn: Spawn, tmp_path: Path
) -> None:
    engine = make_engine(pg_url)
    processes = [start_scheduler(spawn, pg_url, f"scheduler{i}") for i in range(3)]
    logs = [tmp_path / f"scheduler{i}.log" for i in range(3)]
    wait_for(lambda: all("agent run on" in log.read_text() for log in logs), 60, "3 schedulers")
    time.sleep(20)
    for process in processes:
        os.kill(process.pid, signal.SIGTERM)
    stopped = datetime.now(UTC).replace(tzinfo=None)
    assert [process.wait(30) for process in processes] == [0, 0, 0]
    ticks = [run.tick for run in assert_one_run_per_tick(engine, 2.0, at_least=6)]
    assert stopped - ticks[-1] <= timedelta(seconds=4.5)
    for i in range(3):  # every scheduler fired the ticks, ran some and skipped the rest
        fired = logs[i].read_text().count("\ncycle ")
        assert fired >= len(ticks) - 3, f"scheduler{i} fired {fired} of {len(ticks)} ticks"


@pytest.mark.postgres
def test_sigterm_during_a_cycle_finishes_it_frees_the_lock_and_exits_0(
    pg_url: str, spawn: Spawn
) -> None:
    engine = make_engine(pg_url)
    with audit_log_locked(engine):
        process = start_scheduler(spawn, pg_url, "sigterm")
        wait_for(lambda: count(engine, CycleLock) == 1, 30, "the cycle to start")
        os.kill(process.pid, signal.SIGTERM)
        time.sleep(1.5)
        assert process.poll() is None, "it must finish the running cycle first"
    assert process.wait(30) == 0
    (run,) = runs(engine)
    assert run.outcome == "succeeded" and run.cycle_id is not None and run.finished_at
    with Session(engine) as session:
        assert session.get(Cycle, run.cycle_id).status != "running"  # type: ignore[union-attr]
    assert count(engine, CycleLock) == 0


@pytest.mark.postgres
def test_a_second_signal_aborts_at_once_leaving_nothing_half_applied(
    pg_url: str, spawn: Spawn
) -> None:
    engine = make_engine(pg_url)
    with audit_log_locked(engine):
        process = start_scheduler(spawn, pg_url, "abort")
        wait_for(lambda: count(engine, CycleLock) == 1, 30, "the cycle to start")
        os.kill(process.pid, signal.SIGTERM)
        time.sleep(0.5)
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(10) == 128 + signal.SIGINT
    assert count(engine, Cycle) == 0  # its transaction died with it
    (run,) = runs(engine)
    assert run.outcome == "running"  # the lease expires; a successor may take it over


@pytest.mark.parametrize(("margin_s", "caught_up"), [(30.0, True), (-30.0, False)])
def test_a_missed_tick_runs_once_on_start_only_within_the_grace(
    sqlite_url: str, margin_s: float, caught_up: bool
) -> None:
    trigger = parse_schedule("every 24h")
    assert trigger is not None
    now = datetime.now(UTC)
    missed = latest_tick(trigger, now)
    elapsed = (now.replace(tzinfo=None) - missed).total_seconds()
    if elapsed < 60:
        pytest.skip("too close to midnight UTC to place the grace around the missed tick")
    settings = Settings(db_url=sqlite_url, policy_uri="rules", misfire_grace_s=elapsed + margin_s)
    engine = make_engine(sqlite_url)
    scheduler = EmbeddedScheduler(
        engine, settings, schedules={"cycle": "every 24h", "monitor": "off"}
    )
    assert scheduler.serve(install_signals=False, stop_after_s=2.0) == 0
    assert [(r.tick, r.outcome) for r in runs(engine)] == (
        [(missed, "succeeded")] if caught_up else []
    )
