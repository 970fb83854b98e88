"""Fixtures for the policy tests: every policy, with tiny-budget SB3 models trained once."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import environment
from environment.kpis import N_OBS, OBS_HIGH, OBS_LOW
from policies.bandits import BANDITS
from policies.base import Policy
from policies.oracle import LookaheadOracle, OracleConfig
from policies.rules import RulesPolicy
from policies.sb3 import SB3Policy, train_sb3
from policies.simple import NoopPolicy, RandomPolicy

TINY = {
    "ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
    "a2c": {"n_steps": 8},
    "dqn": {"learning_starts": 64, "buffer_size": 1_000},
}


@pytest.fixture(scope="session")
def sb3_policies() -> dict[str, SB3Policy]:
    """PPO, A2C and DQN trained for 256 steps each: the smoke test of ``train_sb3``."""
    return {
        algo: train_sb3(algo, "steady", 256, 0, n_envs=2, reward_scale=0.1, **kwargs)
        for algo, kwargs in TINY.items()
    }


def random_obs(n: int, seed: int = 0) -> np.ndarray:
    """Observations drawn uniformly from the observation box, float32 (n, N_OBS)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(OBS_LOW, OBS_HIGH, size=(n, N_OBS)).astype(np.float32)


def trained_bandit(name: str) -> Policy:
    """A bandit after 300 updates on random observations and rewards."""
    bandit = BANDITS[name]()
    rng = np.random.default_rng(1)
    for obs in random_obs(300, seed=2):
        decision = bandit.decide(obs)
        bandit.update(obs, decision.action, float(rng.normal(obs[0], 0.1)), decision.propensity)
    return bandit


POLICY_NAMES = ["noop", "random", "rules", *BANDITS, "ppo", "a2c", "dqn", "oracle"]


@pytest.fixture
def make_policy(sb3_policies: dict[str, SB3Policy]) -> Callable[[str], Policy]:
    """Build any policy by name, ready to decide (the oracle attached to a fresh env)."""

    def build(name: str) -> Policy:
        if name == "noop":
            return NoopPolicy()
        if name == "random":
            return RandomPolicy(seed=3)
        if name == "rules":
            rules = RulesPolicy()
            rules.record(environment.action_index("payment_retry"))
            return rules
        if name in BANDITS:
            return trained_bandit(name)
        if name in sb3_policies:
            return sb3_policies[name]
        if name == "oracle":
            env = environment.make_env("mixed")
            env.reset(seed=0)
            oracle = LookaheadOracle(OracleConfig(horizon=6, replan_every=1))
            oracle.attach(env)
            return oracle
        raise ValueError(name)

    return build
