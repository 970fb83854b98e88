"""The algorithms ``autopilot train`` knows, and how each one trains.

Three families share one training contract (:class:`TrainingHooks`): report progress in
environment steps, hand the current policy to ``on_checkpoint`` every ``eval_every`` steps
(the caller evaluates and logs it, and may stop training by raising), and stream training
diagnostics to ``on_metrics`` (bandits) or SB3's logger (``sb3_output``).

- ``sb3`` (ppo, a2c, dqn, maskable_ppo): stable-baselines3 (and sb3-contrib's MaskablePPO)
  on :func:`policies.sb3.make_training_env`,
  served as :class:`policies.sb3.SB3Policy`;
- ``bandit`` (epsilon_greedy, ucb1, linucb, thompson): online updates over whole episodes
  (:func:`policies.evaluation.fit_online`), one per 540 steps of budget;
- ``fixed`` (rules, noop, random): nothing to learn; "training" evaluates and registers them,
  which is how a baseline becomes a registered model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

import environment
from experiments.hyperparams import SB3_PARAMS, NoParams
from policies.bandits import (
    EpsilonGreedyBandit,
    EpsilonGreedyConfig,
    LinUCBBandit,
    LinUCBConfig,
    ThompsonBandit,
    ThompsonConfig,
    UCB1Bandit,
    UCB1Config,
)
from policies.base import Policy
from policies.evaluation import fit_online
from policies.rules import RulesConfig, RulesPolicy
from policies.sb3 import SB3Policy, demonstrate, train_sb3
from policies.simple import NoopPolicy, RandomPolicy

Family = Literal["sb3", "bandit", "fixed"]

TRAIN_SEED_BASE = 1_000_000
"""Bandit training episodes use seeds ``TRAIN_SEED_BASE + 10_000 * seed + k``: never an
evaluation (1,000+) or promotion (0+) seed."""


@dataclass
class TrainingHooks:
    """What a trainer reports to the run (all optional)."""

    on_progress: Callable[[int], None] = lambda steps: None
    """Called with the environment steps done so far."""
    on_checkpoint: Callable[[Policy, int], None] = lambda policy, steps: None
    """Called with the current policy every ``eval_every`` steps; raising stops training."""
    on_metrics: Callable[[dict[str, float], int], None] = lambda metrics, steps: None
    """Training diagnostics at a step (bandits: the episode return)."""
    sb3_output: KVWriter | None = None
    """Where SB3's logger writes (``experiments.tracking.MlflowOutputFormat``)."""


@dataclass(frozen=True)
class Algorithm:
    """One trainable algorithm: its family, hyperparameter class and how to build it."""

    name: str
    family: Family
    params: type
    build: Callable[[Any, int], Policy] | None = None
    """Bandits and fixed policies: ``(hyperparameters, seed) -> policy``."""


def _with_seed(params: Any, seed: int) -> Any:
    """``params`` with its ``seed`` field (if it has one) set to the run's seed."""
    if any(f.name == "seed" for f in dataclasses.fields(params)):
        return dataclasses.replace(params, seed=seed)
    return params


def _bandit_builder(cls: Callable[[Any], Policy]) -> Callable[[Any, int], Policy]:
    def build(params: Any, seed: int) -> Policy:
        return cls(_with_seed(params, seed))

    return build


def _no_params_noop(_: Any, __: int) -> Policy:
    return NoopPolicy()


def _no_params_random(_: Any, seed: int) -> Policy:
    return RandomPolicy(seed=seed)


def _algorithms() -> dict[str, Algorithm]:
    catalogue: list[Algorithm] = [
        Algorithm(name, "sb3", SB3_PARAMS[name]) for name in ("ppo", "a2c", "dqn", "maskable_ppo")
    ]
    bandits: tuple[tuple[str, type, Callable[[Any], Policy]], ...] = (
        ("epsilon_greedy", EpsilonGreedyConfig, EpsilonGreedyBandit),
        ("ucb1", UCB1Config, UCB1Bandit),
        ("linucb", LinUCBConfig, LinUCBBandit),
        ("thompson", ThompsonConfig, ThompsonBandit),
    )
    for name, config_cls, cls in bandits:
        catalogue.append(Algorithm(name, "bandit", config_cls, _bandit_builder(cls)))
    catalogue += [
        Algorithm("rules", "fixed", RulesConfig, lambda params, seed: RulesPolicy(params)),
        Algorithm("noop", "fixed", NoParams, _no_params_noop),
        Algorithm("random", "fixed", NoParams, _no_params_random),
    ]
    return {a.name: a for a in catalogue}


ALGORITHMS: dict[str, Algorithm] = _algorithms()
"""Every algorithm ``autopilot train`` accepts, by name."""


# --- trainers -------------------------------------------------------------------------------


