"""The action mask of the built-in pacing, and the wrapper that trains on it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import environment
from environment import actions as A
from environment.kpis import RECENT_HORIZON_CYCLES
from environment.wrappers import GuardedActions

NEVER = (RECENT_HORIZON_CYCLES,) * A.N_ACTIONS


def since(action: str, cycles: int) -> list[int]:
    out = list(NEVER)
    out[A.action_index(action)] = cycles
    return out


@pytest.mark.parametrize("name", sorted(A.PACING))
def test_an_action_is_masked_until_its_cooldown_has_passed(name: str) -> None:
    pacing = A.PACING[name]
    index = A.action_index(name)
    spacing = max(pacing.cooldown_hours, 24.0 / pacing.max_per_day)
    needed = int(np.ceil(spacing / A.CYCLE_HOURS))
    approver = pacing.requires_approval
    assert A.paced_mask(since(name, needed), approver=approver)[index]
    assert not A.paced_mask(since(name, needed - 1), approver=approver)[index]
    assert A.paced_mask(since(name, needed + 1), approver=approver)[index]


def test_a_price_needs_an_approver_and_noop_always_passes() -> None:
    nobody = A.paced_mask(NEVER)
    someone = A.paced_mask(NEVER, approver=True)
    for name in ("price_increase", "price_decrease"):
        assert not nobody[A.action_index(name)]
        assert someone[A.action_index(name)]
    assert nobody.sum() == A.N_ACTIONS - 2
    assert A.paced_mask([1] * A.N_ACTIONS)[A.NOOP]


def test_a_mask_needs_one_entry_per_action() -> None:
    with pytest.raises(ValueError, match="13 entries"):
        A.paced_mask([1, 2, 3])


def guarded(approver: bool = False) -> GuardedActions:
    return GuardedActions(gym.make(environment.ENV_ID, scenario="steady"), approver=approver)


def test_the_wrapper_passes_the_environment_checker() -> None:
    check_env(guarded().unwrapped)
    env = guarded()
    env.reset(seed=0)
    assert env.action_masks().dtype == np.bool_


def test_a_refused_action_runs_as_noop() -> None:
    retry = A.action_index("payment_retry")
    env, plain = guarded(), guarded()
    env.reset(seed=3)
    plain.reset(seed=3)
    env.step(retry)
    plain.step(retry)
    assert not env.action_masks()[retry]
    obs, reward, *_, info = env.step(retry)
    expected, expected_reward, *_ = plain.step(A.NOOP)
    assert info["refused"] == "payment_retry"
    np.testing.assert_allclose(obs, expected)
    assert reward == pytest.approx(expected_reward)


def test_an_allowed_action_runs_and_is_not_reported() -> None:
    env = guarded()
    env.reset(seed=1)
    *_, info = env.step(A.action_index("data_fix"))
    assert "refused" not in info
    assert env.unwrapped.state.cycles_since[A.action_index("data_fix")] == 1


def test_an_approver_lets_prices_through() -> None:
    raise_price = A.action_index("price_increase")
    env = guarded(approver=True)
    env.reset(seed=2)
    *_, info = env.step(raise_price)
    assert "refused" not in info
    nobody = guarded()
    nobody.reset(seed=2)
    *_, info = nobody.step(raise_price)
    assert info["refused"] == "price_increase"


def test_a_batch_of_rows_masks_each_row_as_alone() -> None:
    rows = np.array([since("payment_retry", 1), since("payment_retry", 6), list(NEVER)])
    batch = A.paced_mask(rows)
    assert batch.shape == (3, A.N_ACTIONS)
    for row, mask in zip(rows, batch, strict=True):
        np.testing.assert_array_equal(mask, A.paced_mask(row))
    with pytest.raises(ValueError, match="13 entries"):
        A.paced_mask(rows[None])
