"""The reward's one definition: no noise from the start state, the true alignment."""

from __future__ import annotations

import numpy as np
import pytest

from environment import actions as A
from environment import dynamics
from environment.env import SaaSOpsEnv
from environment.params import BusinessParams
from environment.scenarios import get_scenario


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_the_start_state_books_no_equity_change(seed: int, params: BusinessParams) -> None:
    """The perturbed start values its own base: step 1's equity change is an ordinary step's."""
    state = dynamics.initial(params, get_scenario("steady"), np.random.default_rng(seed))
    assert state.customer_equity == pytest.approx(dynamics.customer_equity(state, params))
    first = dynamics.transition(state, A.NOOP, params, None)
    second = dynamics.transition(first, A.NOOP, params, None)
    assert abs(first.last_equity_change) < 3 * abs(second.last_equity_change) + 1.0


def test_the_env_pays_the_true_alignment_not_the_measured_one() -> None:
    """Alignment is not paid by default; where a study pays it, it pays the true one."""
    assert BusinessParams().alignment_weight == 0.0
    env = SaaSOpsEnv("mixed", params={"alignment_weight": 0.5})
    env.reset(seed=21)
    for action in (A.NOOP, A.DATA_FIX, A.NOOP):
        _, reward, terminated, _, info = env.step(action)
        measured = info["kpis"]["alignment_score"]
        true = info["true_kpis"]["alignment_score"]
        expected = dynamics.reward(env.state, true, env.params, terminated)
        assert reward == pytest.approx(expected, rel=1e-12, abs=1e-12)
        if measured != true:
            noisy = dynamics.reward(env.state, measured, env.params, terminated)
            assert reward != noisy