IMITATION_FIELDS = ("imitation_seeds", "imitation_epochs", "imitation_learning_rate")
"""Hyperparameters of the warm start, which are not the SB3 algorithm's own."""
IMITATION_SEED_BASE = 2_000_000
"""The rules' demonstration episodes use seeds ``IMITATION_SEED_BASE + 10_000 * seed + k``:
never an evaluation, promotion, bandit-training or benchmark seed."""


def sb3_kwargs(params: Any) -> dict[str, Any]:
    """``params`` as keyword arguments of the SB3 algorithm (``net_arch`` and ``activation``
    go into ``policy_kwargs``; ``reward_scale`` goes to the training env; a ``linear``
    ``learning_rate_schedule`` makes ``learning_rate`` SB3's schedule of the progress left)."""
    kwargs = dataclasses.asdict(params)
    kwargs.pop("reward_scale")
    if kwargs.pop("learning_rate_schedule") == "linear":
        kwargs["learning_rate"] = LinearSchedule(kwargs["learning_rate"], 0.0, 1.0)
    for name in IMITATION_FIELDS:
        kwargs.pop(name, None)
    policy_kwargs: dict[str, Any] = {"net_arch": list(kwargs.pop("net_arch"))}
    activation = kwargs.pop("activation", None)
    if activation is not None:
        policy_kwargs["activation_fn"] = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    kwargs["policy_kwargs"] = policy_kwargs
    return kwargs


class _HooksCallback(BaseCallback):
    """Forwards SB3's progress to :class:`TrainingHooks` and runs the checkpoints."""

    def __init__(self, hooks: TrainingHooks, eval_every: int, timesteps: int) -> None:
        super().__init__()
        self.hooks = hooks
        self.eval_every = eval_every
        self.timesteps = timesteps
        self.next_checkpoint = eval_every

    def _on_step(self) -> bool:
        steps = int(self.num_timesteps)
        self.hooks.on_progress(steps)
        # The last checkpoint is the caller's final evaluation, after the last update (here,
        # an on-policy algorithm may still be collecting its last rollout).
        if self.eval_every and self.next_checkpoint <= steps < self.timesteps:
            self.next_checkpoint += self.eval_every * max(
                1, (steps - self.next_checkpoint) // self.eval_every + 1
            )
            self.hooks.on_checkpoint(SB3Policy(self.model), steps)
        return True


def train_sb3_policy(
    algo: str,
    params: Any,
    scenario: str | Sequence[str],
    timesteps: int,
    seed: int,
    n_envs: int,
    eval_every: int,
    hooks: TrainingHooks,
) -> SB3Policy:
    """Train an SB3 model; SB3's logger writes only to ``hooks.sb3_output``. A maskable PPO
    whose ``imitation_seeds`` and ``imitation_epochs`` are set first imitates the rules
    (:func:`policies.sb3.demonstrate` on every scenario, in the guarded environment)."""
    outputs = [hooks.sb3_output] if hooks.sb3_output is not None else []
    demonstrations, epochs = None, int(getattr(params, "imitation_epochs", 0))
    episodes = int(getattr(params, "imitation_seeds", 0))
    if epochs and episodes:
        first = IMITATION_SEED_BASE + 10_000 * seed
        demonstrations = demonstrate(
            RulesPolicy(),
            environment.SCENARIO_NAMES,
            range(first, first + episodes),
            gamma=params.gamma,
            reward_scale=params.reward_scale,
        )
    return train_sb3(
        algo,
        scenario,
        timesteps,
        seed,
        n_envs=n_envs,
        reward_scale=params.reward_scale,
        callback=_HooksCallback(hooks, eval_every, timesteps),
        logger=Logger(folder=None, output_formats=outputs),
        demonstrations=demonstrations,
        imitation_epochs=epochs,
        imitation_learning_rate=float(getattr(params, "imitation_learning_rate", 1e-3)),
        **sb3_kwargs(params),
    )


def train_bandit(
    build: Callable[[Any, int], Policy],
    params: Any,
    scenario: str,
    timesteps: int,
    seed: int,
    eval_every: int,
    hooks: TrainingHooks,
) -> Policy:
    """Online updates over ``ceil(timesteps / 540)`` episodes of ``scenario``."""
    policy = build(params, seed)
    episodes = math.ceil(timesteps / environment.MAX_EPISODE_STEPS)
    next_checkpoint = eval_every
    steps = 0
    for k in range(episodes):
        episode_seed = TRAIN_SEED_BASE + 10_000 * seed + k
        names = environment.SCENARIO_NAMES if scenario == "all" else (scenario,)
        episode_scenario = names[k % len(names)]
        (episode_return,) = fit_online(policy, [episode_scenario], episodes=1, seed=episode_seed)
        steps += environment.MAX_EPISODE_STEPS
        hooks.on_progress(steps)
        hooks.on_metrics({"train/episode_return": float(episode_return)}, steps)
        if eval_every and steps >= next_checkpoint and k < episodes - 1:
            next_checkpoint += eval_every
            hooks.on_checkpoint(policy, steps)
    return policy


__all__ = ["ALGORITHMS", "Algorithm", "TrainingHooks", "sb3_kwargs"]
