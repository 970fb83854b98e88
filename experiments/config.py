"""Experiment configuration: validated dataclasses, read from YAML, overridable.

One YAML file per algorithm lives in ``experiments/configs/<algo>.yaml`` (installed with the
package, like RL Zoo's ``hyperparams/<algo>.yml``), and it is the only source of the values: it
names every :class:`TrainConfig` field and every hyperparameter, and the classes declare none.
Its layout::

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
``learning_rate=1e-3`` when that name is not also a ``TrainConfig`` field). Pydantic parses the
value by the field's type (a list field takes ``64,64``); a bad key or value raises
``ValueError`` naming the class, the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pydantic
import pydantic.dataclasses
import yaml
from pydantic import Field, ValidationInfo, field_validator

from environment.scenarios import SCENARIO_NAMES
from experiments.algorithms import ALGORITHMS
from policies.validation import check_names, check_range, config_error, split_list

# --- validation through pydantic ------------------------------------------------------------


def _describe(owner: str, error: pydantic.ValidationError) -> str:
    """Pydantic's errors as ours: ``<Class>.<field>=<value> is invalid: <why>``."""
    messages = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        why = item["msg"].removeprefix("Value error, ")
        if not field:
            messages.append(why)
        elif item["type"] == "missing":
            messages.append(f"{owner}.{field} is missing: the config file must set it")
        else:
            messages.append(f"{owner}.{field}={item['input']!r} is invalid: {why}")
    return "; ".join(messages)


def validated(cls: type, values: Mapping[str, object]) -> Any:
    """An instance of the (pydantic or standard) dataclass ``cls`` from ``values``, parsed and
    validated by pydantic; ``ValueError`` naming each bad field and value."""
    try:
        return pydantic.TypeAdapter(cls).validate_python(dict(values))
    except pydantic.ValidationError as error:
        raise ValueError(_describe(cls.__name__, error)) from None


def _from_text(cls: type, name: str, text: str) -> object:
    """A ``--set`` value for field ``name`` of ``cls``: a list field takes a comma-separated
    list; everything else is parsed by pydantic from the text."""
    declared = typing.get_type_hints(cls)[name]
    return split_list(text) if typing.get_origin(declared) is tuple else text.strip()


# --- the experiment -------------------------------------------------------------------------


def hyperparameter_classes() -> dict[str, type]:
    """Every trainable algorithm name and its hyperparameter dataclass."""
    return {name: spec.params for name, spec in ALGORITHMS.items()}


def algorithm_names() -> tuple[str, ...]:
    """The names ``--algo`` accepts."""
    return tuple(ALGORITHMS)


def check_algo(algo: object) -> str:
    """``algo`` if it names an algorithm; ``ValueError`` listing the allowed names."""
    if not isinstance(algo, str) or algo not in ALGORITHMS:
        raise ValueError(f"unknown algo {algo!r}; allowed: {list(ALGORITHMS)}")
    return algo


def expand_scenarios(value: object) -> tuple[str, ...]:
    """Scenario names from a list or a comma-separated string; ``all`` means every one."""
    return check_names(value, SCENARIO_NAMES, "scenarios", all_word="all")


@pydantic.dataclasses.dataclass(frozen=True, config=pydantic.ConfigDict(extra="forbid"))
class TrainConfig:
    """One training run: what to train, on what, for how long, and how to evaluate it.

    Every field but ``algo`` and ``hyperparameters`` comes from the algorithm's YAML file.
    """

    algo: str
    """Algorithm name (see :func:`algorithm_names`)."""
    hyperparameters: Any
    """The algorithm's hyperparameter dataclass (``experiments.hyperparams``, or the policy's
    config)."""
    scenario: str
    """Scenario trained on (``mixed`` draws three shocks per episode from every kind; ``all``:
    stable-baselines3 spreads every scenario over its environments, bandits cycle through
    them)."""
    timesteps: Annotated[int, Field(ge=1)]
    """Environment steps of training (bandits: rounded up to whole 540-step episodes)."""
    seed: Annotated[int, Field(ge=0)]
    """Seeds the environments, the networks and every draw; same config + seed, same run."""
    n_envs: Annotated[int, Field(ge=1, le=64)]
    """Environments stepped together (stable-baselines3 only; ``DummyVecEnv``)."""
    eval_every: Annotated[int, Field(ge=0)]
    """Timesteps between periodic evaluations during training (0: only the final one)."""
    eval_scenarios: tuple[str, ...]
    """Scenarios of the periodic and final evaluation (``all``: every scenario)."""
    eval_seeds: Annotated[int, Field(ge=1)]
    """Episodes per scenario in each evaluation."""
    eval_seed_start: Annotated[int, Field(ge=0)]
    """First evaluation seed: seeds ``eval_seed_start ..`` are used, kept away from the
    promotion seeds (0, 1, ...) so that a policy is never selected on its own test episodes."""
    experiment: Annotated[str, Field(min_length=1)]
    """MLflow experiment of the run."""
    register: bool
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

    @field_validator("algo")
    @classmethod
    def _known_algo(cls, algo: str) -> str:
        return check_algo(algo)

    @field_validator("hyperparameters")
    @classmethod
    def _params_of_the_algo(cls, params: object, info: ValidationInfo) -> object:
        algo = info.data.get("algo")
        expected = ALGORITHMS[algo].params if algo in ALGORITHMS else object
        if not isinstance(params, expected):
            raise ValueError(f"must be a {expected.__name__}, got {type(params).__name__}")
        return params

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, scenario: str) -> str:
        if scenario == "all":
            return scenario
        (name,) = check_names([scenario], SCENARIO_NAMES, "scenario")
        return name

    @property
    def scenarios(self) -> tuple[str, ...]:
        """The scenarios trained on: ``scenario``, or every one for ``all``."""
        return SCENARIO_NAMES if self.scenario == "all" else (self.scenario,)

    @field_validator("eval_scenarios", mode="before")
    @classmethod
    def _expand_scenarios(cls, value: object) -> tuple[str, ...]:
        return expand_scenarios(list(value) if isinstance(value, tuple) else value)

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


