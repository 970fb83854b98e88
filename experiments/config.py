"""Experiment configuration: frozen, validated dataclasses, read from YAML, overridable.

One YAML file per algorithm lives in ``experiments/configs/<algo>.yaml`` (installed with the
package, like RL Zoo's ``hyperparams/<algo>.yml``). Its layout::

    algo: ppo                 # the algorithm; must match the file
    scenario: mixed           # TrainConfig fields (see TrainConfig)
    timesteps: 200000
    ...
    hyperparameters:          # fields of the algorithm's hyperparameter class
      learning_rate: 3.0e-4
      ...
    search_space:             # optional: what ``autopilot tune`` searches
      learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
      n_steps: {type: categorical, choices: [128, 256, 512]}

``--set key=value`` overrides a field after the file is read: ``key`` is a ``TrainConfig`` field
(``timesteps=5000``), a hyperparameter (``hyperparameters.learning_rate=1e-3``, or just
``learning_rate=1e-3`` when that name is not also a ``TrainConfig`` field). The value is parsed
by the field's type; a bad key or value raises ``ValueError`` naming it and what is allowed.

Every config class validates itself at construction, so a config that exists is a valid one.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from environment.scenarios import SCENARIO_NAMES

# --- generic field parsing ------------------------------------------------------------------


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item, *_rest) = typing.get_args(tp)
        return f"a comma-separated list of {_type_name(item)}s"
    if origin is Literal:
        return f"one of {list(typing.get_args(tp))}"
    if origin in (types.UnionType, typing.Union):
        inner = [_type_name(a) for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join([*inner, "null"])
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _parse_scalar(tp: Any, value: object, from_text: bool) -> object:
    """``value`` as ``tp`` (int, float, bool, str); raises ``TypeError`` if it is not one."""
    if from_text and isinstance(value, str):
        text = value.strip()
        if tp is bool:
            lowered = text.lower()
            if lowered in ("true", "yes", "1"):
                return True
            if lowered in ("false", "no", "0"):
                return False
            raise TypeError
        if tp is int:
            return int(text.replace("_", ""))
        if tp is float:
            return float(text)
        if tp is str:
            return text
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise TypeError
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise TypeError
        return value
    raise TypeError


def parse_field(owner: type, name: str, value: object, *, from_text: bool = False) -> object:
    """``value`` converted to the declared type of ``owner.name``.

    ``from_text``: ``value`` came from the command line, so ``"1e-3"`` is a number and
    ``"64,64"`` a tuple. Raises ``ValueError`` naming the class, field, value and the type.
    """
    tp = _field_types(owner)[name]
    try:
        return _parse(tp, value, from_text)
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner.__name__}.{name}={value!r} is invalid: must be {_type_name(tp)}"
        ) from None


def _parse(tp: Any, value: object, from_text: bool) -> object:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (from_text and str(value).strip().lower() in ("none", "null")):
            if len(options) == len(typing.get_args(tp)):
                raise TypeError
            return None
        for option in options:
            try:
                return _parse(option, value, from_text)
            except (TypeError, ValueError):
                continue
        raise TypeError
    if origin is Literal:
        allowed = typing.get_args(tp)
        text = value.strip() if from_text and isinstance(value, str) else value
        if text not in allowed:
            raise TypeError
        return text
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if from_text and isinstance(value, str):
            parts: Sequence[object] = [p for p in value.split(",") if p.strip()]
        elif isinstance(value, list | tuple):
            parts = value
        else:
            raise TypeError
        return tuple(_parse(item, p, from_text) for p in parts)
    return _parse_scalar(tp, value, from_text)


def _check(owner: object, name: str, ok: bool, allowed: str) -> None:
    if not ok:
        value = getattr(owner, name)
        raise ValueError(f"{type(owner).__name__}.{name}={value!r} is invalid: must be {allowed}")


def _positive_int(owner: object, name: str, minimum: int = 1) -> None:
    value = getattr(owner, name)
    _check(
        owner,
        name,
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        f"an integer >= {minimum}",
    )


def _number_in(
    owner: object, name: str, low: float, high: float = math.inf, *, open_low: bool = False
) -> None:
    value = getattr(owner, name)
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if open_low else value >= low)
        and value <= high
    )
    _check(owner, name, ok, f"a number in {'(' if open_low else '['}{low}, {high}]")


def _net_arch(owner: object, name: str = "net_arch") -> None:
    value = getattr(owner, name)
    ok = (
        isinstance(value, tuple)
        and len(value) >= 1
        and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in value)
    )
    _check(owner, name, ok, "one or more layer widths, integers in [1, 4096]")


class ParamsBase:
    """Shared behaviour of the hyperparameter dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples as lists), for YAML and MLflow params."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)  # type: ignore[arg-type]
        }


