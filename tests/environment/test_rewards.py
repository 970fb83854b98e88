"""Reward formula, the planning trade-offs it encodes, and the calibrated starting business."""

from __future__ import annotations

import dataclasses
import math

import pytest

from environment import actions as A
from environment import dynamics
from environment.params import BusinessParams
from environment.state import BusinessState

from .conftest import Rollout

DAY = 6
HORIZON = 90 * DAY


def episode_return(state: BusinessState, actions: list[int], params: BusinessParams) -> float:
    total = 0.0
    for t in range(HORIZON):
        state = dynamics.transition(state, actions[t] if t < len(actions) else A.NOOP, params, None)
        alignment = dynamics.true_kpis(state, params)["alignment_score"]
        failed = dynamics.terminal(state, params)
        total += dynamics.reward(state, alignment, params, failed)
        if failed:
            break
    return total


@pytest.mark.parametrize(
    "weights",
    [
        {},  # the calibrated weights
        {
            "value_weight": 2.0,
            "equity_weight": 0.3,
            "alignment_weight": 0.2,
            "failure_penalty": 7.0,
        },
    ],
)
def test_reward_formula(
    steady: BusinessState, params: BusinessParams, weights: dict[str, float]
) -> None:
    """The reward is the documented formula over the weights of ``BusinessParams``, read from
    the parameters (the second case moves every weight away from its default)."""
    p = dataclasses.replace(params, **weights)
    state = dynamics.transition(steady, A.DATA_FIX, p, None)
    value = (
        state.last_revenue - state.last_costs + p.equity_weight * state.last_equity_change
    ) / dynamics.revenue_scale(p)
    alive = p.value_weight * value + p.alignment_weight * 80.0 / 100.0
    assert dynamics.reward(state, 80.0, p, False) == pytest.approx(alive, rel=1e-12)
    assert dynamics.reward(state, 80.0, p, True) == pytest.approx(
        alive - p.failure_penalty, rel=1e-12
    )
    assert state.last_action_cost == A.ACTIONS[A.DATA_FIX].cost


def test_price_has_an_interior_optimum(steady: BusinessState, params: BusinessParams) -> None:
    """One raise beats none, and a run of raises (myopically each a gain) beats neither."""
    returns = [episode_return(steady, [A.PRICE_INCREASE] * n, params) for n in (0, 1, 3)]
    assert returns[1] > returns[0]
    assert returns[2] < returns[0]


def test_each_raise_is_myopically_a_gain(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    """Within a week a raise brings in more cash than it costs, whatever came before."""
    for before in range(4):
        state = rollout(steady, [A.PRICE_INCREASE] * before, before)
        week = 7 * DAY
        assert rollout(state, [A.PRICE_INCREASE], week).cash > rollout(state, [], week).cash


def test_routine_beats_doing_nothing(steady: BusinessState, params: BusinessParams) -> None:
    routine = [dynamics.routine_action(t, params) for t in range(HORIZON)]
    assert episode_return(steady, routine, params) > episode_return(steady, [], params)


def test_starting_business_matches_public_benchmarks(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    """The burn-in lands near the benchmark sheet's figures (ranges, not points)."""
    kpis = dynamics.true_kpis(steady, params)
    assert 0.30 <= kpis["signup_to_activation"] <= 0.45  # Userpilot: 37.5%
    assert 0.20 <= kpis["d7_retention"] <= 0.30
    assert 0.03 <= kpis["churn_rate"] <= 0.07  # Recurly: B2B 4.91% a month
    assert 0.04 <= kpis["billing_failure_rate"] <= 0.14  # Recurly: 5-14% declines
    assert 0.03 <= kpis["conversion_rate"] <= 0.08  # 4-8% free-to-paid medians
    assert 3.0 <= kpis["ltv_cac"] <= 6.0  # Skok: >= 3
    assert 75 <= kpis["health_score"] <= 95
    assert 0.35 <= kpis["activation_rate"] <= 0.75
    # Steady state: MRR moves by less than 5% a month with the routine in place.
    routine = [dynamics.routine_action(t, params) for t in range(30 * DAY)]
    month_later = rollout(steady, routine, 30 * DAY)
    assert abs(dynamics.mrr(month_later, params) / dynamics.mrr(steady, params) - 1) < 0.05


def test_no_price_run_makes_revenue_unbounded(
    steady: BusinessState, params: BusinessParams
) -> None:
    """Raising the price every cycle ends in ruin, not in runaway revenue."""
    always_raise = episode_return(steady, [A.PRICE_INCREASE] * HORIZON, params)
    routine = [dynamics.routine_action(t, params) for t in range(HORIZON)]
    assert always_raise < episode_return(steady, routine, params)


def test_a_raise_cancels_the_least_willing(steady: BusinessState, params: BusinessParams) -> None:
    raised = dynamics.transition(steady, A.PRICE_INCREASE, params, None)
    plain = dynamics.transition(steady, A.NOOP, params, None)
    cancelled = 1.0 - raised.paying / plain.paying
    assert 0.002 < cancelled < 0.005  # ~0.3% of the base for a 10% raise


def test_a_sixty_percent_raise_cancels_what_its_source_lost(params: BusinessParams) -> None:
    """Netflix 2011: +60% lost 3.3% of subscribers (the benchmark sheet's price figure)."""
    kept = dynamics.log_willing_to_pay(1.6, params) - dynamics.log_willing_to_pay(1.0, params)
    assert 1.0 - math.exp(kept) == pytest.approx(0.033, abs=0.003)
