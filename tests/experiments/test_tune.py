"""Tuning: Optuna trials as nested MLflow runs, pruning, storage."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from experiments.tracking import Tracking, experiment_id
from experiments.tune import tune

TINY = {
    "timesteps": "1080",
    "eval_every": "540",
    "eval_scenarios": "steady",
    "eval_seeds": "2",
}
"""Two bandit episodes with one intermediate evaluation."""


def _overrides(**extra: str) -> list[str]:
    return [f"{k}={v}" for k, v in (TINY | extra).items()]


def test_trials_are_nested_runs_and_the_study_persists(tracking: Tracking) -> None:
    result = tune("linucb", 2, overrides=_overrides(), tracking=tracking)
    assert result.complete == 2 and result.best_value is not None
    assert set(result.best_params) == {"alpha", "ridge"}
    # The default storage is a local SQLite file in the working directory.
    assert Path("optuna.db").is_file()
    client = tracking.client()
    runs = client.search_runs([experiment_id(tracking, "autopilot-tune")])
    children = [r for r in runs if r.data.tags.get(MLFLOW_PARENT_RUN_ID) == result.run_id]
    assert len(children) == 2
    assert {r.data.tags["optuna.state"] for r in children} == {"COMPLETE"}
    assert all("eval/mean_return" in r.data.metrics for r in children)
    assert all(r.data.params["register"] == "False" for r in children)
    parent = client.get_run(result.run_id)
    assert parent.data.metrics["best_value"] == pytest.approx(result.best_value)
    assert {f"best.{k}" for k in result.best_params} <= set(parent.data.params)
    # The intermediate values that pruning compares were reported.
    study = optuna.load_study(study_name="autopilot-linucb", storage="sqlite:///optuna.db")
    assert all(t.intermediate_values for t in study.trials)

    # A second invocation continues the same study.
    again = tune("linucb", 1, overrides=_overrides(), tracking=tracking)
    assert again.complete + again.pruned == 3 and again.failed == 0  # the median may prune it


def test_pruned_trials_stop_early_and_are_marked(tracking: Tracking) -> None:
    # Every intermediate value is below this bar, so every trial is pruned at its first report.
    pruner = optuna.pruners.ThresholdPruner(lower=1e12)
    result = tune(
        "linucb",
        2,
        overrides=_overrides(),
        storage="sqlite:///pruning.db",
        pruner=pruner,
        tracking=tracking,
    )
    assert (result.complete, result.pruned) == (0, 2)
    assert result.best_value is None
    runs = tracking.client().search_runs([experiment_id(tracking, "autopilot-tune")])
    children = [r for r in runs if r.data.tags.get(MLFLOW_PARENT_RUN_ID) == result.run_id]
    assert {r.data.tags["optuna.state"] for r in children} == {"PRUNED"}
    # Stopped after the first evaluation: no final evaluation, no model.
    history = tracking.client().get_metric_history(children[0].info.run_id, "eval/mean_return")
    assert [m.step for m in history] == [540]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"algo": "xgboost"}, ValueError, "unknown algo 'xgboost'; allowed: .*'ppo'"),
        ({"trials": 0}, ValueError, "trials=0"),
        ({"storage": "not a url"}, ValueError, "Optuna storage 'not a url' is not a database URL"),
        ({"overrides": ["alpha=wide"]}, ValueError, r"LinUCBConfig\.alpha='wide'.*a number"),
        ({"algo": "rules"}, ValueError, "has no search_space for 'rules'"),
    ],
)
def test_bad_tuning_inputs(
    tracking: Tracking, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {"algo": "linucb", "trials": 1, "tracking": tracking} | kwargs
    with pytest.raises(error, match=match):
        tune(**arguments)  # type: ignore[arg-type]
