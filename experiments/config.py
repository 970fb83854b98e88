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
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from environment.scenarios import SCENARIO_NAMES
from policies.sb3 import DEFAULT_HYPERPARAMS

_PPO, _A2C, _DQN = (DEFAULT_HYPERPARAMS[name] for name in ("ppo", "a2c", "dqn"))

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
        args = typing.get_args(tp)
        if from_text and isinstance(value, str):
            parts: Sequence[object] = [p for p in value.split(",") if p.strip()]
        elif isinstance(value, list | tuple):
            parts = value
        else:
            raise TypeError
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_parse(args[0], p, from_text) for p in parts)
        if len(parts) != len(args):
            raise TypeError
        return tuple(_parse(a, p, from_text) for a, p in zip(args, parts, strict=True))
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

    learning_rate: float = _PPO["learning_rate"]
    """Adam step size."""
    n_steps: int = _PPO["n_steps"]
    """Steps collected per environment before each update (rollout length)."""
    batch_size: int = _PPO["batch_size"]
    """Minibatch size for the gradient steps; ``n_steps * n_envs`` should be a multiple of it."""
    n_epochs: int = _PPO["n_epochs"]
    """Passes over each rollout."""
    gamma: float = _PPO["gamma"]
    """Discount factor per step (a step is 4 hours; 0.995 halves in ~23 days)."""
    gae_lambda: float = _PPO["gae_lambda"]
    """Generalized advantage estimation's bias/variance trade-off."""
    clip_range: float = _PPO["clip_range"]
    """PPO's probability-ratio clip."""
    ent_coef: float = _PPO["ent_coef"]
    """Entropy bonus weight (exploration)."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping norm."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value networks."""
    activation: Activation = "tanh"
    """Hidden layer activation."""

    reward_scale: float = 0.1
    """Training rewards are multiplied by this (keeps value targets near 1); evaluation and
    serving see the true rewards."""

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
        _number_in(self, "reward_scale", 0.0, open_low=True)
        _net_arch(self)


@dataclass(frozen=True, slots=True)
class A2CParams(ParamsBase):
    """A2C (``stable_baselines3.A2C``) hyperparameters."""

    learning_rate: float = _A2C["learning_rate"]
    """RMSprop step size."""
    n_steps: int = _A2C["n_steps"]
    """Steps collected per environment before each update."""
    gamma: float = _A2C["gamma"]
    """Discount factor per step."""
    gae_lambda: float = 0.95
    """Generalized advantage estimation's trade-off (1.0: plain n-step returns)."""
    ent_coef: float = _A2C["ent_coef"]
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

    reward_scale: float = 0.1
    """Training rewards are multiplied by this (keeps value targets near 1); evaluation and
    serving see the true rewards."""

    def __post_init__(self) -> None:
        _number_in(self, "learning_rate", 0.0, 1.0, open_low=True)
        _positive_int(self, "n_steps")
        _number_in(self, "gamma", 0.0, 1.0)
        _number_in(self, "gae_lambda", 0.0, 1.0)
        _number_in(self, "ent_coef", 0.0, 1.0)
        _number_in(self, "vf_coef", 0.0, 10.0)
        _number_in(self, "max_grad_norm", 0.0, open_low=True)
        _number_in(self, "reward_scale", 0.0, open_low=True)
        _net_arch(self)


@dataclass(frozen=True, slots=True)
class DQNParams(ParamsBase):
    """DQN (``stable_baselines3.DQN``) hyperparameters."""

    learning_rate: float = _DQN["learning_rate"]
    """Adam step size."""
    buffer_size: int = _DQN["buffer_size"]
    """Replay buffer capacity (transitions)."""
    learning_starts: int = _DQN["learning_starts"]
    """Transitions collected before the first gradient step."""
    batch_size: int = _DQN["batch_size"]
    """Minibatch size."""
    tau: float = 1.0
    """Target network soft-update coefficient (1.0: hard copy)."""
    gamma: float = _DQN["gamma"]
    """Discount factor per step."""
    train_freq: int = _DQN["train_freq"]
    """Environment steps between gradient updates."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    target_update_interval: int = _DQN["target_update_interval"]
    """Environment steps between target network updates."""
    exploration_fraction: float = _DQN["exploration_fraction"]
    """Share of training over which epsilon decays."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start."""
    exploration_final_eps: float = _DQN["exploration_final_eps"]
    """Epsilon after the decay."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the Q-network."""

    reward_scale: float = 0.1
    """Training rewards are multiplied by this (keeps value targets near 1); evaluation and
    serving see the true rewards."""

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
        _number_in(self, "reward_scale", 0.0, open_low=True)
        _net_arch(self)


@dataclass(frozen=True, slots=True)
class NoParams(ParamsBase):
    """Policies with nothing to set (``noop``, ``random``'s seed comes from the config)."""


