"""The distributed engine on the real Redis and PostgreSQL: two workers and two beats run one
cycle per tick; a worker killed mid-cycle loses nothing and doubles nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from agent.celery_app import configure
from agent.db import make_engine
from agent.lock import ABORTED
from agent.models import AuditLog, Cycle, CycleLock
from agent.settings import Settings
from tests.scheduling.conftest import Spawn, child_env
from tests.scheduling.support import (
    assert_one_run_per_tick,
    audit_log_locked,
    count,
    runs,
    wait_for,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
LEASE_S, VISIBILITY_S = "2", "4"
EVERY_S = 3
"""Wider than the embedded test's 2 s: a worker's cycle on a busy 2-core machine can take a
second or more, and a tick that finds the previous cycle still holding the lock is skipped."""


def cluster_settings(pg_url: str, redis: tuple[str, str]) -> dict[str, str]:
    return {
        "db_url": pg_url,
        "broker_url": redis[0],
        "broker_key_prefix": redis[1],
        "cycle_schedule": f"every {EVERY_S}s",
        "monitor_schedule": "off",
        "tick_lease_s": LEASE_S,
        "visibility_timeout_s": VISIBILITY_S,
    }


def start_workers(spawn: Spawn, env: dict[str, str], tmp_path: Path) -> list[subprocess.Popen[str]]:
    """One worker through ``autopilot worker``, one through Celery's own command."""
    options = ("--pool", "solo", "--without-gossip", "--without-mingle", "-l", "info")
    workers = [
        spawn("-m", "cli.main", "worker", *options, "-n", "w1@%h", env=env, log_name="w1"),
        spawn(
            "-m",
            "celery",
            "-A",
            "cli.celery_entry",
            "worker",
            *options,
            "-n",
            "w2@%h",
            env=env,
            log_name="w2",
        ),
    ]
    wait_for(
        lambda: all("ready" in (tmp_path / f"w{i}.log").read_text() for i in (1, 2)),
        60,
        "both workers to be ready",
    )
    return workers


def test_two_workers_and_two_beats_run_one_cycle_per_tick(
    pg_url: str, redis_url: tuple[str, str], spawn: Spawn, tmp_path: Path
) -> None:
    env = child_env(**cluster_settings(pg_url, redis_url))
    workers = start_workers(spawn, env, tmp_path)
    beat_options = ("-l", "info", "-s")
    beats = [
        spawn(
            "-m", "cli.main", "beat", *beat_options, str(tmp_path / "b1.db"), env=env, log_name="b1"
        ),
        spawn(
            "-m",
            "celery",
            "-A",
            "cli.celery_entry",
            "beat",
            *beat_options,
            str(tmp_path / "b2.db"),
            env=env,
            log_name="b2",
        ),
    ]
    wait_for(
        lambda: all("Sending due task" in (tmp_path / f"b{i}.log").read_text() for i in (1, 2)),
        60,
        "both beats to send",
    )
    time.sleep(12)
    for beat in beats:
        os.kill(beat.pid, signal.SIGTERM)
    for beat in beats:
        beat.wait(30)
    engine = make_engine(pg_url)
    wait_for(lambda: all(r.outcome != "running" for r in runs(engine)), 20, "the last cycle")
    for worker in workers:
        os.kill(worker.pid, signal.SIGTERM)
    ticks = assert_one_run_per_tick(engine, float(EVERY_S), at_least=3)
    sent = sum((tmp_path / f"b{i}.log").read_text().count("Sending due task") for i in (1, 2))
    assert sent > len(ticks)  # both beats sent: the claim, not luck, made it one per tick


def test_a_worker_killed_mid_cycle_loses_nothing_and_its_tick_runs_once(
    pg_url: str, redis_url: tuple[str, str], spawn: Spawn, tmp_path: Path
) -> None:
    values = cluster_settings(pg_url, redis_url)
    workers = start_workers(spawn, child_env(**values), tmp_path)
    sender = Celery("autopilot-test")
    configure(sender, Settings(**values))  # type: ignore[arg-type]
    tick = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    engine: Engine = make_engine(pg_url)
    with audit_log_locked(engine):
        sender.send_task("autopilot.cycle", kwargs={"tick": tick.isoformat()})
        wait_for(lambda: count(engine, CycleLock) == 1, 30, "a worker to start the cycle")
        (claim,) = runs(engine)
        victim = int(claim.runner.rsplit(":", 1)[1])
        assert victim in {w.pid for w in workers}
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
    wait_for(lambda: runs(engine)[0].outcome == "succeeded", 60, "the survivor to run the tick")
    took_over_after = time.monotonic() - killed_at
    (run,) = runs(engine)
    survivor = next(w.pid for w in workers if w.pid != victim)
    assert (run.tick, run.attempts) == (tick, 2)
    assert int(run.runner.rsplit(":", 1)[1]) == survivor
    assert took_over_after >= float(LEASE_S)  # after the lease, not before
    assert count(engine, CycleLock) == 0
    # the killed cycle's transaction died with it: the takeover records it aborted (audited),
    # and the survivor's cycle is the one that finished
    with Session(engine) as session:
        statuses = sorted(session.scalars(select(Cycle.status)).all())
        aborted = session.scalars(select(AuditLog).where(AuditLog.action == "cycle_aborted")).all()
    assert statuses == [ABORTED, "finished"]
    assert len(aborted) == 1 and str(victim) in aborted[0].details["holder"]
    log = (tmp_path / ("w1" if workers[0].pid == survivor else "w2")).with_suffix(".log")
    assert re.search(rf"took over tick .* from .*:{victim}", log.read_text())
