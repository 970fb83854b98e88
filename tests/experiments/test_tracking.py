"""The tracking store defaults and the SB3 -> MLflow metric stream."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from stable_baselines3.common.logger import Logger

from agent.settings import get_settings
from experiments.tracking import (
    DEFAULT_TRACKING_URI,
    MlflowOutputFormat,
    Tracking,
    check_tracking_uri,
    resolve_tracking_uri,
    start_run,
)


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Settings are read once per process (``get_settings`` is cached): re-read them for
    this test's environment, and forget them afterwards."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_tracking_uri_precedence(monkeypatch: pytest.MonkeyPatch, fresh_settings: None) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AUTOPILOT_MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"
    get_settings.cache_clear()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg://u@db/mlflow")
    assert resolve_tracking_uri() == "postgresql+psycopg://u@db/mlflow"
    get_settings.cache_clear()
    monkeypatch.setenv("AUTOPILOT_MLFLOW_TRACKING_URI", "sqlite:///autopilot-mlflow.db")
    assert resolve_tracking_uri() == "sqlite:///autopilot-mlflow.db"
    assert resolve_tracking_uri("http://mlflow:5000") == "http://mlflow:5000"


@pytest.mark.parametrize(
    ("uri", "match"),
    [("ftp://host/x", "scheme 'ftp'; allowed: \\['sqlite'"), ("", "non-empty")],
)
def test_bad_tracking_uris(uri: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_tracking_uri(uri)


def test_sb3_logger_values_stream_to_the_run_in_batches(tracking: Tracking) -> None:
    with start_run(tracking, "stream-test", "stream") as run:
        writer = MlflowOutputFormat(run.info.run_id, batch_size=3, flush_seconds=3600)
        logger = Logger(folder=None, output_formats=[writer])
        for step in range(5):
            logger.record("train/loss", 1.0 / (step + 1))
            logger.record("rollout/ep_rew_mean", np.float32(10.0 * step))
            logger.record("train/hidden", 7.0, exclude="mlflow")
            logger.record("train/label", "text is not a metric")
            logger.record("train/nan", float("nan"))
            logger.dump(step=100 * step)
        logger.close()  # closes the writer: flushes and waits
    client = tracking.client()
    loss = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in loss] == [(100 * s, 1.0 / (s + 1)) for s in range(5)]
    reward = client.get_metric_history(run.info.run_id, "rollout/ep_rew_mean")
    assert [m.value for m in reward] == [10.0 * s for s in range(5)]
    metrics = client.get_run(run.info.run_id).data.metrics
    assert "train/hidden" not in metrics and "train/label" not in metrics
    assert "train/nan" not in metrics
    assert writer.metrics_logged == 10
    assert writer.series("rollout/ep_rew_mean") == [(100 * s, 10.0 * s) for s in range(5)]


def test_writer_rejects_bad_settings(tracking: Tracking) -> None:
    with pytest.raises(ValueError, match="batch_size=0"):
        MlflowOutputFormat("run", tracking.client(), batch_size=0)
    with pytest.raises(ValueError, match="flush_seconds=-1"):
        MlflowOutputFormat("run", tracking.client(), flush_seconds=-1)
