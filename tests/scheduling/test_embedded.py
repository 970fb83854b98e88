"""The embedded scheduler (``autopilot agent run``): one run per tick across schedulers, a
missed tick caught up once, and signals that finish the pass or abort at once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from agent.db import make_engine
from agent.models import Cycle, CycleLock
from agent.scheduling import EmbeddedScheduler, latest_tick, parse_schedule
from agent.settings import Settings
from tests.scheduling.conftest import Spawn, child_env
from tests.scheduling.support import (
    assert_one_run_per_tick,
    audit_log_locked,
    count,
    runs,
    wait_for,
)

AGENT_RUN = ("-m", "cli.main", "agent", "run", "--monitor-schedule", "off")


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
