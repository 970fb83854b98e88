"""The shipped champion: a policy trained by one documented command, reproducible from its seed.

``autopilot train --preset champion`` runs :func:`train_champion`:

1. train ``experiments/configs/presets/champion.yaml`` (MaskablePPO on the guarded
   environment, warm-started by imitation of the rules; see that file) in an MLflow run, as
   ``autopilot train`` does, keeping the checkpoint with the best mean return on the
   validation seeds (``eval_seed_start``; ``train(keep_best=True)``), not the last;
2. calibrate its confidence (:mod:`policies.calibration`) on the counterfactual evidence of
   :data:`CALIBRATION_SEEDS` (every scenario), seeds no training, tuning, test or benchmark
   uses, so that its confidence is the estimated probability that executing beats holding;
3. write the model with its calibration to ``--output`` (default :data:`SHIPPED_MODEL`, the
   package's copy) and, beside it, ``champion.json``: the config, the seed, the MLflow run,
   the training wall time and the final evaluation, the metadata an MLflow model carries;
   and ``rules_calibration.json``, the rules' confidence calibrated on the same seeds, so the
   live loop compares both policies' confidences on one scale.

The demo (:mod:`experiments.demo`) evaluates this file instead of training it: training and
calibration take about five minutes on two quiet cores, the demo's whole budget.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from environment.scenarios import SCENARIO_NAMES
from experiments.config import TrainConfig, load_config, write_config
from experiments.models import CHALLENGER
from experiments.thresholds import collect_decisions
from experiments.tracking import Tracking
from experiments.train import train
from policies.base import Policy
from policies.calibration import Calibration, fit_calibration
from policies.evaluation import EvaluationResult
from policies.registry import CHAMPION_MODEL
from policies.rules import RULES_CALIBRATION, RulesPolicy
from policies.sb3 import SB3Policy

PRESETS_DIR = Path(__file__).parent / "configs" / "presets"
PRESETS: tuple[str, ...] = ("champion",)
"""Presets ``autopilot train --preset`` accepts."""
SHIPPED_MODEL = CHAMPION_MODEL
"""The package's champion (the file ``policies.registry`` loads as ``champion``)."""
CALIBRATION_SEEDS: tuple[int, ...] = tuple(range(3_000_000, 3_000_004))
"""Seeds of the calibration evidence: disjoint from training (bandits 1,000,000+, imitation
2,000,000+), evaluation (0+, 1,000+), tests (< 100) and benchmarks (9,000+, 20,000+)."""


@dataclass(frozen=True, slots=True)
class ChampionResult:
    """Where the champion went and what it scored."""

    model: Path
    metadata: Path
    run_id: str
    seconds: float


def preset_path(name: str) -> Path:
    """The config file of a preset; ``ValueError`` naming the presets."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {list(PRESETS)}")
    return PRESETS_DIR / f"{name}.yaml"


def train_champion(
    *,
    output: Path = SHIPPED_MODEL,
    tracking: Tracking | None = None,
    overrides: dict[str, Any] | None = None,
    settings: Sequence[str] = (),
    calibration_scenarios: Sequence[str] = SCENARIO_NAMES,
    calibration_seeds: Sequence[int] = CALIBRATION_SEEDS,
    progress: bool = False,
    alias: str = CHALLENGER,
) -> ChampionResult:
    """Train, calibrate and write the champion (module docstring). ``overrides``: typed
    ``TrainConfig`` fields (e.g. ``timesteps`` for a smoke run); ``settings``: ``--set``
    strings (hyperparameters too); the calibration evidence's scenarios and seeds default to
    every scenario on :data:`CALIBRATION_SEEDS`; ``alias``: the registry alias of the trained
    version (:func:`experiments.train.train`)."""
    config = load_config("maskable_ppo", preset_path("champion"), settings, **(overrides or {}))
    began = time.perf_counter()
    result = train(
        config,
        tracking=tracking,
        progress=progress,
        run_name="champion",
        keep_best=True,
        alias=alias,
    )
    policy = result.policy
    if not isinstance(policy, SB3Policy):
        raise TypeError(f"the champion preset must train an SB3 policy, got {policy!r}")
    return ship_champion(
        policy,
        config,
        result.run_id,
        result.evaluation,
        training_seconds=time.perf_counter() - began,
        output=output,
        calibration_scenarios=calibration_scenarios,
        calibration_seeds=calibration_seeds,
    )


def ship_champion(
    policy: SB3Policy,
    config: TrainConfig,
    run_id: str,
    evaluation: EvaluationResult,
    *,
    training_seconds: float,
    output: Path = SHIPPED_MODEL,
    calibration_scenarios: Sequence[str] = SCENARIO_NAMES,
    calibration_seeds: Sequence[int] = CALIBRATION_SEEDS,
) -> ChampionResult:
    """Steps 2 and 3 of the module docstring for a trained ``policy``: calibrate it and the
    rules, write the model, its config and its metadata."""
    evidence = (tuple(calibration_scenarios), tuple(calibration_seeds))
    began = time.perf_counter()
    policy.calibration, decisions = calibrate(policy, *evidence)
    output.parent.mkdir(parents=True, exist_ok=True)
    model = policy.save(output)
    metadata = model.with_name(model.stem + ".json")
    overall = evaluation.overall()
    config_file = write_config(config, model.with_name(model.stem + ".yaml"))
    write_rules_calibration(model.with_name(RULES_CALIBRATION.name), *evidence)
    seconds = training_seconds + time.perf_counter() - began
    metadata.write_text(
        json.dumps(
            {
                "command": "autopilot train --preset champion",
                "algo": config.algo,
                "seed": config.seed,
                "timesteps": config.timesteps,
                "config": config_file.name,
                "mlflow_run_id": run_id,
                "training_seconds": round(seconds, 1),
                "version": policy.version,
                "evaluation": {
                    "scenarios": list(evaluation.scenarios),
                    "seeds": list(evaluation.seeds),
                    "mean_return": overall.mean,
                    "interval_95": [overall.low, overall.high],
                },
                "calibration_decisions": decisions,
            },
            indent=2,
        )
        + "\n"
    )
    return ChampionResult(model, metadata, run_id, seconds)


def calibrate(
    policy: Policy,
    scenarios: Sequence[str] = SCENARIO_NAMES,
    seeds: Sequence[int] = CALIBRATION_SEEDS,
) -> tuple[Calibration | None, int]:
    """(calibration, decisions measured): ``policy``'s confidence fitted onto the share of
    its decisions that beat holding on ``scenarios`` x ``seeds`` (None without decisions)."""
    evidence = collect_decisions(policy, scenarios, seeds)
    if not len(evidence.actions):
        return None, 0
    outcomes = (evidence.values > 0).astype(np.float64)
    return fit_calibration(evidence.actions, evidence.confidences, outcomes), len(outcomes)


def write_rules_calibration(
    path: Path = RULES_CALIBRATION,
    scenarios: Sequence[str] = SCENARIO_NAMES,
    seeds: Sequence[int] = CALIBRATION_SEEDS,
) -> Path:
    """Calibrate the rules' severity confidence (:func:`calibrate`) and write it as JSON."""
    calibration, _ = calibrate(RulesPolicy(), scenarios, seeds)
    if calibration is None:
        raise RuntimeError("the rules took no action on the calibration seeds")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration.to_dict(), indent=2) + "\n")
    return path
