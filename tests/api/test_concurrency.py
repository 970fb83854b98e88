"""Concurrent clients on a real ``autopilot serve`` with two workers (marker ``slow``; the
PostgreSQL variant also ``postgres``): no answer is a 5xx, the audit chain verifies afterwards,
and its decision entries list exactly the decisions logged, each once."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent import audit
from agent.api_keys import create_key
from agent.db import make_engine, upgrade
from agent.models import AuditLog, DecisionRecord
from api.decisions import DECISIONS_AUDIT, REWARD_AUDIT
from tests.api.conftest import KPIS
from tests.postgres import postgres_schema
from tests.serving import ROOT, start_server

pytestmark = pytest.mark.slow
CLIENTS = 8
REQUESTS_PER_CLIENT = 6


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'concurrent.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    else:
        with postgres_schema("autopilot_concurrent") as scoped:
            yield scoped


def _client_key(db_url: str) -> str:
    engine = make_engine(db_url)
    with Session(engine) as session:
        _, secret = create_key(session, name="svc", role="client", by="test")
        session.commit()
    engine.dispose()
    return secret


def test_concurrent_decisions_are_each_logged_and_audited_once(db_url: str, tmp_path: Path) -> None:
    key = _client_key(db_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOPILOT_DB_URL": db_url,
           "AUTOPILOT_POLICY_URI": "rules",
           "AUTOPILOT_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = start_server(env, tmp_path / "server.log", workers=2)

    def client(number: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=60) as http:
            for i in range(REQUESTS_PER_CLIENT):
                event = f"c{number}-{i}"
                if i % 3 == 2:  # a batch of three, one of them a repeat of the last decide
                    items = [{"kpis": KPIS, "event_id": f"c{number}-{i - 1}"},
                             {"kpis": KPIS}, {"kpis": KPIS}]  # fmt: skip
                    answer = http.post("/api/v1/decide/batch", json={"items": items})
                else:
                    answer = http.post("/api/v1/decide", json={"kpis": KPIS, "event_id": event})
                statuses.append(answer.status_code)
                if i % 3 == 1:
                    reward = http.post(f"/api/v1/events/{event}/reward", json={"value": 1.0})
                    statuses.append(reward.status_code)
        return statuses

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = Counter(s for result in pool.map(client, range(CLIENTS)) for s in result)
    finally:
        server.stop()
    assert set(statuses) == {200}, (statuses, server.log.read_text()[-3000:])
    engine = make_engine(db_url)
    with Session(engine) as session:
        assert audit.verify_chain(session).ok
        logged = session.scalars(select(DecisionRecord.event_id)).all()
        entries = session.scalars(
            select(AuditLog.details).where(AuditLog.action == DECISIONS_AUDIT)
        ).all()
        rewards = session.scalars(select(AuditLog.target).where(AuditLog.action == REWARD_AUDIT))
        rewarded = sorted(rewards)
    engine.dispose()
    audited = [d["event_id"] for details in entries for d in details["decisions"]]
    per_client = REQUESTS_PER_CLIENT - REQUESTS_PER_CLIENT // 3 + 2 * (REQUESTS_PER_CLIENT // 3)
    assert len(logged) == CLIENTS * per_client  # a repeat decides nothing
    assert sorted(audited) == sorted(logged)  # each decision audited once
    assert rewarded == sorted(f"c{n}-{i}" for n in range(CLIENTS) for i in (1, 4))
