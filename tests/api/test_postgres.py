"""The decision API and the operator's controls on PostgreSQL (marker ``postgres``): each test
in a fresh schema of the server named by ``AUTOPILOT_TEST_POSTGRES_URL``, dropped afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from agent import audit, decision_log
from agent.models import AuditLog
from agent.settings import Settings
from api.decisions import committed
from tests.api.conftest import KPIS, Api, serve
from tests.postgres import postgres_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_api(tmp_path: Path) -> Iterator[Api]:
    with postgres_schema("autopilot_api") as scoped:
        config = Settings(
            db_url=scoped,
            policy_uri="rules",
            mlflow_tracking_uri=f"sqlite:///{tmp_path}/none.db",
        )
        yield from serve(config, tmp_path)


def test_decide_reward_log_on_postgres(pg_api: Api, tmp_path: Path) -> None:
    body = {"kpis": KPIS, "event_id": "pg-1"}
    first = pg_api.post("/api/v1/decide", "client", body)
    assert first.status_code == 200, first.text
    assert pg_api.post("/api/v1/decide", "client", body).json() == first.json()
    batch = pg_api.post("/api/v1/decide/batch", "client", {"items": [{"kpis": KPIS}] * 5})
    assert [i["status"] for i in batch.json()["items"]] == [200] * 5
    assert pg_api.post("/api/v1/events/pg-1/reward", "client", {"value": 2.0}).status_code == 200
    assert pg_api.post("/api/v1/events/pg-1/reward", "client", {"value": 3.0}).status_code == 409
    with Session(pg_api.engine) as session:
        assert decision_log.export_jsonl(session, tmp_path / "pg.jsonl") == 6
    assert pg_api.client.get("/readyz").json()["ready"] is True


def test_controls_on_postgres(pg_api: Api) -> None:
    on = pg_api.post("/api/v1/kill-switch", "operator", {"on": True, "reason": "pg drill"})
    assert on.status_code == 200 and on.json()["on"] is True
    assert pg_api.get("/api/v1/audit/verify", "viewer").json()["ok"] is True
    cycle = pg_api.post("/api/autonomous/run-cycle", "admin")
    assert cycle.status_code == 200, cycle.text
    assert cycle.json()["mode"] == "dry_run"


def test_a_writer_that_loses_the_race_for_the_chain_retries(pg_api: Api) -> None:
    """Two transactions append to the audit trail at once: the second waits on the first's
    next id, fails when it commits, and :func:`committed` runs its work again."""
    attempts: list[int] = []

    def second_work(session: Session) -> None:
        attempts.append(len(attempts) + 1)
        audit.append(session, actor="second", action="test")

    with Session(pg_api.engine) as first, Session(pg_api.engine) as second:
        audit.append(first, actor="first", action="test")  # holds the next id, uncommitted
        racer = threading.Thread(target=committed, args=(second, lambda: second_work(second)))
        racer.start()
        _wait_until_blocked(pg_api.engine)
        first.commit()
        racer.join(timeout=30)
        assert not racer.is_alive()
    assert attempts == [1, 2]
    with Session(pg_api.engine) as session:
        actors = session.scalars(select(AuditLog.actor).order_by(AuditLog.id)).all()
        assert actors[-2:] == ["first", "second"]
        assert audit.verify_chain(session).ok


def _wait_until_blocked(engine: Engine, timeout_s: float = 30.0) -> None:
    """Until some transaction waits on a lock (the second writer on the first's id)."""
    deadline = time.monotonic() + timeout_s
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            waiting = connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE NOT granted")
            ).scalar_one()
            connection.rollback()
            if waiting:
                return
    raise AssertionError(f"no writer waited on a lock within {timeout_s} s")
