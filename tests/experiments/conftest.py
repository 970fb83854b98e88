"""Fixtures for the experiment tests: a real MLflow store per test, made cheaply.

Creating an MLflow SQLite store runs its schema migrations (seconds), so the session creates
one empty store and every test gets a copy of the file (``sqlite:///<tmp>/mlflow.db``) with
its own artifact folder, and runs in its own working directory (so defaults such as
``optuna.db`` and ``guardrails/thresholds.yaml`` land there too).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from experiments.config import TrainConfig, load_config
from experiments.tracking import Tracking, configure

TINY_SCENARIOS = ("steady", "mixed")
"""Evaluation scenarios of the smoke tests: the quiet one and the one with three shocks."""


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema, created once per session."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking(
    empty_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Tracking]:
    """A fresh store for this test (a copy of the empty one) and a tmp artifact root."""
    db = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store, db)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    store = configure(f"sqlite:///{db}", tmp_path / "artifacts")
    yield store
    while mlflow.active_run() is not None:
        mlflow.end_run()


def tiny_config(algo: str, **fields: object) -> TrainConfig:
    """``algo``'s packaged config on a smoke-test budget (a few hundred steps)."""
    overrides = {
        "ppo": ["n_steps=64", "batch_size=64", "n_epochs=1"],
        "a2c": ["n_steps=8"],
        "dqn": ["learning_starts=64", "buffer_size=1000"],
    }.get(algo, [])
    budget: dict[str, object] = {
        "timesteps": 256,
        "n_envs": 2,
        "eval_every": 128,
        "eval_scenarios": TINY_SCENARIOS,
        "eval_seeds": 2,
    }
    if algo not in ("ppo", "a2c", "dqn"):
        budget |= {"timesteps": 540, "n_envs": 1, "eval_every": 0}
    return load_config(algo, overrides=overrides, **(budget | fields))
