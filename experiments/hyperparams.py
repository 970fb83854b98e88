"""Hyperparameters of the stable-baselines3 algorithms: validated by pydantic, with no defaults.

The values live in one place, ``experiments/configs/<algo>.yaml`` (RL Zoo's
``hyperparams/<algo>.yml``), which names every field; a class here only says which fields exist,
their types and their ranges, so a file missing a field is an error, not a silent second default.
Bandits and the fixed policies use their own config dataclasses (``policies.bandits``,
``policies.rules``); :class:`NoParams` is for those with nothing to set.

Construction validates (``pydantic.dataclasses``): a bad value raises ``ValueError`` (pydantic's
``ValidationError``) naming the field and the value, and ``dataclasses.replace`` validates again.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
"""Unknown fields and NaN/inf are errors in every config class."""

StepSize = Annotated[float, Field(gt=0.0, le=1.0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
Weight = Annotated[float, Field(ge=0.0, le=10.0)]
Count = Annotated[int, Field(ge=1)]
LayerWidths = Annotated[tuple[Annotated[int, Field(ge=1, le=4096)], ...], Field(min_length=1)]
"""Hidden layer widths, one or more integers in [1, 4096]."""
Activation = Literal["tanh", "relu"]
Schedule = Literal["constant", "linear"]


class ParamsBase:
    """Shared behaviour of the hyperparameter classes."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples as lists), for YAML and MLflow params."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        }


@dataclass(frozen=True, config=STRICT)
class _SB3Params(ParamsBase):
    """What every stable-baselines3 algorithm here takes."""

    learning_rate: StepSize
    """Optimizer step size (PPO and DQN: Adam; A2C: RMSprop)."""
    learning_rate_schedule: Schedule
    """``constant``: ``learning_rate`` throughout; ``linear``: from ``learning_rate`` at the
    first update down to zero at the last (RL Zoo's ``lin_`` schedules)."""
    gamma: Fraction
    """Discount factor per step (a step is 4 hours; 0.995 halves in ~23 days)."""
    net_arch: LayerWidths
    """Hidden layer widths of the networks."""
    reward_scale: Positive
    """Training rewards are multiplied by this (keeps value targets near 1); evaluation and
    serving see the true rewards."""


@dataclass(frozen=True, config=STRICT)
class _ActorCriticParams(_SB3Params):
    """What PPO and A2C share."""

    n_steps: Count
    """Steps collected per environment before each update (rollout length)."""
    gae_lambda: Fraction
    """Generalized advantage estimation's bias/variance trade-off (1.0: n-step returns)."""
    ent_coef: Fraction
    """Entropy bonus weight (exploration)."""
    vf_coef: Weight
    """Value-loss weight."""
    max_grad_norm: Positive
    """Gradient clipping norm."""
    activation: Activation
    """Hidden layer activation."""


@dataclass(frozen=True, config=STRICT)
class PPOParams(_ActorCriticParams):
    """PPO (``stable_baselines3.PPO``) hyperparameters."""

    n_steps: Annotated[int, Field(ge=2)]
    """Steps collected per environment before each update (PPO needs two or more)."""
    batch_size: Annotated[int, Field(ge=2)]
    """Minibatch size for the gradient steps; ``n_steps * n_envs`` should be a multiple of it."""
    n_epochs: Count
    """Passes over each rollout."""
    clip_range: StepSize
    """PPO's probability-ratio clip."""


@dataclass(frozen=True, config=STRICT)
class MaskablePPOParams(PPOParams):
    """MaskablePPO (``sb3_contrib.MaskablePPO``) hyperparameters: PPO's, plus the warm start
    by imitation of the rules (``policies.sb3.imitate``) that precedes reinforcement learning."""

    imitation_seeds: Annotated[int, Field(ge=0)]
    """Episodes of the rules per scenario (every scenario) to imitate; 0: no warm start."""
    imitation_epochs: Annotated[int, Field(ge=0)]
    """Passes of behaviour cloning over those episodes; 0: no warm start."""
    imitation_learning_rate: StepSize
    """Step size of the behaviour cloning (the RL phase uses ``learning_rate``)."""


@dataclass(frozen=True, config=STRICT)
class A2CParams(_ActorCriticParams):
    """A2C (``stable_baselines3.A2C``) hyperparameters."""

    normalize_advantage: bool
    """Normalize advantages per update."""


@dataclass(frozen=True, config=STRICT)
class DQNParams(_SB3Params):
    """DQN (``stable_baselines3.DQN``) hyperparameters."""

    buffer_size: Count
    """Replay buffer capacity (transitions)."""
    learning_starts: Annotated[int, Field(ge=0)]
    """Transitions collected before the first gradient step."""
    batch_size: Count
    """Minibatch size."""
    tau: StepSize
    """Target network soft-update coefficient (1.0: hard copy)."""
    train_freq: Count
    """Environment steps between gradient updates."""
    gradient_steps: Count
    """Gradient steps per update."""
    target_update_interval: Count
    """Environment steps between target network updates."""
    exploration_fraction: Fraction
    """Share of training over which epsilon decays."""
    exploration_initial_eps: Fraction
    """Epsilon at the start."""
    exploration_final_eps: Fraction
    """Epsilon after the decay."""


@dataclass(frozen=True, config=STRICT)
class NoParams(ParamsBase):
    """Policies with nothing to set (``noop``, ``random``'s seed comes from the config)."""


SB3_PARAMS: dict[str, type[ParamsBase]] = {
    "ppo": PPOParams,
    "a2c": A2CParams,
    "dqn": DQNParams,
    "maskable_ppo": MaskablePPOParams,
}
"""Hyperparameter classes of the stable-baselines3 algorithms."""

__all__ = [
    "SB3_PARAMS",
    "A2CParams",
    "DQNParams",
    "MaskablePPOParams",
    "NoParams",
    "PPOParams",
    "ParamsBase",
]
