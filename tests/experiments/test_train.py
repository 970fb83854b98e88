"""Smoke tests of ``experiments.train`` on tiny budgets against a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest

from experiments.config import load_config
from experiments.models import CHALLENGER, model_version
from experiments.tracking import Tracking
from experiments.train import train
from tests.experiments.conftest import TINY_SCENARIOS, tiny_config


def _artifacts(tracking: Tracking, run_id: str) -> set[str]:
    client = tracking.client()
    found: set[str] = set()
    stack = [""]
    while stack:
        for item in client.list_artifacts(run_id, stack.pop() or None):
            (stack.append(item.path) if item.is_dir else found.add(item.path))
    return found


def test_ppo_run_logs_params_metrics_artifacts_and_registers_challenger(
    tracking: Tracking,
) -> None:
    config = tiny_config("ppo")
    result = train(config, tracking=tracking)

    run = tracking.client().get_run(result.run_id)
    params, metrics = run.data.params, run.data.metrics
    # Every setting is a param, hyperparameters included.
    assert params["algo"] == "ppo"
    assert params["timesteps"] == "256"
    assert params["hyperparameters.n_steps"] == "64"
    assert params["hyperparameters.net_arch"] == "64,64"
    assert run.data.tags["autopilot.command"] == "train"
    # SB3's logger streamed through the KVWriter (a PPO update happened) ...
    assert {"train/loss", "train/entropy_loss", "time/fps"} <= set(metrics)
    # ... and the periodic and final evaluations, per scenario and overall.
    for scenario in TINY_SCENARIOS:
        assert f"eval/{scenario}/mean_return" in metrics
    history = tracking.client().get_metric_history(result.run_id, "eval/mean_return")
    assert [m.step for m in history] == [128, 256]
    assert history[-1].value == pytest.approx(result.mean_return)
    assert [c.timesteps for c in result.checkpoints] == [128, 256]

    assert {
        "config/train_config.yaml",
        "plots/learning_curve.png",
        "plots/kpi_trajectories.png",
        "evaluation/table.txt",
    } <= _artifacts(tracking, result.run_id)

    version = model_version(tracking, CHALLENGER)
    assert version is not None and result.logged is not None
    assert str(version.version) == result.logged.version
    assert version.run_id == result.run_id
    assert result.policy.version == f"models:/autopilot-policy/{version.version}"


def test_the_logged_config_reloads_to_the_same_config(tracking: Tracking, tmp_path: Path) -> None:
    config = tiny_config("linucb")
    result = train(config, tracking=tracking)
    local = tracking.client().download_artifacts(
        result.run_id, "config/train_config.yaml", str(tmp_path)
    )
    assert load_config("linucb", local) == config


def test_same_config_and_seed_give_the_same_metrics(tracking: Tracking) -> None:
    config = tiny_config("ppo", register=False)
    first = train(config, tracking=tracking)
    second = train(config, tracking=tracking)
    np.testing.assert_array_equal(first.evaluation.returns, second.evaluation.returns)
    client = tracking.client()
    a, b = (client.get_run(r.run_id).data.metrics for r in (first, second))
    learned = [k for k in a if k.startswith(("eval/", "train/")) and k != "train/metrics_streamed"]
    assert learned
    assert {k: a[k] for k in learned} == {k: b[k] for k in learned}
    # and a different seed is a different run
    third = train(config.replace(seed=1), tracking=tracking)
    assert not np.array_equal(first.evaluation.returns, third.evaluation.returns)


@pytest.mark.parametrize("algo", ["linucb", "thompson", "rules"])
def test_bandits_and_baselines_train_and_register(tracking: Tracking, algo: str) -> None:
    result = train(tiny_config(algo), tracking=tracking)
    metrics = tracking.client().get_run(result.run_id).data.metrics
    assert "eval/mean_return" in metrics
    if algo != "rules":
        assert "train/episode_return" in metrics
    assert result.logged is not None and result.logged.version == "1"


def test_bandit_checkpoints_follow_eval_every(tracking: Tracking) -> None:
    result = train(tiny_config("linucb", timesteps=1080, eval_every=540), tracking=tracking)
    assert [c.timesteps for c in result.checkpoints] == [540, 1080]


def test_no_register_logs_the_model_without_a_version(tracking: Tracking) -> None:
    result = train(tiny_config("noop", register=False), tracking=tracking)
    assert result.logged is not None and result.logged.version is None
    assert model_version(tracking, CHALLENGER) is None


def test_keep_best_returns_the_best_checkpoint_on_the_validation_seeds(
    tracking: Tracking,
) -> None:
    """Checkpoints every episode; the kept policy's return is the best of the checkpoints and
    the final one (evaluation is deterministic, so the kept score is reproduced exactly)."""
    config = tiny_config("linucb", timesteps=2160, eval_every=540)
    result = train(config, tracking=tracking, keep_best=True)
    scores = [c.mean for c in result.checkpoints]
    assert len(scores) == 4
    assert result.mean_return == pytest.approx(max(scores), rel=1e-9)
    run = mlflow.get_run(result.run_id)
    best_step = result.checkpoints[int(np.argmax(scores))].timesteps
    if best_step != config.timesteps:
        assert run.data.tags["kept_checkpoint"] == str(best_step)
    else:
        assert "kept_checkpoint" not in run.data.tags
