"""``autopilot train``: one MLflow run per training, readable top to bottom.

What a run holds:

- **params**: every setting of the resolved :class:`~experiments.config.TrainConfig`, the
  hyperparameters as ``hyperparameters.<name>``; **tags** ``autopilot.command=train``,
  ``algo``, ``family``, ``scenario``;
- **training metrics**: stable-baselines3's whole logger (``train/loss``,
  ``train/entropy_loss``, ``rollout/ep_rew_mean``, ``time/fps``, ...) streamed through
  :class:`~experiments.tracking.MlflowOutputFormat`; a bandit's ``train/episode_return``;
- **evaluation metrics** every ``eval_every`` steps and at the end, at step = environment
  steps: ``eval/<scenario>/mean_return`` (with ``_low``/``_high``, the 95% interval),
  ``eval/mean_return`` over scenarios (stratified interval), ``eval/failure_rate``;
- **artifacts**: ``config/train_config.yaml`` (reloadable with ``--config``),
  ``plots/learning_curve.png``, ``plots/kpi_trajectories.png``, ``evaluation/table.txt``, and
  the model ``policy`` (pyfunc, with signature), registered as a version of
  ``autopilot-policy`` with alias ``challenger`` (or the ``alias`` given: a second training
  under its own alias leaves the challenger where it is; under ``challenger`` it takes the
  alias, and :attr:`LoggedPolicy.replaced` says from which version).

Reproducible: the same config and seed give the same evaluation metrics (SB3 is seeded, the
bandits draw from seeded generators, evaluation episodes are seeded, and evaluating during
training reads the weights without touching any random state).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from tqdm import tqdm

from experiments import plots
from experiments.algorithms import ALGORITHMS, TrainingHooks, train_bandit, train_sb3_policy
from experiments.config import TrainConfig, write_config
from experiments.evaluate import result_metrics
from experiments.models import CHALLENGER, LoggedPolicy, check_alias, log_policy_model
from experiments.tracking import (
    MlflowOutputFormat,
    Tracking,
    configure,
    log_metrics,
    log_params,
    start_run,
)
from policies.base import Policy
from policies.evaluation import EvaluationResult, evaluate

EvaluationCallback = Callable[[int, float], None]
"""``(environment steps, mean evaluation return)``; may raise to stop training (tuning's
pruner raises ``optuna.TrialPruned``)."""


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    run_id: str
    config: TrainConfig
    policy: Policy
    evaluation: EvaluationResult
    """The final evaluation (``config.eval_scenarios`` x ``config.eval_seed_list``)."""
    checkpoints: tuple[plots.Checkpoint, ...] = field(default=())
    logged: LoggedPolicy | None = None

    @property
    def mean_return(self) -> float:
        """The final evaluation's mean return over scenarios."""
        return self.evaluation.overall().mean


def train(
    config: TrainConfig,
    *,
    tracking: Tracking | None = None,
    progress: bool = False,
    run_name: str | None = None,
    keep_best: bool = False,
    alias: str = CHALLENGER,
) -> TrainResult:
    """Train ``config`` in a new MLflow run in ``config.experiment`` (module docstring);
    ``keep_best`` and ``alias``: see :func:`run_training`. A bad ``alias`` raises
    ``ValueError`` before any training."""
    check_alias(alias)
    store = tracking or configure()
    name = run_name or f"{config.algo}-{config.scenario}-seed{config.seed}"
    with start_run(store, config.experiment, name, tags=_tags(config)):
        return run_training(config, progress=progress, keep_best=keep_best, alias=alias)


def _tags(config: TrainConfig) -> dict[str, str]:
    return {
        "autopilot.command": "train",
        "algo": config.algo,
        "family": ALGORITHMS[config.algo].family,
        "scenario": config.scenario,
    }


