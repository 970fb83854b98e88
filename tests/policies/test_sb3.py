"""SB3 wrappers: the fast path equals model.predict; training and files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from environment.actions import N_ACTIONS
from policies.base import DECISION_TOLERANCE, PolicyFileError
from policies.sb3 import SB3Config, SB3Policy, train_sb3
from tests.policies.conftest import random_obs

ALGOS = ["ppo", "a2c", "dqn"]


@pytest.mark.parametrize("algo", ALGOS)
def test_fast_path_matches_predict_on_many_observations(
    algo: str, sb3_policies: dict[str, SB3Policy]
) -> None:
    policy = sb3_policies[algo]
    obs = random_obs(5_000, seed=11)
    expected, _ = policy.model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(policy.decide_arrays(obs).actions, expected)
    for row in obs[:200]:  # single rows, as served
        single, _ = policy.model.predict(row, deterministic=True)
        assert policy.decide(row).action == int(single)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_probabilities_match_sb3(algo: str, sb3_policies: dict[str, SB3Policy]) -> None:
    policy = sb3_policies[algo]
    obs = random_obs(2_000, seed=12)
    with torch.no_grad():
        distribution = policy.model.policy.get_distribution(torch.as_tensor(obs))
        expected = distribution.distribution.probs.numpy()
    np.testing.assert_allclose(policy.action_probabilities(obs), expected, atol=1e-6)
    arrays = policy.decide_arrays(obs)
    rows = np.arange(len(obs))
    np.testing.assert_allclose(arrays.confidences, expected[rows, arrays.actions], atol=1e-6)


def test_dqn_confidence_is_a_softmax_over_q(sb3_policies: dict[str, SB3Policy]) -> None:
    model = sb3_policies["dqn"].model
    obs = random_obs(100, seed=13)
    with torch.no_grad():
        q = model.policy.q_net(torch.as_tensor(obs)).numpy().astype(np.float64)
    for temperature in (0.1, 1.0):
        policy = SB3Policy(model, SB3Config(temperature=temperature))
        arrays = policy.decide_arrays(obs)
        soft = np.exp((q - q.max(1, keepdims=True)) / temperature)
        soft /= soft.sum(1, keepdims=True)
        np.testing.assert_allclose(
            arrays.confidences, soft[np.arange(100), arrays.actions], atol=1e-5
        )
        assert arrays.expected_values is not None
        np.testing.assert_allclose(arrays.expected_values, q, atol=1e-5)


def test_stochastic_mode_samples_with_the_distribution_as_propensities(
    sb3_policies: dict[str, SB3Policy],
) -> None:
    policy = SB3Policy(sb3_policies["ppo"].model, SB3Config(deterministic=False, seed=4))
    obs = np.repeat(random_obs(1, seed=14), 1, axis=0)
    decision = policy.decide(obs[0])
    np.testing.assert_allclose(
        decision.propensities, policy.action_probabilities(obs)[0], rtol=0, atol=DECISION_TOLERANCE
    )
    actions = policy.decide_arrays(random_obs(3_000, seed=15)).actions
    assert len(set(actions.tolist())) > 5  # an untrained policy is close to uniform


def test_save_and_load_keep_algo_and_config(
    sb3_policies: dict[str, SB3Policy], tmp_path: Path
) -> None:
    policy = SB3Policy(sb3_policies["dqn"].model, SB3Config(temperature=0.3))
    path = policy.save(tmp_path / "agent")
    assert path.suffix == ".zip"
    assert policy.version.startswith("sha256:")
    loaded = SB3Policy.load(path)
    assert (loaded.algo, loaded.config, loaded.version) == ("dqn", policy.config, policy.version)


def test_plain_sb3_zip_needs_the_algorithm(
    sb3_policies: dict[str, SB3Policy], tmp_path: Path
) -> None:
    path = tmp_path / "plain.zip"
    sb3_policies["a2c"].model.save(path)
    with pytest.raises(ValueError, match="does not say its algorithm"):
        SB3Policy.load(path)
    assert SB3Policy.load(path, "a2c").algo == "a2c"


@pytest.mark.parametrize(
    ("content", "algo", "match"),
    [
        (b"not a zip at all", "ppo", "corrupt or not a zip archive"),
        (None, "ppo", "cannot be loaded"),
        ("dqn-file", "ppo", "holds a 'dqn' model, not 'ppo'"),
    ],
)
def test_bad_model_files_name_the_problem(
    content: bytes | str | None,
    algo: str,
    match: str,
    sb3_policies: dict[str, SB3Policy],
    tmp_path: Path,
) -> None:
    path = tmp_path / "model.zip"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is None:  # a valid zip without SB3's entries
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("hello.txt", "hi")
    else:
        SB3Policy(sb3_policies["dqn"].model).save(path)
    with pytest.raises(PolicyFileError, match=match):
        SB3Policy.load(path, algo)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model.zip' does not exist"):
        SB3Policy.load(tmp_path / "model.zip", "ppo")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"algo": "sac"},
            r"unknown algorithm 'sac'; allowed: \['a2c', 'dqn', 'maskable_ppo', 'ppo'\]",
        ),
        ({"timesteps": 0}, "timesteps=0 is invalid: must be an integer >= 1"),
        ({"timesteps": 1.5}, "timesteps=1.5 is invalid: must be an integer >= 1"),
        ({"seed": -2}, "seed=-2 is invalid: must be an integer >= 0"),
        ({"scenario": "moon_landing"}, r"unknown scenarios \['moon_landing'\]"),
        ({"n_envs": 0}, "n_envs=0 is invalid: must be an integer >= 1"),
        ({"reward_scale": 0.0}, r"reward_scale=0.0 is invalid: must be a number in \(0.0, inf\]"),
        ({"not_a_hyperparameter": 1}, "bad hyperparameters for ppo"),
    ],
)
def test_train_sb3_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {
        "algo": "ppo",
        "scenario": "steady",
        "timesteps": 64,
        "seed": 0,
        "n_envs": 1,
        "reward_scale": 0.1,
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train_sb3(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, r"SB3Config.temperature=0.0"),
        ({"deterministic": "yes"}, r"SB3Config.deterministic='yes'"),
        ({"seed": -1}, r"SB3Config.seed=-1"),
    ],
)
def test_bad_serving_configs(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SB3Config(**kwargs)  # type: ignore[arg-type]


def test_wrapping_something_else_is_rejected() -> None:
    with pytest.raises(TypeError, match="SB3Policy wraps"):
        SB3Policy(object())  # type: ignore[arg-type]


@pytest.mark.slow
def test_ppo_learns_to_beat_random_on_a_small_budget() -> None:
    from experiments.algorithms import sb3_kwargs
    from experiments.config import load_config
    from policies.evaluation import compare, evaluate
    from policies.simple import RandomPolicy

    params = load_config("ppo").hyperparameters  # the project's values: the YAML
    ppo = train_sb3(
        "ppo", "steady", 20_000, 0, n_envs=4, reward_scale=params.reward_scale, **sb3_kwargs(params)
    )
    seeds = [0, 1, 2]
    diff = compare(
        evaluate(ppo, ["steady"], seeds, record_kpis=False),
        evaluate(RandomPolicy(), ["steady"], seeds, record_kpis=False),
    )
    assert diff.overall.low > 0


def test_the_shipped_champion_is_served_masked_and_calibrated() -> None:
    """A masked policy never chooses an action inside its pacing: with every action but noop
    run in the last cycle, the champion can only hold, whatever the KPIs."""
    import environment
    from environment.actions import ACTION_NAMES, NOOP, paced_mask
    from environment.kpis import RECENT_HORIZON_CYCLES, decode_cycles_since, encode
    from policies.registry import load_policy

    champion = load_policy("champion")
    assert isinstance(champion, SB3Policy) and champion.calibration is not None
    obs, info = environment.make_env("mixed").reset(seed=5)
    kpis = info["kpis"]
    just_ran = dict.fromkeys(ACTION_NAMES[1:], 1)
    blocked = encode(kpis, just_ran)
    assert paced_mask(decode_cycles_since(blocked)).tolist() == [True] + [False] * 12
    assert champion.decide(blocked).action == NOOP
    probabilities = champion.action_probabilities(blocked[None])[0]
    assert probabilities[1:].sum() == 0.0
    free = encode(kpis, dict.fromkeys(ACTION_NAMES[1:], RECENT_HORIZON_CYCLES))
    batch = np.stack([free, blocked, obs])
    decisions = champion.decide_batch(batch)
    assert decisions[1].action == NOOP
    assert all(0.0 <= d.confidence <= 1.0 for d in decisions)


@pytest.mark.parametrize("algo", ALGOS)
def test_decide_allowed_takes_the_best_allowed_action_by_the_same_scores(
    algo: str, sb3_policies: dict[str, SB3Policy]
) -> None:
    policy = sb3_policies[algo]
    for row in random_obs(50, seed=14):
        free = policy.decide(row)
        everything = np.ones(N_ACTIONS, dtype=bool)
        same = policy.decide_allowed(row, everything)
        assert same.action == free.action
        assert same.confidence == pytest.approx(free.confidence, abs=DECISION_TOLERANCE)
        allowed = everything.copy()
        allowed[free.action] = False
        moved = policy.decide_allowed(row, allowed)
        scores = policy.scores(row[None])[0]
        scores[~allowed] = -np.inf
        assert moved.action == int(scores.argmax()) != free.action
        assert moved.propensities[~allowed].sum() == 0.0
        if algo != "dqn":  # PPO/A2C: the restricted distribution's value at the choice
            restricted = np.exp(scores - scores.max())
            expected = restricted[moved.action] / restricted.sum()
            assert moved.confidence == pytest.approx(expected, abs=DECISION_TOLERANCE)