# --- hyperparameters per algorithm ------------------------------------------------------------

Activation = Literal["tanh", "relu"]


@dataclass(frozen=True, slots=True)
class PPOParams(ParamsBase):
    """PPO (``stable_baselines3.PPO``) hyperparameters."""

    learning_rate: float = 3e-4
    """Adam step size."""
    n_steps: int = 256
    """Steps collected per environment before each update (rollout length)."""
    batch_size: int = 64
    """Minibatch size for the gradient steps; ``n_steps * n_envs`` should be a multiple of it."""
    n_epochs: int = 10
    """Passes over each rollout."""
    gamma: float = 0.99
    """Discount factor per step (a step is 4 hours: 0.99 halves in ~11 days)."""
    gae_lambda: float = 0.95
    """Generalized advantage estimation's bias/variance trade-off."""
    clip_range: float = 0.2
    """PPO's probability-ratio clip."""
    ent_coef: float = 0.01
    """Entropy bonus weight (exploration)."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping norm."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value networks."""
    activation: Activation = "tanh"
    """Hidden layer activation."""

    def __post_init__(self) -> None:
        _number_in(self, "learning_rate", 0.0, 1.0, open_low=True)
        _positive_int(self, "n_steps", 2)
        _positive_int(self, "batch_size", 2)
        _positive_int(self, "n_epochs")
        _number_in(self, "gamma", 0.0, 1.0)
        _number_in(self, "gae_lambda", 0.0, 1.0)
        _number_in(self, "clip_range", 0.0, 1.0, open_low=True)
        _number_in(self, "ent_coef", 0.0, 1.0)
        _number_in(self, "vf_coef", 0.0, 10.0)
        _number_in(self, "max_grad_norm", 0.0, open_low=True)
        _net_arch(self)


@dataclass(frozen=True, slots=True)
class A2CParams(ParamsBase):
    """A2C (``stable_baselines3.A2C``) hyperparameters."""

    learning_rate: float = 7e-4
    """RMSprop step size."""
    n_steps: int = 16
    """Steps collected per environment before each update."""
    gamma: float = 0.99
    """Discount factor per step."""
    gae_lambda: float = 0.95
    """Generalized advantage estimation's trade-off (1.0: plain n-step returns)."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping norm."""
    normalize_advantage: bool = False
    """Normalize advantages per update."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value networks."""
    activation: Activation = "tanh"
    """Hidden layer activation."""

    def __post_init__(self) -> None:
        _number_in(self, "learning_rate", 0.0, 1.0, open_low=True)
        _positive_int(self, "n_steps")
        _number_in(self, "gamma", 0.0, 1.0)
        _number_in(self, "gae_lambda", 0.0, 1.0)
        _number_in(self, "ent_coef", 0.0, 1.0)
        _number_in(self, "vf_coef", 0.0, 10.0)
        _number_in(self, "max_grad_norm", 0.0, open_low=True)
        _net_arch(self)


@dataclass(frozen=True, slots=True)
class DQNParams(ParamsBase):
    """DQN (``stable_baselines3.DQN``) hyperparameters."""

    learning_rate: float = 1e-4
    """Adam step size."""
    buffer_size: int = 50_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 1_000
    """Transitions collected before the first gradient step."""
    batch_size: int = 64
    """Minibatch size."""
    tau: float = 1.0
    """Target network soft-update coefficient (1.0: hard copy)."""
    gamma: float = 0.99
    """Discount factor per step."""
    train_freq: int = 4
    """Environment steps between gradient updates."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    target_update_interval: int = 1_000
    """Environment steps between target network updates."""
    exploration_fraction: float = 0.2
    """Share of training over which epsilon decays."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start."""
    exploration_final_eps: float = 0.05
    """Epsilon after the decay."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the Q-network."""

    def __post_init__(self) -> None:
        _number_in(self, "learning_rate", 0.0, 1.0, open_low=True)
        _positive_int(self, "buffer_size", 1)
        _positive_int(self, "learning_starts", 0)
        _positive_int(self, "batch_size", 1)
        _number_in(self, "tau", 0.0, 1.0, open_low=True)
        _number_in(self, "gamma", 0.0, 1.0)
        _positive_int(self, "train_freq")
        _positive_int(self, "gradient_steps")
        _positive_int(self, "target_update_interval")
        _number_in(self, "exploration_fraction", 0.0, 1.0)
        _number_in(self, "exploration_initial_eps", 0.0, 1.0)
        _number_in(self, "exploration_final_eps", 0.0, 1.0)
        _net_arch(self)


@dataclass(frozen=True, slots=True)
class NoParams(ParamsBase):
    """Policies with nothing to set (``noop``, ``random``'s seed comes from the config)."""
