"""Every policy satisfies the protocol: parametrized over all of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from environment.actions import ACTION_NAMES, N_ACTIONS
from policies.base import (
    DECISION_TOLERANCE,
    PROPENSITY_TOLERANCE,
    Decision,
    Episodic,
    OnlineLearner,
    Policy,
)
from policies.oracle import LookaheadOracle
from policies.registry import load_policy
from tests.policies.conftest import POLICY_NAMES, random_obs

MakePolicy = Callable[[str], Policy]
SUFFIX = {"ppo": ".zip", "a2c": ".zip", "dqn": ".zip"}


def batch_size(policy: Policy) -> int:
    """The oracle plans from its environment's state, so it decides one row at a time."""
    return 1 if isinstance(policy, LookaheadOracle) else 64


def reload(policy: Policy, tmp_path: Path) -> Policy:
    path = policy.save(tmp_path / f"{policy.name}{SUFFIX.get(policy.name, '.bin')}")
    loaded = load_policy(f"{policy.name}:{path}")
    if isinstance(policy, LookaheadOracle):
        assert isinstance(loaded, LookaheadOracle)
        loaded.attach(policy.env)
    return loaded


def assert_same(a: Decision, b: Decision) -> None:
    """The contract of :data:`policies.base.DECISION_TOLERANCE`: the same action, the numbers
    equal to float32 precision."""
    assert a.action == b.action
    assert a.confidence == pytest.approx(b.confidence, abs=DECISION_TOLERANCE)
    np.testing.assert_allclose(a.propensities, b.propensities, rtol=0, atol=DECISION_TOLERANCE)
    if a.expected_values is None:
        assert b.expected_values is None
    else:
        assert b.expected_values is not None
        np.testing.assert_allclose(
            a.expected_values, b.expected_values, rtol=DECISION_TOLERANCE, atol=0
        )


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_decisions_are_valid(name: str, make_policy: MakePolicy) -> None:
    policy = make_policy(name)
    assert isinstance(policy, Policy)
    obs = random_obs(batch_size(policy), seed=5)
    for decision in policy.decide_batch(obs):
        assert 0 <= decision.action < N_ACTIONS
        assert decision.action_name == ACTION_NAMES[decision.action]
        assert 0.0 <= decision.confidence <= 1.0
        assert decision.propensities.shape == (N_ACTIONS,)
        assert decision.propensities.sum() == pytest.approx(1.0, abs=PROPENSITY_TOLERANCE)
        assert (decision.propensities >= 0).all()
        assert decision.propensity > 0
        assert decision.policy_name == policy.name
        assert decision.policy_version == policy.version


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_batch_and_single_agree(name: str, make_policy: MakePolicy) -> None:
    policy = make_policy(name)
    obs = random_obs(batch_size(policy), seed=6)
    for row, batched in zip(obs, policy.decide_batch(obs), strict=True):
        assert_same(policy.decide(row), batched)


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_save_load_round_trips_to_identical_decisions(
    name: str, make_policy: MakePolicy, tmp_path: Path
) -> None:
    policy = make_policy(name)
    obs = random_obs(batch_size(policy), seed=7)
    before = policy.decide_batch(obs)
    loaded = reload(policy, tmp_path)
    assert loaded.name == policy.name
    for a, b in zip(before, loaded.decide_batch(obs), strict=True):
        assert_same(a, b)


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_learning_and_memory_round_trip(name: str, make_policy: MakePolicy, tmp_path: Path) -> None:
    """After an update (learners) or a recorded action (episodic), a reload still agrees:
    the learned state and the memory are saved, not only the config."""
    policy = make_policy(name)
    obs = random_obs(1, seed=8)[0]
    if isinstance(policy, OnlineLearner):
        policy.update(obs, 3, 2.5, 0.5)
    if isinstance(policy, Episodic):
        policy.record(2)
    loaded = reload(policy, tmp_path)
    assert_same(policy.decide(obs), loaded.decide(obs))


@pytest.mark.parametrize("name", POLICY_NAMES)
@pytest.mark.parametrize(
    ("obs", "match"),
    [
        (np.zeros(5, dtype=np.float32), r"shape \(30,\)"),
        (np.zeros((2, 30), dtype=np.float32), r"shape \(30,\)"),
        (np.full(30, np.nan, dtype=np.float32), "NaN or inf"),
        (np.r_[np.zeros(29), np.inf].astype(np.float32), "NaN or inf"),
        ("not an observation", "array of numbers"),
    ],
)
def test_bad_observations_are_rejected(
    name: str, obs: object, match: str, make_policy: MakePolicy
) -> None:
    policy = make_policy(name)
    with pytest.raises(ValueError, match=match):
        policy.decide(obs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_bad_batches_are_rejected(name: str, make_policy: MakePolicy) -> None:
    policy = make_policy(name)
    with pytest.raises(ValueError, match=r"shape \(n, 30\)"):
        policy.decide_batch(np.zeros(30, dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(n, 30\)"):
        policy.decide_batch(np.zeros((0, 30), dtype=np.float32))
