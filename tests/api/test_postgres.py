"""The decision API and the operator's controls on PostgreSQL (marker ``postgres``): each test
in a fresh schema of the server named by ``AUTOPILOT_TEST_POSTGRES_URL``, dropped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from agent import decision_log
from agent.settings import Settings
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
