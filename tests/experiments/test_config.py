"""Configs: packaged YAML per algorithm, typed overrides, errors naming value and allowed."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from experiments.algorithms import ALGORITHMS, sb3_kwargs
from experiments.config import (
    TrainConfig,
    algorithm_names,
    default_config_path,
    load_config,
    load_search_space,
    read_config_file,
    settable_fields,
    write_config,
)
from experiments.hyperparams import NoParams, PPOParams
from policies import sb3


@pytest.mark.parametrize("algo", algorithm_names())
def test_every_algorithm_has_a_packaged_config_that_loads(algo: str) -> None:
    assert default_config_path(algo).is_file()
    config = load_config(algo)
    assert config.algo == algo
    assert config.flat_params()["algo"] == algo


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn", "linucb", "thompson"])
def test_search_spaces_name_real_hyperparameters(algo: str) -> None:
    assert load_search_space(algo)


def test_overrides_are_parsed_by_the_field_type() -> None:
    config = load_config(
        "ppo",
        overrides=[
            "learning_rate=1e-3",
            "hyperparameters.n_steps=128",
            "net_arch=32,16",
            "activation=relu",
            "eval_scenarios=steady,mixed",
            "register=false",
            "timesteps=1_000",
        ],
    )
    params = config.hyperparameters
    assert isinstance(params, PPOParams)
    assert (params.learning_rate, params.n_steps, params.net_arch) == (1e-3, 128, (32, 16))
    assert params.activation == "relu"
    assert config.eval_scenarios == ("steady", "mixed")
    assert (config.register, config.timesteps) == (False, 1000)


def test_written_config_reloads_identically(tmp_path: Path) -> None:
    config = load_config("ppo", overrides=["gamma=0.98", "net_arch=8"], seed=3)
    assert load_config("ppo", write_config(config, tmp_path / "c.yaml")) == config


@pytest.mark.parametrize(
    ("algo", "overrides", "match"),
    [
        ("sklearn", [], r"unknown algo 'sklearn'; allowed: \['ppo', 'a2c'"),
        ("ppo", ["n_steps=abc"], r"PPOParams\.n_steps='abc' is invalid: .* valid integer"),
        ("ppo", ["learning_rate=-1"], r"learning_rate='-1' is invalid: .* greater than 0"),
        ("ppo", ["gamma=1.5"], r"PPOParams\.gamma='1.5' is invalid: .* less than or equal to 1"),
        ("ppo", ["activation=gelu"], r"activation='gelu' is invalid: Input should be 'tanh' or"),
        ("ppo", ["net_arch=0,64"], r"net_arch\.0='0' is invalid: .* greater than or equal to 1"),
        ("ppo", ["net_arch=,"], r"net_arch=\[\] is invalid: .* at least 1 item"),
        ("ppo", ["wings=2"], r"unknown --set key 'wings'; allowed: \['scenario'"),
        ("ppo", ["hyperparameters.alpha=1"], "unknown --set key 'hyperparameters.alpha'"),
        ("ppo", ["learning_rate"], "--set 'learning_rate' is invalid: must be key=value"),
        ("ppo", ["scenario=moon"], r"TrainConfig\.scenario='moon' is invalid: unknown scenario"),
        ("ppo", ["eval_scenarios=moon"], r"unknown scenarios \['moon'\]; allowed: 'all' or"),
        ("ppo", ["timesteps=0"], r"TrainConfig\.timesteps='0' is invalid: .* greater than"),
        ("ppo", ["register=maybe"], r"TrainConfig\.register='maybe' is invalid: .* valid boolean"),
        ("linucb", ["seed=-1"], r"TrainConfig\.seed='-1' is invalid"),
        ("thompson", ["samples=0"], r"ThompsonConfig\.samples=0 is invalid"),
    ],
)
def test_bad_configs_name_the_value_and_what_is_allowed(
    algo: str, overrides: list[str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        load_config(algo, overrides=overrides)


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("algo: ppo\nlearning_rate: 1\n", ValueError, r"unknown keys \['learning_rate'\]"),
        ("algo: a2c\n", ValueError, "is for algo 'a2c', not 'ppo'"),
        ("algo: ppo\nhyperparameters: {n_step: 5}\n", ValueError, r"unknown hyperparameters"),
        ("algo: ppo\nhyperparameters: {n_steps: 5.5}\n", ValueError, "n_steps=5.5"),
        ("[1, 2]\n", ValueError, "must hold a mapping"),
        ("algo: ppo\n  bad: indent\n", ValueError, "not valid YAML"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, error: type[Exception], match: str) -> None:
    path = tmp_path / "ppo.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(error, match=match):
        load_config("ppo", path)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.yaml"):
        load_config("ppo", tmp_path / "nowhere.yaml")


@pytest.mark.parametrize(
    ("space", "match"),
    [
        (
            "search_space: {wings: {type: float, low: 0, high: 1}}",
            "'wings' is not a hyperparameter",
        ),
        ("search_space: {gamma: {type: normal}}", r"kind='normal' is invalid"),
        ("search_space: {gamma: {type: float, low: 1, high: 0}}", "high=0 is invalid"),
        ("search_space: {gamma: {type: float, low: 0, high: 1, log: true}}", "low=0 is invalid"),
        ("search_space: {gamma: {type: float, lo: 0}}", r"unknown keys \['lo'\]"),
    ],
)
def test_bad_search_spaces(tmp_path: Path, space: str, match: str) -> None:
    path = tmp_path / "ppo.yaml"
    path.write_text(f"algo: ppo\n{space}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        load_search_space("ppo", path)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("gamma=1.0", 1.0),  # at the upper bound of [0, 1]
        ("gamma=0.9999999", 0.9999999),
        ("gamma=1.0000001", None),
        ("learning_rate=1e-12", 1e-12),  # (0, 1]: just above the open lower bound
        ("learning_rate=0", None),
        ("n_envs=64", 64),  # [1, 64]
        ("n_envs=65", None),
        ("n_envs=1", 1),
        ("n_envs=0", None),
        ("net_arch=4096", (4096,)),  # widths in [1, 4096]
        ("net_arch=4097", None),
        ("n_steps=2", 2),  # PPO needs two steps per rollout
        ("n_steps=1", None),
        ("max_grad_norm=inf", None),  # finite numbers only
    ],
)
def test_ranges_hold_at_their_boundaries(override: str, expected: object) -> None:
    name = override.partition("=")[0]
    if expected is None:
        with pytest.raises(ValueError, match=rf"\.{name}(\.0)?='.*' is invalid"):
            load_config("ppo", overrides=[override])
        return
    config = load_config("ppo", overrides=[override])
    owner = config if name == "n_envs" else config.hyperparameters
    assert getattr(owner, name) == expected


def test_a_field_missing_from_the_file_is_named(tmp_path: Path) -> None:
    text = default_config_path("ppo").read_text(encoding="utf-8")
    path = tmp_path / "ppo.yaml"
    path.write_text(text.replace("  gamma: 0.995\n", "").replace("eval_seeds: 3\n", ""), "utf-8")
    with pytest.raises(ValueError, match=r"PPOParams\.gamma is missing: the config file must"):
        load_config("ppo", path)
    path.write_text(text.replace("eval_seeds: 3\n", ""), "utf-8")
    with pytest.raises(ValueError, match=r"TrainConfig\.eval_seeds is missing"):
        load_config("ppo", path)


@pytest.mark.parametrize("algo", algorithm_names())
def test_the_yaml_is_the_only_source_of_the_values(algo: str) -> None:
    """Every run setting and every hyperparameter is written in the algorithm's YAML; the
    classes and the SB3 wrapper hold no second copy. (``rules``: its config is the operator's
    thresholds, whose home is :mod:`policies.rules`, not a hyperparameter file.)"""
    document = read_config_file(default_config_path(algo))
    assert set(TrainConfig.FIELDS_FROM_FILE) <= set(document)
    params_cls = ALGORITHMS[algo].params
    if ALGORITHMS[algo].family != "fixed":
        assert set(document["hyperparameters"]) == set(settable_fields(params_cls))
    if ALGORITHMS[algo].family == "sb3" or params_cls is NoParams:
        assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(params_cls))
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(TrainConfig))


def test_the_sb3_wrapper_has_no_hyperparameter_defaults() -> None:
    assert not hasattr(sb3, "DEFAULT_HYPERPARAMS")
    signature = inspect.signature(sb3.train_sb3)
    for name in ("timesteps", "seed", "n_envs", "reward_scale"):
        assert signature.parameters[name].default is inspect.Parameter.empty, name
    assert signature.parameters["hyperparams"].kind is inspect.Parameter.VAR_KEYWORD


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo", "a2c", "dqn"])
def test_a_linear_learning_rate_schedule_decays_to_zero_over_training(algo: str) -> None:
    constant = sb3_kwargs(load_config(algo, overrides=["learning_rate=2e-4"]).hyperparameters)
    assert constant["learning_rate"] == 2e-4
    assert "learning_rate_schedule" not in constant
    linear = sb3_kwargs(
        load_config(
            algo, overrides=["learning_rate=2e-4", "learning_rate_schedule=linear"]
        ).hyperparameters
    )["learning_rate"]
    # SB3 calls the schedule with the share of training left: 1 at the start, 0 at the end.
    assert linear(1.0) == pytest.approx(2e-4)
    assert linear(0.5) == pytest.approx(1e-4)
    assert linear(0.0) == pytest.approx(0.0, abs=1e-12)


def test_an_unknown_learning_rate_schedule_names_the_allowed_ones() -> None:
    allowed = r"learning_rate_schedule='cosine'.*'constant' or 'linear'"
    with pytest.raises(ValueError, match=allowed):
        load_config("ppo", overrides=["learning_rate_schedule=cosine"])
