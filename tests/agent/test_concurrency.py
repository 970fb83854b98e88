"""Cycles triggered at once from two processes against one database execute nothing twice:
the database's cycle lock lets one run, the other reports that a cycle is running, and what
runs later is held back by idempotency keys, cooldowns and per-account limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from agent.db import session_factory
from agent.models import Archive, Execution, Outbox
from agent.seed import SeedConfig, seed

REPO = Path(__file__).parents[2]
AS_OF = datetime(2025, 6, 1)
WORKER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import datetime, timedelta
    from agent.db import make_engine
    from agent.orchestrator import CycleRunning, run_full_cycle

    url, schema, start, as_of = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    kwargs = {"connect_args": {"options": f"-csearch_path={schema}"}} if schema else {}
    engine = make_engine(url, **kwargs)
    clock = datetime.fromisoformat(as_of)
    ran, refused = [], []
    while time.time() < start:
        time.sleep(0.005)
    for step in range(4):
        try:
            result = run_full_cycle(
                engine, dry_run=False, policy="rules", as_of=clock + timedelta(minutes=step % 2),
                thresholds={name: 0.0 for name in ("retention_campaign", "payment_retry",
                            "orphan_cleanup", "data_fix")},
            )
            ran.append(result.executions)
        except CycleRunning as error:
            refused.append(str(error))
    print(json.dumps({"ran": ran, "refused": refused}))
    """
)


def _race(url: str, schema: str, tmp_path: Path) -> list[dict[str, list[object]]]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    start = time.time() + 4.0  # both have imported by then
    env = {name: value for name, value in os.environ.items() if name != "AUTOPILOT_KILL_SWITCH"}
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), url, schema, str(start), AS_OF.isoformat()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        for _ in range(2)
    ]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def _assert_nothing_twice(engine: Engine, reports: list[dict[str, list[object]]]) -> None:
    with session_factory(engine)() as session:
        per_action = session.execute(
            select(Execution.action, func.count()).group_by(Execution.action)
        ).all()
        assert per_action and all(n == 1 for _, n in per_action), per_action
        keys = session.scalars(select(Execution.idempotency_key)).all()
        assert len(keys) == len(set(keys))
        messaged_twice = session.execute(
            select(Outbox.user_id)
            .where(Outbox.topic == "retention_campaign", Outbox.execution_id.is_not(None))
            .group_by(Outbox.user_id)
            .having(func.count() > 1)
        ).all()
        assert messaged_twice == []
        jobs = (
            select(Outbox.payload["billing_event_id"].as_integer().label("charge"))
            .where(Outbox.topic == "payment_retry", Outbox.execution_id.is_not(None))
            .subquery()
        )
        retried_twice = session.execute(
            select(jobs.c.charge).group_by(jobs.c.charge).having(func.count() > 1)
        ).all()
        assert retried_twice == []
        archived_twice = session.execute(
            select(Archive.source_table, Archive.source_id)
            .group_by(Archive.source_table, Archive.source_id)
            .having(func.count() > 1)
        ).all()
        assert archived_twice == []
    executed = [e for report in reports for run in report["ran"] for e in run]  # type: ignore[union-attr]
    assert len(executed) == len(set(executed))
    assert sum(len(r["ran"]) for r in reports) + sum(len(r["refused"]) for r in reports) == 8


def test_two_processes_on_one_sqlite_file(seeded: tuple[Engine, object], tmp_path: Path) -> None:
    engine, _ = seeded
    engine.dispose()
    reports = _race(str(engine.url), "", tmp_path)
    _assert_nothing_twice(engine, reports)


@pytest.mark.postgres
def test_two_processes_on_one_postgresql_database(postgres_engine: Engine, tmp_path: Path) -> None:
    seed(postgres_engine, SeedConfig(users=1000, days=10, seed=3, end=AS_OF))
    with postgres_engine.connect() as connection:
        search_path = connection.exec_driver_sql("SHOW search_path").scalar_one()
    url = os.environ["AUTOPILOT_TEST_POSTGRES_URL"]
    reports = _race(url, str(search_path), tmp_path)
    _assert_nothing_twice(postgres_engine, reports)
