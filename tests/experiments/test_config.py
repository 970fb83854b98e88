"""Configs: packaged YAML per algorithm, typed overrides, errors naming value and allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import (
    PPOParams,
    algorithm_names,
    default_config_path,
    load_config,
    load_search_space,
    write_config,
)


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
        ("ppo", ["n_steps=abc"], r"PPOParams\.n_steps='abc' is invalid: must be an integer"),
        ("ppo", ["learning_rate=-1"], r"PPOParams\.learning_rate=-1\.0 is invalid"),
        ("ppo", ["gamma=1.5"], r"PPOParams\.gamma=1\.5 is invalid: must be a number in \[0"),
        ("ppo", ["activation=gelu"], r"activation='gelu' is invalid: must be one of \['tanh'"),
        ("ppo", ["net_arch=0,64"], r"net_arch=\(0, 64\) is invalid"),
        ("ppo", ["wings=2"], r"unknown --set key 'wings'; allowed: \['scenario'"),
        ("ppo", ["hyperparameters.alpha=1"], "unknown --set key 'hyperparameters.alpha'"),
        ("ppo", ["learning_rate"], "--set 'learning_rate' is invalid: must be key=value"),
        ("ppo", ["scenario=moon"], r"TrainConfig\.scenario='moon' is invalid: must be one of"),
        ("ppo", ["eval_scenarios=moon"], r"unknown scenarios \['moon'\]; allowed: 'all' or"),
        ("ppo", ["timesteps=0"], r"TrainConfig\.timesteps=0 is invalid: must be an integer >= 1"),
        ("ppo", ["register=maybe"], r"TrainConfig\.register='maybe' is invalid: must be true"),
        ("linucb", ["seed=-1"], r"TrainConfig\.seed=-1 is invalid"),
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