# --- the experiment -------------------------------------------------------------------------

SB3_PARAMS: dict[str, type[ParamsBase]] = {"ppo": PPOParams, "a2c": A2CParams, "dqn": DQNParams}
"""Hyperparameter classes of the stable-baselines3 algorithms."""


def hyperparameter_classes() -> dict[str, type]:
    """Every trainable algorithm name and its hyperparameter dataclass."""
    from experiments.algorithms import ALGORITHMS

    return {name: spec.params for name, spec in ALGORITHMS.items()}


def algorithm_names() -> tuple[str, ...]:
    """The names ``--algo`` accepts."""
    return tuple(hyperparameter_classes())


def check_algo(algo: object) -> str:
    """``algo`` if it names an algorithm; ``ValueError`` listing the allowed names."""
    names = algorithm_names()
    if not isinstance(algo, str) or algo not in names:
        raise ValueError(f"unknown algo {algo!r}; allowed: {list(names)}")
    return algo


def expand_scenarios(value: object) -> tuple[str, ...]:
    """Scenario names from a list or a comma-separated string; ``all`` means every one."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(
            f"scenarios={value!r} is invalid: must be 'all' or names from {list(SCENARIO_NAMES)}"
        )
    if list(value) == ["all"]:
        return SCENARIO_NAMES
    unknown = [v for v in value if v not in SCENARIO_NAMES]
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; allowed: 'all' or {list(SCENARIO_NAMES)}")
    if len(set(value)) != len(value):
        raise ValueError(f"scenarios must be distinct, got {list(value)}")
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class TrainConfig:
    """One training run: what to train, on what, for how long, and how to evaluate it."""

    algo: str
    """Algorithm name (see :func:`algorithm_names`)."""
    hyperparameters: Any
    """The algorithm's hyperparameter dataclass (:data:`SB3_PARAMS`, or the policy's config)."""
    scenario: str = "mixed"
    """Scenario trained on (``mixed`` draws three shocks per episode from every kind)."""
    timesteps: int = 100_000
    """Environment steps of training (bandits: rounded up to whole 540-step episodes)."""
    seed: int = 0
    """Seeds the environments, the networks and every draw; same config + seed, same run."""
    n_envs: int = 1
    """Environments stepped together (stable-baselines3 only; ``DummyVecEnv``)."""
    eval_every: int = 0
    """Timesteps between periodic evaluations during training (0: only the final one)."""
    eval_scenarios: tuple[str, ...] = SCENARIO_NAMES
    """Scenarios of the periodic and final evaluation (``all``: every scenario)."""
    eval_seeds: int = 3
    """Episodes per scenario in each evaluation."""
    eval_seed_start: int = 1_000
    """First evaluation seed: seeds ``eval_seed_start ..`` are used, kept away from the
    promotion seeds (0, 1, ...) so that a policy is never selected on its own test episodes."""
    experiment: str = "autopilot-train"
    """MLflow experiment of the run."""
    register: bool = True
    """Register the trained policy as a version of ``autopilot-policy`` with alias
    ``challenger`` (tuning trials set this to false)."""

    FIELDS_FROM_FILE: ClassVar[tuple[str, ...]] = (
        "scenario",
        "timesteps",
        "seed",
        "n_envs",
        "eval_every",
        "eval_scenarios",
        "eval_seeds",
        "eval_seed_start",
        "experiment",
        "register",
    )

    def __post_init__(self) -> None:
        params = hyperparameter_classes()
        _check(self, "algo", self.algo in params, f"one of {list(params)}")
        expected = params[self.algo]
        _check(
            self,
            "hyperparameters",
            isinstance(self.hyperparameters, expected),
            f"a {expected.__name__}",
        )
        _check(self, "scenario", self.scenario in SCENARIO_NAMES, f"one of {list(SCENARIO_NAMES)}")
        _positive_int(self, "timesteps")
        _positive_int(self, "seed", 0)
        _positive_int(self, "n_envs")
        _check(self, "n_envs", self.n_envs <= 64, "an integer in [1, 64]")
        _positive_int(self, "eval_every", 0)
        _positive_int(self, "eval_seeds")
        _positive_int(self, "eval_seed_start", 0)
        object.__setattr__(self, "eval_scenarios", expand_scenarios(list(self.eval_scenarios)))
        _check(
            self,
            "experiment",
            isinstance(self.experiment, str) and bool(self.experiment),
            "a non-empty string",
        )
        _check(self, "register", isinstance(self.register, bool), "true or false")

    @property
    def eval_seed_list(self) -> tuple[int, ...]:
        """The evaluation seeds."""
        return tuple(range(self.eval_seed_start, self.eval_seed_start + self.eval_seeds))

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (the YAML layout, without the search space)."""
        document: dict[str, Any] = {"algo": self.algo}
        for name in self.FIELDS_FROM_FILE:
            value = getattr(self, name)
            document[name] = list(value) if isinstance(value, tuple) else value
        document["hyperparameters"] = params_to_dict(self.hyperparameters)
        return document

    def flat_params(self) -> dict[str, Any]:
        """Every setting as ``{name: value}``, hyperparameters as ``hyperparameters.<name>``,
        for MLflow params."""
        document = self.to_dict()
        hyper = document.pop("hyperparameters")
        flat = {k: _param_text(v) for k, v in document.items()}
        flat.update({f"hyperparameters.{k}": _param_text(v) for k, v in hyper.items()})
        return flat

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)


