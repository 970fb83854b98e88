"""``autopilot tune``: Optuna search over an algorithm's hyperparameters, with pruning.

The search space is the ``search_space`` of the algorithm's config file
(:func:`experiments.config.load_search_space`); everything else comes from the same file and
``--set`` overrides, as for ``autopilot train``. Every trial is a training run
(:func:`experiments.train.run_training`) nested under the study's MLflow run, with the trial's
number and state as tags; trials are not registered as models.

**Objective**: the final evaluation's mean return over the evaluation scenarios (seeds
1,000+, never the promotion seeds). **Pruning**: each periodic evaluation is reported with
``trial.report(mean_return, step)``; when ``trial.should_prune()`` says so (the median rule,
:class:`optuna.pruners.MedianPruner`, after ``startup_trials`` complete trials), the trial
stops and is recorded as pruned, in Optuna and as the tag ``optuna.state=PRUNED`` on its run.
Set ``eval_every`` (``--set eval_every=N``) for pruning to have intermediate values.

**Storage**: ``sqlite:///optuna.db`` in the working directory by default; any SQLAlchemy
database URL works (``postgresql+psycopg://user@host/db``), so many machines can run trials of
one study (``load_if_exists``): start ``autopilot tune`` with the same ``--storage`` and
``--study`` on each.

The study's run logs the search space, storage (password masked), study name, and at the end
the best value (metric ``best_value``), the best hyperparameters (params ``best.<name>``), the
counts of complete and pruned trials, and ``trials.csv``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from experiments.config import (
    SearchDimension,
    TrainConfig,
    check_algo,
    load_config,
    load_search_space,
)
from experiments.tracking import Tracking, configure, log_metrics, log_params, start_run
from experiments.train import run_training

DEFAULT_STORAGE = "sqlite:///optuna.db"


def check_storage(url: str) -> str:
    """``url`` if SQLAlchemy can parse it as a database URL; ``ValueError`` otherwise."""
    try:
        make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise ValueError(
            f"Optuna storage {url!r} is not a database URL; expected e.g. "
            f"{DEFAULT_STORAGE!r} or 'postgresql+psycopg://user@host/db'"
        ) from None
    return url


def masked(url: str) -> str:
    """``url`` with its password hidden, for logs."""
    return make_url(url).render_as_string(hide_password=True)


def suggest(trial: optuna.Trial, space: Sequence[SearchDimension]) -> dict[str, Any]:
    """One value per dimension from ``trial``. Categorical choices that are lists (layer
    widths) are offered to Optuna as text (``"64,64"``) and returned as tuples."""
    values: dict[str, Any] = {}
    for dim in space:
        if dim.kind == "categorical":
            labels = [_label(c) for c in dim.choices]
            picked = trial.suggest_categorical(dim.name, labels)
            values[dim.name] = dim.choices[labels.index(picked)]
        elif dim.kind == "int":
            assert dim.low is not None and dim.high is not None
            values[dim.name] = trial.suggest_int(dim.name, int(dim.low), int(dim.high), log=dim.log)
        else:
            assert dim.low is not None and dim.high is not None
            values[dim.name] = trial.suggest_float(dim.name, dim.low, dim.high, log=dim.log)
    return values


def _label(choice: object) -> Any:
    if isinstance(choice, tuple | list):
        return ",".join(str(c) for c in choice)
    return choice


@dataclass(frozen=True)
class TuneResult:
    """What a study found."""

    study_name: str
    storage: str
    run_id: str
    best_value: float | None
    best_params: dict[str, Any]
    complete: int
    pruned: int
    failed: int

    def summary(self) -> str:
        """A few lines for the terminal."""
        best = "none" if self.best_value is None else f"{self.best_value:.2f}"
        return (
            f"study {self.study_name!r} ({masked(self.storage)}): best mean return {best} with "
            f"{self.best_params}; trials complete {self.complete}, pruned {self.pruned}, "
            f"failed {self.failed}; MLflow run {self.run_id}"
        )


def tune(
    algo: str,
    trials: int,
    *,
    config_path: str | Path | None = None,
    overrides: Mapping[str, str] | Sequence[str] = (),
    storage: str | None = None,
    study_name: str | None = None,
    startup_trials: int = 2,
    sampler_seed: int = 0,
    timeout: float | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    tracking: Tracking | None = None,
    experiment: str = "autopilot-tune",
    progress: bool = False,
) -> TuneResult:
    """Run ``trials`` more trials of the study (module docstring); returns its best so far.

    ``pruner`` replaces the default median rule (``MedianPruner(startup_trials)``).
    """
    check_algo(algo)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials={trials!r} is invalid: must be an integer >= 1")
    if (
        isinstance(startup_trials, bool)
        or not isinstance(startup_trials, int)
        or (startup_trials < 0)
    ):
        raise ValueError(f"startup_trials={startup_trials!r} is invalid: must be an integer >= 0")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout={timeout!r} is invalid: must be a number of seconds > 0")
    base = load_config(algo, config_path, overrides, register=False)
    base = base.replace(experiment=experiment)
    space = load_search_space(algo, config_path)
    url = check_storage(storage or DEFAULT_STORAGE)
    name = study_name or f"autopilot-{algo}"
    study = optuna.create_study(
        storage=url,
        study_name=name,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=startup_trials),
        load_if_exists=True,
    )
    store = tracking or configure()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tags = {"autopilot.command": "tune", "algo": algo, "optuna.study": name}
    with start_run(store, experiment, f"tune {name}", tags=tags) as parent:
        log_params(
            {
                "algo": algo,
                "trials": trials,
                "study": name,
                "storage": masked(url),
                "startup_trials": startup_trials,
                "sampler_seed": sampler_seed,
            }
            | {f"space.{d.name}": _describe(d) for d in space}
            | {f"base.{k}": v for k, v in base.flat_params().items()}
        )

        def objective(trial: optuna.Trial) -> float:
            values = suggest(trial, space)
            config = _trial_config(base, values)
            trial_tags = {"optuna.study": name, "optuna.trial": str(trial.number)}
            pruned: optuna.TrialPruned | None = None
            with start_run(
                store, experiment, f"trial {trial.number}", nested=True, tags=trial_tags
            ) as child:
                trial.set_user_attr("mlflow_run_id", child.info.run_id)

                def report(steps: int, mean_return: float) -> None:
                    trial.report(mean_return, steps)
                    if steps < config.timesteps and trial.should_prune():
                        raise optuna.TrialPruned(f"pruned at step {steps}: {mean_return:.2f}")

                try:
                    result = run_training(config, progress=progress, on_evaluation=report)
                except optuna.TrialPruned as error:
                    pruned = error
                    mlflow.set_tag("optuna.state", "PRUNED")
                else:
                    mlflow.set_tag("optuna.state", "COMPLETE")
            if pruned is not None:
                raise pruned
            return result.mean_return

        study.optimize(objective, n_trials=trials, timeout=timeout, catch=())
        states = [t.state for t in study.trials]
        complete = states.count(optuna.trial.TrialState.COMPLETE)
        pruned_count = states.count(optuna.trial.TrialState.PRUNED)
        failed = states.count(optuna.trial.TrialState.FAIL)
        best_value: float | None = None
        best_params: dict[str, Any] = {}
        if complete:
            best_value = float(study.best_value)
            best_params = dict(study.best_params)
            log_params({f"best.{k}": v for k, v in best_params.items()})
            log_metrics({"best_value": best_value})
            mlflow.set_tag("best_trial", str(study.best_trial.number))
        log_metrics(
            {"trials_complete": complete, "trials_pruned": pruned_count, "trials_failed": failed}
        )
        mlflow.log_text(study.trials_dataframe().to_csv(index=False), "trials.csv")
        return TuneResult(
            name, url, parent.info.run_id, best_value, best_params, complete, pruned_count, failed
        )


def _trial_config(base: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """``base`` with the trial's hyperparameters (validated by the params class)."""
    return base.replace(hyperparameters=dataclasses.replace(base.hyperparameters, **values))


def _describe(dim: SearchDimension) -> str:
    if dim.kind == "categorical":
        return f"categorical {[_label(c) for c in dim.choices]}"
    return f"{dim.kind} [{dim.low}, {dim.high}]" + (" log" if dim.log else "")


__all__ = ["DEFAULT_STORAGE", "TuneResult", "check_storage", "suggest", "tune"]
