"""The Gymnasium contract of ``autopilot/SaaSOps-v0``: checkers, seeding, state copy, errors."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import environment
from environment import ACTION_NAMES, ENV_ID, KPI_NAMES, MAX_EPISODE_STEPS, N_ACTIONS
from environment.env import SaaSOpsEnv
from environment.kpis import N_OBS, encode, recent_from_state


def rollout(seed: int, steps: int, scenario: str = "mixed") -> tuple[np.ndarray, np.ndarray]:
    """Observations and rewards of ``steps`` seeded random actions."""
    env = gym.make(ENV_ID, scenario=scenario)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


def test_registered_with_the_horizon() -> None:
    env = gym.make(ENV_ID)
    assert env.spec is not None
    assert env.spec.max_episode_steps == MAX_EPISODE_STEPS == 540
    assert env.action_space == gym.spaces.Discrete(N_ACTIONS)
    assert env.observation_space.shape == (N_OBS,)


@pytest.mark.parametrize("scenario", ["steady", "mixed"])
def test_gymnasium_check_env_passes_without_warnings(scenario: str) -> None:
    env = gym.make(ENV_ID, scenario=scenario).unwrapped  # the checker wants the spec
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env, skip_render_check=False)


def test_sb3_check_env_passes_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(SaaSOpsEnv(), warn=True)


def test_same_seed_same_rollout() -> None:
    obs_a, rew_a = rollout(seed=7, steps=300)
    obs_b, rew_b = rollout(seed=7, steps=300)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)


def test_different_seeds_differ() -> None:
    obs_a, _ = rollout(seed=1, steps=50)
    obs_b, _ = rollout(seed=2, steps=50)
    assert not np.array_equal(obs_a, obs_b)


def test_observations_stay_in_the_box_and_match_info() -> None:
    env = gym.make(ENV_ID, scenario="mixed")
    obs, info = env.reset(seed=3)
    env.action_space.seed(3)
    for _ in range(MAX_EPISODE_STEPS):
        assert env.observation_space.contains(obs)
        assert set(info["kpis"]) == set(KPI_NAMES)
        recent = recent_from_state(env.unwrapped.state.cycles_since)  # type: ignore[attr-defined]
        np.testing.assert_array_equal(obs, encode(info["kpis"], recent))
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            break


def test_episode_truncates_at_the_horizon_not_in_step() -> None:
    env = gym.make(ENV_ID, scenario="steady")
    env.reset(seed=0)
    for step in range(1, MAX_EPISODE_STEPS + 1):
        _, _, terminated, truncated, _ = env.step(0)
        assert not terminated
        assert truncated == (step == MAX_EPISODE_STEPS)
    # The bare environment never truncates by itself.
    bare = SaaSOpsEnv(scenario="steady")
    bare.reset(seed=0)
    assert not any(bare.step(0)[3] for _ in range(MAX_EPISODE_STEPS + 10))


def test_get_and_set_state_replay_exactly() -> None:
    env = SaaSOpsEnv(scenario="mixed")
    env.reset(seed=11)
    for action in range(N_ACTIONS):
        env.step(action)
    saved_state, saved_rng = env.get_state(), env.np_random.bit_generator.state
    first = [env.step(a % N_ACTIONS)[0] for a in range(40)]
    env.set_state(saved_state)
    env.np_random.bit_generator.state = saved_rng
    second = [env.step(a % N_ACTIONS)[0] for a in range(40)]
    np.testing.assert_array_equal(np.array(first), np.array(second))


def test_get_state_is_a_copy() -> None:
    env = SaaSOpsEnv()
    env.reset(seed=0)
    state = env.get_state()
    env.step(ACTION_NAMES.index("price_increase"))
    assert state.t == 0
    assert state.price_level == pytest.approx(1.0)


def test_terminates_when_cash_runs_out() -> None:
    env = SaaSOpsEnv(scenario="steady", params={"initial_cash": 10_000.0})
    env.reset(seed=0)
    ship = ACTION_NAMES.index("ship_feature")
    _, reward, terminated, _, info = env.step(ship)
    assert terminated
    assert info["cash"] < 0
    assert reward < -50  # the failure penalty


def test_render_modes() -> None:
    ansi = SaaSOpsEnv(render_mode="ansi")
    ansi.reset(seed=0)
    ansi.step(0)
    text = ansi.render()
    assert isinstance(text, str)
    assert all(name in text for name in KPI_NAMES)
    rgb = SaaSOpsEnv(render_mode="rgb_array")
    rgb.reset(seed=0)
    for _ in range(5):
        rgb.step(0)
    image = rgb.render()
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8
    assert image.ndim == 3
    assert image.shape[2] == 3
    assert image.std() > 0


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (-1, "invalid action -1"),
        (N_ACTIONS, f"invalid action {N_ACTIONS}"),
        (1.5, "invalid action 1.5"),
        ("retry", "invalid action 'retry'"),
        (None, "invalid action None"),
    ],
)
def test_invalid_actions_are_rejected(action: object, message: str) -> None:
    env = SaaSOpsEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)  # type: ignore[arg-type]


@pytest.mark.parametrize("action", [np.int64(4), np.array(4), np.int32(4)])
def test_numpy_integer_actions_are_accepted(action: object) -> None:
    """A NumPy integer (or 0-d array) steps exactly as the plain ``int`` does."""
    plain, numpy_env = SaaSOpsEnv(), SaaSOpsEnv()
    plain.reset(seed=0)
    numpy_env.reset(seed=0)
    obs_a, reward_a, *_, info_a = plain.step(4)
    obs_b, reward_b, *_, info_b = numpy_env.step(action)  # type: ignore[arg-type]
    assert info_b["action"] == info_a["action"] == ACTION_NAMES[4]
    assert reward_b == reward_a
    np.testing.assert_array_equal(obs_b, obs_a)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scenario": "apocalypse"}, "unknown scenario 'apocalypse'; allowed: .*steady"),
        ({"params": {"churn": 0.1}}, r"unknown parameter\(s\) \['churn'\]"),
        ({"params": {"billing_failure_rate": 1.5}}, r"billing_failure_rate=1.5 is outside"),
        ({"params": {"steps_per_day": 0}}, r"steps_per_day=0 is outside"),
        ({"params": {"steps_per_day": 2.5}}, "must be an integer"),
        ({"params": {"visitors_per_day": float("nan")}}, "visitors_per_day=nan"),
        ({"params": {"pro_price": "high"}}, "must be a number"),
    ],
)
def test_bad_construction_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gym.make(ENV_ID, **kwargs)


def test_unknown_render_mode() -> None:
    with pytest.raises(ValueError, match="unknown render_mode 'human'; allowed"):
        SaaSOpsEnv(render_mode="human")


def test_step_before_reset_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        SaaSOpsEnv().step(0)


def test_make_env_helper_passes_the_scenario() -> None:
    env = environment.make_env("payment_outage")
    assert env.unwrapped.scenario.name == "payment_outage"  # type: ignore[attr-defined]


def test_the_steady_start_cannot_be_changed_by_a_caller() -> None:
    from environment import dynamics
    from environment.params import BusinessParams

    params = BusinessParams()
    first = dynamics.steady_start(params)
    first.paying_basic = 0.0
    assert dynamics.steady_start(params).paying_basic > 0