def _param_text(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def params_to_dict(params: object) -> dict[str, Any]:
    """A hyperparameter dataclass as plain values (tuples as lists)."""
    to_dict = getattr(params, "to_dict", None)
    raw = to_dict() if callable(to_dict) else dataclasses.asdict(params)  # type: ignore[call-overload]
    return {k: list(v) if isinstance(v, tuple) else v for k, v in raw.items()}


def build_params(cls: type, values: Mapping[str, object], *, from_text: bool = False) -> Any:
    """An instance of hyperparameter class ``cls`` from ``values``; unknown names are an error
    naming the allowed ones."""
    allowed = _init_fields(cls)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; allowed: {allowed}")
    parsed = {k: parse_field(cls, k, v, from_text=from_text) for k, v in values.items()}
    return cls(**parsed)


# --- search spaces --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchDimension:
    """One hyperparameter's range for Optuna: ``float``/``int`` in [low, high] (``log``
    scale optional) or ``categorical`` over ``choices``."""

    name: str
    """Hyperparameter name (a field of the algorithm's hyperparameter class)."""
    kind: Literal["float", "int", "categorical"]
    """Distribution family."""
    low: float | None = None
    """Lower bound (float and int)."""
    high: float | None = None
    """Upper bound (float and int)."""
    log: bool = False
    """Sample on a log scale (float and int; needs ``low > 0``)."""
    choices: tuple[Any, ...] = ()
    """Values of a categorical dimension."""

    def __post_init__(self) -> None:
        kinds = ("float", "int", "categorical")
        _check(self, "kind", self.kind in kinds, f"one of {list(kinds)}")
        if self.kind == "categorical":
            _check(self, "choices", len(self.choices) >= 1, "a non-empty list")
            return
        for bound in ("low", "high"):
            _number_in(self, bound, -math.inf if not self.log else 0.0, open_low=self.log)
        assert self.low is not None and self.high is not None
        _check(self, "high", self.high >= self.low, f"a number >= low ({self.low})")


# --- files ----------------------------------------------------------------------------------

CONFIG_PACKAGE = "experiments.configs"


def default_config_path(algo: str) -> Path:
    """The packaged YAML for ``algo`` (``experiments/configs/<algo>.yaml``)."""
    check_algo(algo)
    return Path(str(resources.files(CONFIG_PACKAGE).joinpath(f"{algo}.yaml")))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The YAML mapping at ``path``; ``FileNotFoundError`` / ``ValueError`` naming the file."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {str(file)!r} does not exist")
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"config file {str(file)!r} is not valid YAML: {error}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ValueError(f"config file {str(file)!r} must hold a mapping, got {document!r}")
    return document


