"""The champion from a real MLflow store: loaded at start, hot-reloaded when the alias moves,
the last good policy kept when loading fails."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from experiments.models import CHAMPION, REGISTERED_MODEL, log_policy_model, set_alias
from experiments.tracking import Tracking, configure, start_run
from policies.rules import RulesPolicy
from tests.api.conftest import KPIS, Api, start

CHAMPION_URI = f"models:/{REGISTERED_MODEL}@{CHAMPION}"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with two registered versions of ``rules``; the champion is version 1."""
    folder = tmp_path_factory.mktemp("registry")
    tracking = configure(f"sqlite:///{folder}/mlflow.db", folder / "artifacts")
    for _ in range(2):
        with start_run(tracking, "api-test", "register"):
            log_policy_model(RulesPolicy(), alias=None)
    set_alias(tracking, CHAMPION, "1")
    while mlflow.active_run() is not None:
        mlflow.end_run()
    return folder


def _store(registry: Path, tmp_path: Path) -> Tracking:
    db = tmp_path / "mlflow.db"
    shutil.copyfile(registry / "mlflow.db", db)
    return Tracking(f"sqlite:///{db}")


@pytest.fixture
def champion_api(registry: Path, empty_db: Path, tmp_path: Path) -> Iterator[tuple[Api, Tracking]]:
    tracking = _store(registry, tmp_path)
    for api in start(
        empty_db,
        tmp_path,
        policy_uri=CHAMPION_URI,
        mlflow_tracking_uri=tracking.uri,
        api_policy_check_seconds=0.0,
    ):
        yield api, tracking


def _version(api: Api) -> str:
    response = api.post("/api/v1/decide", "client", {"kpis": KPIS})
    assert response.status_code == 200, response.text
    return str(response.json()["policy_version"])


def test_champion_hot_reload(champion_api: tuple[Api, Tracking]) -> None:
    api, tracking = champion_api
    assert _version(api) == f"models:/{REGISTERED_MODEL}/1"
    set_alias(tracking, CHAMPION, "2")
    assert _version(api) == f"models:/{REGISTERED_MODEL}/2"
    ready = api.client.get("/readyz").json()
    assert ready["ready"] and ready["policy"]["version"] == f"models:/{REGISTERED_MODEL}/2"


def test_a_lost_champion_keeps_the_last_good_policy(champion_api: tuple[Api, Tracking]) -> None:
    api, tracking = champion_api
    assert _version(api).endswith("/1")
    tracking.client().delete_registered_model_alias(REGISTERED_MODEL, CHAMPION)
    assert _version(api).endswith("/1")
    ready = api.client.get("/readyz").json()
    assert ready["policy"]["last_error"] and "alias" in ready["policy"]["last_error"]
    assert any(p.startswith("policy:") for p in ready["problems"])
    state = api.get("/api/autonomous/system-state", "admin").json()
    assert state["policy"]["last_error"] == ready["policy"]["last_error"]


def test_admin_reload_applies_at_once(registry: Path, empty_db: Path, tmp_path: Path) -> None:
    tracking = _store(registry, tmp_path)
    for api in start(
        empty_db,
        tmp_path,
        policy_uri=CHAMPION_URI,
        mlflow_tracking_uri=tracking.uri,
        api_policy_check_seconds=3600.0,
    ):
        assert _version(api).endswith("/1")
        set_alias(tracking, CHAMPION, "2")
        assert _version(api).endswith("/1")  # not checked again for an hour
        assert api.post("/api/v1/policy/reload", "operator").status_code == 403
        reloaded = api.post("/api/v1/policy/reload", "admin")
        assert reloaded.status_code == 200 and reloaded.json()["version"].endswith("/2")
        assert _version(api).endswith("/2")


def test_no_champion_decides_with_rules_and_says_why(
    registry: Path, empty_db: Path, tmp_path: Path
) -> None:
    tracking = _store(registry, tmp_path)
    tracking.client().delete_registered_model_alias(REGISTERED_MODEL, CHAMPION)
    for api in start(empty_db, tmp_path, policy_uri=CHAMPION_URI, mlflow_tracking_uri=tracking.uri):
        assert _version(api) == "1"  # the rules policy's version
        ready = api.client.get("/readyz").json()
        assert ready["ready"] and ready["policy"]["name"] == "rules"
        assert ready["policy"]["last_error"]