def run_training(
    config: TrainConfig,
    *,
    progress: bool = False,
    on_evaluation: EvaluationCallback | None = None,
    keep_best: bool = False,
    alias: str = CHALLENGER,
) -> TrainResult:
    """Train ``config`` inside the active MLflow run (what :func:`train` and tuning trials
    call); see the module docstring for what is logged. ``keep_best``: the result is the
    checkpoint with the best mean return on the evaluation seeds (a validation set: the
    benchmarks' seeds are elsewhere), not necessarily the last; the run's tag
    ``kept_checkpoint`` says which step. ``alias``: the registry alias the new version gets
    when ``config.register`` (:func:`experiments.models.check_alias`)."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("run_training needs an active MLflow run; use train()")
    run_id = run.info.run_id
    mlflow.set_tags(_tags(config))
    log_params(config.flat_params())
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.log_artifact(str(write_config(config, Path(tmp) / "train_config.yaml")), "config")

    checkpoints: list[plots.Checkpoint] = []
    writer = MlflowOutputFormat(run_id)
    bar = tqdm(
        total=config.timesteps,
        unit="step",
        desc=f"train {config.algo}",
        disable=not progress,
        dynamic_ncols=True,
    )

    def on_progress(steps: int) -> None:
        bar.update(min(steps, config.timesteps) - bar.n)

    kept = tempfile.TemporaryDirectory(prefix="autopilot-best-")
    best: list[tuple[float, int, Path]] = []  # (mean return, steps, saved file)

    def on_checkpoint(policy: Policy, steps: int) -> None:
        result = evaluate(policy, config.eval_scenarios, config.eval_seed_list, record_kpis=False)
        overall = result.overall()
        if keep_best and (not best or overall.mean > best[0][0]):
            best[:] = [(overall.mean, steps, policy.save(Path(kept.name) / "best"))]
        checkpoints.append(plots.Checkpoint(steps, overall.mean, overall.low, overall.high))
        log_metrics(result_metrics(result, "eval/"), step=steps)
        bar.set_postfix(eval_return=f"{overall.mean:.1f}")
        if on_evaluation is not None:
            on_evaluation(steps, overall.mean)

    def on_metrics(metrics: dict[str, float], steps: int) -> None:
        writer.write(metrics, {}, steps)

    hooks = TrainingHooks(on_progress, on_checkpoint, on_metrics, writer)
    algorithm = ALGORITHMS[config.algo]
    try:
        if algorithm.family == "sb3":
            policy: Policy = train_sb3_policy(
                config.algo,
                config.hyperparameters,
                config.scenarios,
                config.timesteps,
                config.seed,
                config.n_envs,
                config.eval_every,
                hooks,
            )
        else:
            assert algorithm.build is not None
            if algorithm.family == "bandit":
                policy = train_bandit(
                    algorithm.build,
                    config.hyperparameters,
                    config.scenario,
                    config.timesteps,
                    config.seed,
                    config.eval_every,
                    hooks,
                )
            else:
                policy = algorithm.build(config.hyperparameters, config.seed)
        on_progress(config.timesteps)
    finally:
        writer.close()
        bar.close()

    # The final evaluation: the numbers the run is judged by, with KPI trajectories.
    final = evaluate(policy, config.eval_scenarios, config.eval_seed_list, record_kpis=True)
    overall = final.overall()
    if not checkpoints or checkpoints[-1].timesteps != config.timesteps:
        checkpoints.append(
            plots.Checkpoint(config.timesteps, overall.mean, overall.low, overall.high)
        )
        log_metrics(result_metrics(final, "eval/"), step=config.timesteps)
        if on_evaluation is not None:
            on_evaluation(config.timesteps, overall.mean)
    with kept:
        if best and best[0][0] > overall.mean:
            policy = type(policy).load(best[0][2])  # type: ignore[attr-defined]
            final = evaluate(policy, config.eval_scenarios, config.eval_seed_list, record_kpis=True)
            mlflow.set_tag("kept_checkpoint", str(best[0][1]))
    log_metrics({"train/metrics_streamed": float(writer.metrics_logged)}, step=config.timesteps)
    mlflow.log_text(final.table(), "evaluation/table.txt")
    train_curve = writer.series("rollout/ep_rew_mean") or writer.series("train/episode_return")
    title = f"{config.algo} on {config.scenario} (seed {config.seed})"
    mlflow.log_figure(
        plots.learning_curve(checkpoints, train_curve, title), "plots/learning_curve.png"
    )
    mlflow.log_figure(plots.kpi_trajectories(final), "plots/kpi_trajectories.png")

    tags = {"algo": config.algo, "scenario": config.scenario, "run_id": run_id}
    logged = log_policy_model(policy, register=config.register, alias=alias, tags=tags)
    if logged.registered_uri is not None:
        policy.version = logged.registered_uri
    return TrainResult(run_id, config, policy, final, tuple(checkpoints), logged)


__all__ = ["TrainResult", "run_training", "train"]