def build_params(cls: type, values: Mapping[str, object]) -> Any:
    """An instance of hyperparameter class ``cls`` from ``values``; unknown names are an error
    naming the allowed ones."""
    allowed = settable_fields(cls)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; allowed: {allowed}")
    return validated(cls, values)


# --- search spaces --------------------------------------------------------------------------


SearchKind = Literal["float", "int", "categorical"]
SEARCH_KINDS: tuple[SearchKind, ...] = typing.get_args(SearchKind)


@dataclass(frozen=True, slots=True)
class SearchDimension:
    """One hyperparameter's range for Optuna: ``float``/``int`` in [low, high] (``log``
    scale optional) or ``categorical`` over ``choices``."""

    name: str
    """Hyperparameter name (a field of the algorithm's hyperparameter class)."""
    kind: SearchKind
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
        if self.kind not in SEARCH_KINDS:
            raise config_error(self, "kind", self.kind, f"one of {list(SEARCH_KINDS)}")
        if self.kind == "categorical":
            if not self.choices:
                raise config_error(self, "choices", self.choices, "a non-empty list")
            return
        check_range(self, "low", 0.0 if self.log else -math.inf, open_low=self.log)
        assert self.low is not None
        check_range(self, "high", self.low)


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
    params_cls = ALGORITHMS[algo].params
    hyper_raw = document.get("hyperparameters") or {}
    if not isinstance(hyper_raw, dict):
        raise ValueError(f"config file {str(file)!r}: 'hyperparameters' must be a mapping")
    settable = settable_fields(params_cls)
    unknown = sorted(set(hyper_raw) - set(settable))
    if unknown:
        raise ValueError(
            f"config file {str(file)!r}: unknown hyperparameters {unknown} for {algo!r}; "
            f"allowed: {settable}"
        )
    top = {k: v for k, v in document.items() if k in TrainConfig.FIELDS_FROM_FILE}
    hyper = dict(hyper_raw)
    pairs = parse_overrides(overrides) if not isinstance(overrides, Mapping) else overrides
    for key, text in pairs.items():
        target, name = _override_target(key, params_cls)
        (top if target is TrainConfig else hyper)[name] = _from_text(target, name, text)
    for name, value in fields_.items():
        if name not in TrainConfig.FIELDS_FROM_FILE:
            raise ValueError(
                f"unknown TrainConfig field {name!r}; allowed: {list(TrainConfig.FIELDS_FROM_FILE)}"
            )
        top[name] = value
    hyperparameters = build_params(params_cls, hyper)
    return validated(TrainConfig, {"algo": algo, "hyperparameters": hyperparameters, **top})


def settable_fields(cls: type) -> list[str]:
    """The settable hyperparameters of ``cls``: its init fields but ``seed`` (a run has one
    seed, :attr:`TrainConfig.seed`, which the trainer passes on)."""
    return [f.name for f in fields(cls) if f.init and f.name != "seed"]


def _override_target(key: str, params_cls: type) -> tuple[type, str]:
    hyper_fields = settable_fields(params_cls)
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
    names = settable_fields(params_cls)
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
    "SearchDimension",
    "TrainConfig",
    "algorithm_names",
    "build_params",
    "check_algo",
    "default_config_path",
    "load_config",
    "load_search_space",
    "parse_overrides",
    "settable_fields",
    "validated",
    "write_config",
]
