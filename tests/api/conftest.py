"""Fixtures of the API tests: real HTTP through the app on real SQLite files.

- the seeded business is built once per session and copied per test;
- ``api`` gives a started app (lifespan run: the policy is loaded) behind a ``TestClient``,
  with one key per role; the policy is ``rules`` unless a test points the settings at a real
  MLflow store (``mlflow_store``: one session-scoped store, copied per test).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agent.api_keys import ROLES, create_key
from agent.db import make_engine, upgrade
from agent.seed import SeedConfig, seed
from agent.settings import Settings
from api.main import create_app
from environment.kpis import KPI_NAMES

SEED = SeedConfig(users=600, days=30, scenario="steady", seed=11, end=datetime(2025, 6, 1))
"""A small business: enough for cycles to observe, detect and decide."""

KPIS: dict[str, float] = {
    "activation_rate": 0.35,
    "d7_retention": 0.22,
    "signup_to_activation": 0.33,
    "conversion_rate": 0.04,
    "ltv_cac": 3.2,
    "health_score": 82.0,
    "alignment_score": 80.0,
    "data_quality_issue_rate": 0.01,
    "orphaned_records": 120.0,
    "billing_failure_rate": 0.05,
    "failed_payment_backlog": 0.004,
    "at_risk_share": 0.12,
    "message_pressure": 0.3,
    "mrr": 90_000.0,
    "mrr_growth": 0.01,
    "churn_rate": 0.03,
    "cac": 350.0,
    "arpa": 75.0,
}
"""A plausible context with every KPI of the vocabulary."""
assert set(KPIS) == set(KPI_NAMES)


@dataclass
class Api:
    """A running app, its database and one key per role."""

    client: TestClient
    engine: Engine
    keys: dict[str, str]
    settings: Settings
    path: Path

    def headers(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}

    def post(self, url: str, role: str, json: Any = None) -> Any:
        return self.client.post(url, headers=self.headers(role), json=json)

    def get(self, url: str, role: str, **params: Any) -> Any:
        return self.client.get(url, headers=self.headers(role), params=params)


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-seed") / "business.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    seed(engine, SEED)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-empty") / "empty.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def make_keys(engine: Engine) -> dict[str, str]:
    keys = {}
    with Session(engine) as session:
        for role in ROLES:
            _, secret = create_key(session, name=f"{role}-key", role=role, by="test")
            keys[role] = secret
        _, keys["operator2"] = create_key(session, name="operator-two", role="operator")
        session.commit()
    return keys


def start(source: Path, tmp_path: Path, **settings: Any) -> Iterator[Api]:
    path = tmp_path / "api.db"
    shutil.copyfile(source, path)
    config = Settings(
        db_url=f"sqlite:///{path}",
        policy_uri=settings.pop("policy_uri", "rules"),
        mlflow_tracking_uri=settings.pop("mlflow_tracking_uri", f"sqlite:///{tmp_path}/none.db"),
        **settings,
    )
    yield from serve(config, path)


def serve(config: Settings, path: Path) -> Iterator[Api]:
    """The app on ``config`` with one key per role, started (lifespan run)."""
    engine = make_engine(config.db_url)
    keys = make_keys(engine)
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        yield Api(client, engine, keys, config, path)
    engine.dispose()


@pytest.fixture
def api(empty_db: Path, tmp_path: Path) -> Iterator[Api]:
    """The app on an empty database (decisions, keys, kill switch, audit)."""
    yield from start(empty_db, tmp_path)


@pytest.fixture
def seeded_api(seeded_db: Path, tmp_path: Path) -> Iterator[Api]:
    """The app on a copy of the seeded business (cycles, approvals, undo)."""
    yield from start(seeded_db, tmp_path)
