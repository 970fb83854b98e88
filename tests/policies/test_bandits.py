"""Bandits: regret on a synthetic linear contextual bandit, updates, configs, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from environment.actions import N_ACTIONS
from environment.kpis import N_KPIS, N_OBS
from policies.bandits import (
    BANDITS,
    EpsilonGreedyBandit,
    EpsilonGreedyConfig,
    LinUCBBandit,
    LinUCBConfig,
    RidgeArms,
    ThompsonBandit,
    ThompsonConfig,
    UCB1Bandit,
    UCB1Config,
)
from policies.base import Policy
from tests.policies.conftest import random_obs

HORIZON = 3_000


def regret_curve(bandit: Policy, seed: int = 1) -> np.ndarray:
    """Cumulative regret on a linear contextual bandit with a known optimum.

    Each action's expected reward is ``theta_a . [1, x]`` with ``theta_a ~ N(0, I)``;
    contexts are uniform in the observation box; rewards carry N(0, 0.5^2) noise.
    """
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 1.0, (N_ACTIONS, N_OBS + 1))
    contexts = random_obs(HORIZON, seed=seed + 100)
    contexts[:, N_KPIS:] = 1.0  # KPI contexts; no action ran recently (the common case)
    noise = rng.normal(0.0, 0.5, HORIZON)
    regret = np.zeros(HORIZON)
    for t, obs in enumerate(contexts):
        expected = theta @ np.r_[1.0, obs.astype(np.float64)]
        decision = bandit.decide(obs)
        regret[t] = expected.max() - expected[decision.action]
        bandit.update(
            obs, decision.action, float(expected[decision.action] + noise[t]), decision.propensity
        )  # type: ignore[attr-defined]
    return np.cumsum(regret)


def log_log_slope(cumulative: np.ndarray) -> float:
    """Slope of log cumulative regret against log t over the last 90% of the horizon."""
    t = np.arange(len(cumulative) // 10, len(cumulative))
    return float(np.polyfit(np.log(t + 1), np.log(cumulative[t]), 1)[0])


@pytest.fixture(scope="module")
def curves() -> dict[str, np.ndarray]:
    return {
        "epsilon_greedy": regret_curve(EpsilonGreedyBandit()),
        "linucb": regret_curve(LinUCBBandit()),
        "thompson": regret_curve(ThompsonBandit()),
    }


@pytest.mark.parametrize("name", ["linucb", "thompson"])
def test_contextual_regret_is_sublinear(name: str, curves: dict[str, np.ndarray]) -> None:
    slope = log_log_slope(curves[name])
    assert slope < 0.6, f"{name} regret grows like t^{slope:.2f}"
    # and it flattens: the last third adds far less regret than the first third
    third = HORIZON // 3
    late = curves[name][-1] - curves[name][-third]
    early = curves[name][third]
    assert late < 0.5 * early


@pytest.mark.parametrize("name", ["linucb", "thompson"])
def test_linucb_and_thompson_beat_epsilon_greedy(name: str, curves: dict[str, np.ndarray]) -> None:
    assert curves[name][-1] < 0.7 * curves["epsilon_greedy"][-1]
    # epsilon-greedy keeps paying for its fixed exploration: its late regret grows linearly
    third = HORIZON // 3
    eps_late = curves["epsilon_greedy"][-1] - curves["epsilon_greedy"][-third]
    assert eps_late > 2 * (curves[name][-1] - curves[name][-third])


def test_ucb1_regret_is_sublinear_on_a_context_free_bandit() -> None:
    rng = np.random.default_rng(3)
    means = rng.uniform(0.0, 1.0, N_ACTIONS)
    bandit = UCB1Bandit()
    obs = random_obs(1)[0]
    regret = np.zeros(HORIZON)
    for t in range(HORIZON):
        action = bandit.decide(obs).action
        regret[t] = means.max() - means[action]
        bandit.update(obs, action, float(means[action] + rng.normal(0, 0.3)), 1.0)
    assert log_log_slope(np.cumsum(regret)) < 0.7


def test_ucb1_tries_every_action_first() -> None:
    bandit = UCB1Bandit()
    obs = random_obs(1)[0]
    chosen = []
    for _ in range(N_ACTIONS):
        action = bandit.decide(obs).action
        chosen.append(action)
        bandit.update(obs, action, 0.0, 1.0)
    assert chosen == list(range(N_ACTIONS))


def test_sherman_morrison_matches_the_direct_inverse() -> None:
    rng = np.random.default_rng(0)
    model = RidgeArms(N_ACTIONS, N_OBS + 1, ridge=0.5)
    xs = rng.random((400, N_OBS + 1))
    arms = rng.integers(N_ACTIONS, size=400)
    rewards = rng.normal(size=400)
    for x, arm, r in zip(xs, arms, rewards, strict=True):
        model.update(int(arm), x, float(r))
    for arm in range(N_ACTIONS):
        mask = arms == arm
        a = 0.5 * np.eye(N_OBS + 1) + xs[mask].T @ xs[mask]
        # float64 throughout; ~30 rank-one updates per arm accumulate rounding far below 1e-9
        np.testing.assert_allclose(model.a_inv[arm], np.linalg.inv(a), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(
            model.theta[arm],
            np.linalg.solve(a, xs[mask].T @ rewards[mask]),
            rtol=1e-9,
            atol=1e-12,
        )
        assert model.counts[arm] == mask.sum()


def test_sigma_estimates_the_noise() -> None:
    rng = np.random.default_rng(0)
    bandit = LinUCBBandit()
    theta = rng.normal(size=N_OBS + 1)
    for obs in random_obs(2_000, seed=4):
        reward = float(theta @ np.r_[1.0, obs] + rng.normal(0.0, 0.3))
        bandit.update(obs, 0, reward, 1.0)
    assert bandit.model.sigma == pytest.approx(0.3, rel=0.1)


def test_thompson_confidence_is_the_posterior_probability_of_best() -> None:
    bandit = ThompsonBandit(ThompsonConfig(samples=500))
    obs = random_obs(1)[0]
    for _ in range(200):  # action 4 clearly best
        for action in range(N_ACTIONS):
            bandit.update(obs, action, 1.0 if action == 4 else 0.0, 1.0)
    decision = bandit.decide(obs)
    assert decision.action == 4
    assert decision.confidence > 0.99
    fresh = ThompsonBandit(ThompsonConfig(samples=2_000)).decide(obs)
    assert fresh.confidence < 0.2  # no data: every action about equally likely best
    np.testing.assert_allclose(fresh.propensities, 1 / N_ACTIONS, atol=0.03)


def test_epsilon_greedy_propensities_mix_exploration() -> None:
    bandit = EpsilonGreedyBandit(EpsilonGreedyConfig(epsilon=0.2))
    decision = bandit.decide(random_obs(1)[0])
    greedy = int(decision.propensities.argmax())
    assert decision.propensities[greedy] == pytest.approx(0.8 + 0.2 / N_ACTIONS)
    assert decision.confidence == pytest.approx(decision.propensities[decision.action])


def test_decisions_are_reproducible_and_change_with_the_seed() -> None:
    obs = random_obs(200, seed=9)
    a = EpsilonGreedyBandit(EpsilonGreedyConfig(epsilon=0.5, seed=1)).decide_arrays(obs)
    b = EpsilonGreedyBandit(EpsilonGreedyConfig(epsilon=0.5, seed=1)).decide_arrays(obs)
    c = EpsilonGreedyBandit(EpsilonGreedyConfig(epsilon=0.5, seed=2)).decide_arrays(obs)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert (a.actions != c.actions).any()


@pytest.mark.parametrize("name", sorted(BANDITS))
@pytest.mark.parametrize(
    ("action", "reward", "propensity", "match"),
    [
        (13, 1.0, 0.5, r"action 13 outside \[0, 12\]"),
        (-1, 1.0, 0.5, r"action -1 outside"),
        (1.5, 1.0, 0.5, "action must be an integer"),
        (1, float("nan"), 0.5, "reward must be a finite number"),
        (1, "high", 0.5, "reward must be a finite number"),
        (1, 1.0, 0.0, r"propensity must be in \(0, 1\]"),
        (1, 1.0, 1.5, r"propensity must be in \(0, 1\]"),
    ],
)
def test_bad_updates_are_rejected(
    name: str, action: object, reward: object, propensity: object, match: str
) -> None:
    bandit = BANDITS[name]()
    with pytest.raises(ValueError, match=match):
        bandit.update(random_obs(1)[0], action, reward, propensity)  # type: ignore[arg-type]
    assert bandit.n_updates == 0


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: EpsilonGreedyConfig(epsilon=1.5), r"EpsilonGreedyConfig.epsilon=1.5"),
        (lambda: EpsilonGreedyConfig(ridge=0.0), r"EpsilonGreedyConfig.ridge=0.0"),
        (lambda: EpsilonGreedyConfig(seed=-1), r"EpsilonGreedyConfig.seed=-1"),
        (lambda: UCB1Config(exploration=-1.0), r"UCB1Config.exploration=-1.0"),
        (lambda: LinUCBConfig(alpha=float("nan")), r"LinUCBConfig.alpha=nan"),
        (lambda: ThompsonConfig(samples=0), r"ThompsonConfig.samples=0"),
        (lambda: ThompsonConfig(samples=2.5), r"ThompsonConfig.samples=2.5"),
        (lambda: ThompsonConfig(scale=0.0), r"ThompsonConfig.scale=0.0"),
    ],
)
def test_bad_configs_name_the_field_and_value(build: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()  # type: ignore[operator]


def test_wrong_config_type_is_rejected() -> None:
    with pytest.raises(TypeError, match="LinUCBBandit needs a LinUCBConfig"):
        LinUCBBandit(ThompsonConfig())  # type: ignore[arg-type]