TOP_LEVEL_KEYS = ("algo", *TrainConfig.FIELDS_FROM_FILE, "hyperparameters", "search_space")


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` as a mapping; ``ValueError`` naming a pair without ``=``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {pair!r} is invalid: must be key=value")
        out[key.strip()] = value
    return out


def load_config(
    algo: str,
    path: str | Path | None = None,
    overrides: Mapping[str, str] | Sequence[str] = (),
    **fields_: Any,
) -> TrainConfig:
    """The training config for ``algo``: the YAML at ``path`` (default: the packaged one),
    then ``overrides`` (``--set`` strings, parsed by type), then ``fields_`` (typed values,
    e.g. ``timesteps=500`` from dedicated command-line flags)."""
    check_algo(algo)
    file = Path(path) if path is not None else default_config_path(algo)
    document = read_config_file(file)
    unknown = sorted(set(document) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ValueError(
            f"config file {str(file)!r} has unknown keys {unknown}; allowed: {list(TOP_LEVEL_KEYS)}"
        )
    if document.get("algo", algo) != algo:
        raise ValueError(
            f"config file {str(file)!r} is for algo {document['algo']!r}, not {algo!r}"
        )
    params_cls = hyperparameter_classes()[algo]
    hyper_raw = document.get("hyperparameters") or {}
    if not isinstance(hyper_raw, dict):
        raise ValueError(f"config file {str(file)!r}: 'hyperparameters' must be a mapping")
    top: dict[str, object] = {
        k: parse_field(TrainConfig, k, v)
        for k, v in document.items()
        if k in TrainConfig.FIELDS_FROM_FILE and k != "eval_scenarios"
    }
    if "eval_scenarios" in document:
        top["eval_scenarios"] = expand_scenarios(document["eval_scenarios"])
    settable = _init_fields(params_cls)
    unknown = sorted(set(hyper_raw) - set(settable))
    if unknown:
        raise ValueError(
            f"config file {str(file)!r}: unknown hyperparameters {unknown} for {algo!r}; "
            f"allowed: {settable}"
        )
    hyper: dict[str, object] = {k: parse_field(params_cls, k, v) for k, v in hyper_raw.items()}
    pairs = parse_overrides(overrides) if not isinstance(overrides, Mapping) else overrides
    for key, text in pairs.items():
        target, name = _override_target(key, params_cls)
        if target is TrainConfig:
            top[name] = (
                expand_scenarios(text)
                if name == "eval_scenarios"
                else parse_field(TrainConfig, name, text, from_text=True)
            )
        else:
            hyper[name] = parse_field(params_cls, name, text, from_text=True)
    for name, value in fields_.items():
        if name not in TrainConfig.FIELDS_FROM_FILE:
            raise ValueError(
                f"unknown TrainConfig field {name!r}; allowed: {list(TrainConfig.FIELDS_FROM_FILE)}"
            )
        top[name] = value
    return TrainConfig(algo=algo, hyperparameters=build_params(params_cls, hyper), **top)  # type: ignore[arg-type]


def _init_fields(cls: type) -> list[str]:
    """The settable hyperparameters of ``cls``: its init fields but ``seed`` (a run has one
    seed, :attr:`TrainConfig.seed`, which the trainer passes on)."""
    return [f.name for f in fields(cls) if f.init and f.name != "seed"]


def _override_target(key: str, params_cls: type) -> tuple[type, str]:
    hyper_fields = _init_fields(params_cls)
    allowed = [*TrainConfig.FIELDS_FROM_FILE, *(f"hyperparameters.{n}" for n in hyper_fields)]
    if key.startswith("hyperparameters."):
        name = key.removeprefix("hyperparameters.")
        if name in hyper_fields:
            return params_cls, name
    elif key in TrainConfig.FIELDS_FROM_FILE:
        return TrainConfig, key
    elif key in hyper_fields:
        return params_cls, key
    raise ValueError(f"unknown --set key {key!r}; allowed: {allowed}")


def load_search_space(algo: str, path: str | Path | None = None) -> tuple[SearchDimension, ...]:
    """The ``search_space`` of ``algo``'s config file, validated against its hyperparameters."""
    check_algo(algo)
    file = Path(path) if path is not None else default_config_path(algo)
    raw = read_config_file(file).get("search_space") or {}
    if not isinstance(raw, dict) or not raw:
        raise ValueError(
            f"config file {str(file)!r} has no search_space for {algo!r}; add one to tune it"
        )
    params_cls = hyperparameter_classes()[algo]
    names = _init_fields(params_cls)
    dimensions = []
    for name, spec in raw.items():
        if name not in names:
            raise ValueError(
                f"config file {str(file)!r}: search_space key {name!r} is not a hyperparameter "
                f"of {algo!r}; allowed: {names}"
            )
        if not isinstance(spec, dict) or "type" not in spec:
            raise ValueError(
                f"config file {str(file)!r}: search_space.{name} must be a mapping with 'type'"
            )
        extra = sorted(set(spec) - {"type", "low", "high", "log", "choices"})
        if extra:
            raise ValueError(
                f"config file {str(file)!r}: search_space.{name} has unknown keys {extra}; "
                "allowed: ['type', 'low', 'high', 'log', 'choices']"
            )
        dimensions.append(
            SearchDimension(
                name=name,
                kind=spec["type"],
                low=spec.get("low"),
                high=spec.get("high"),
                log=bool(spec.get("log", False)),
                choices=tuple(
                    tuple(c) if isinstance(c, list) else c for c in spec.get("choices", ())
                ),
            )
        )
    return tuple(dimensions)


def write_config(config: TrainConfig, path: str | Path) -> Path:
    """``config`` as YAML at ``path`` (a file :func:`load_config` reads back identically)."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    return file


__all__ = [
    "A2CParams",
    "DQNParams",
    "NoParams",
    "PPOParams",
    "SearchDimension",
    "TrainConfig",
    "algorithm_names",
    "build_params",
    "check_algo",
    "default_config_path",
    "load_config",
    "load_search_space",
    "parse_overrides",
    "write_config",
]
