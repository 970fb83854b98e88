"""Smoke test of the main job on a tiny budget: train, evaluate, closed loop, MLflow run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from experiments.demo import ARMS, DemoConfig, run_demo
from experiments.tracking import Tracking


def test_demo_runs_every_stage(tracking: Tracking, tmp_path: Path) -> None:
    lines: list[str] = []
    config = DemoConfig(seeds=2, days=2, users=300, workdir=tmp_path)
    results = run_demo(config, tracking=tracking, say=lines.append)
    assert [r.mode for r in results] == list(ARMS)
    assert all(r.days == 2 for r in results)
    assert results[2].executions == {}  # no agent, nothing executed
    assert (tmp_path / "demo" / "kpi_trajectories.png").stat().st_size > 0
    text = "\n".join(lines)
    assert "learned champion" in text and "champion vs rules" in text
    assert "95% confidence interval" in text
    assert "policy: executed/held/blocked" in text
    assert "mlflow ui --backend-store-uri" in text
    runs = mlflow.search_runs(experiment_names=["autopilot-demo"])
    assert len(runs) == 2  # the champion's registration and the closed loop
    assert "metrics.none.business_value" in runs.columns


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("users", 99, "users=99"), ("days", 0, "days=0"), ("seeds", 1.5, "seeds=1.5")],
)
def test_demo_config_rejects_bad_budgets(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DemoConfig(**{field: value})  # type: ignore[arg-type]
