"""Each action's effect, directionally against ``noop`` from the same copied state.

Rollouts use the expected (noise-free) dynamics, so the only difference between the two arms
is the action. Each test names the context where the action helps, or where it is misuse.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from environment import actions as A
from environment import dynamics
from environment.params import BusinessParams
from environment.state import BusinessState

from .conftest import Rollout, with_shock

DAY = 6


def kpis(state: BusinessState, params: BusinessParams) -> dict[str, float]:
    return dynamics.true_kpis(state, params)


def cash_gain(after: BusinessState, before: BusinessState) -> float:
    return after.cash - before.cash


def test_transition_does_not_mutate_its_input(
    steady: BusinessState, params: BusinessParams
) -> None:
    before = steady.copy()
    for action in range(A.N_ACTIONS):
        dynamics.transition(steady, action, params, None)
    assert steady == before


def test_payment_retry_after_an_outage_recovers_revenue(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    outage = with_shock(steady, "payment_outage", 0, 2 * DAY, 0.6)
    after_outage = rollout(outage, [], 2 * DAY)
    retried = rollout(after_outage, [A.PAYMENT_RETRY], DAY)
    waited = rollout(after_outage, [], DAY)
    assert retried.failed_payments < 0.75 * waited.failed_payments
    assert kpis(retried, params)["mrr"] > kpis(waited, params)["mrr"]
    assert cash_gain(retried, after_outage) > cash_gain(waited, after_outage)


def test_payment_retry_during_an_outage_is_misuse(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    outage = with_shock(steady, "payment_outage", 0, 3 * DAY, 0.7)
    hammering = rollout(outage, [A.PAYMENT_RETRY] * (2 * DAY), 3 * DAY)
    waiting = rollout(outage, [], 3 * DAY)
    assert hammering.churned > waiting.churned  # excessive retries cancel subscriptions


def test_orphan_cleanup_lowers_orphans_and_raises_health(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    corrupted = with_shock(steady, "data_corruption", 0, DAY, 0.08)
    cleaned = rollout(corrupted, [A.NOOP, A.ORPHAN_CLEANUP], 2)
    left = rollout(corrupted, [], 2)
    assert cleaned.orphans < 0.2 * left.orphans
    assert kpis(cleaned, params)["health_score"] > kpis(left, params)["health_score"]


def test_data_fix_repairs_defects_after_its_delay(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    corrupted = rollout(with_shock(steady, "data_corruption", 0, DAY, 0.08), [], 1)
    fixed = rollout(corrupted, [A.DATA_FIX], 2)
    left = rollout(corrupted, [], 2)
    assert fixed.defects < 0.5 * left.defects
    fixed_kpis, left_kpis = kpis(fixed, params), kpis(left, params)
    assert fixed_kpis["data_quality_issue_rate"] < left_kpis["data_quality_issue_rate"]
    assert fixed_kpis["health_score"] > left_kpis["health_score"]
    # Bad data raises billing failures: fixing it lowers them over the next days.
    assert rollout(fixed, [], 2 * DAY).failed_payments < rollout(left, [], 2 * DAY).failed_payments


def test_retention_campaign_wins_back_at_risk_accounts(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    competitor = with_shock(steady, "competitor", 0, 10 * DAY, 2.0)
    campaign = rollout(competitor, [A.RETENTION_CAMPAIGN], 3 * DAY)
    nothing = rollout(competitor, [], 3 * DAY)
    assert kpis(campaign, params)["at_risk_share"] < kpis(nothing, params)["at_risk_share"]
    assert campaign.paying > nothing.paying


def test_retention_campaign_barrage_causes_fatigue_and_churn(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    once = rollout(steady, [A.RETENTION_CAMPAIGN], 10 * DAY)
    barrage = rollout(steady, [A.RETENTION_CAMPAIGN] * (3 * DAY), 10 * DAY)
    assert barrage.fatigue > once.fatigue
    assert barrage.churned > once.churned
    assert barrage.paying < once.paying


def test_repeating_an_action_has_diminishing_returns(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    corrupted = rollout(with_shock(steady, "data_corruption", 0, DAY, 0.08), [], 1)
    first = rollout(corrupted, [A.ORPHAN_CLEANUP], 1)
    second = rollout(first, [A.ORPHAN_CLEANUP], 1)
    assert first.orphans / corrupted.orphans < second.orphans / first.orphans


def test_onboarding_boost_raises_activation(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    surge = with_shock(steady, "viral_surge", 0, 5 * DAY, 4.0)
    boosted = rollout(surge, [A.ONBOARDING_BOOST], 9 * DAY)
    plain = rollout(surge, [], 9 * DAY)
    assert (
        kpis(boosted, params)["signup_to_activation"] > kpis(plain, params)["signup_to_activation"]
    )
    assert kpis(boosted, params)["activation_rate"] > kpis(plain, params)["activation_rate"]


def test_funnel_fix_lands_after_its_delay_and_lasts(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    delay = A.ACTIONS[A.FUNNEL_FIX].delay_steps
    early = rollout(steady, [A.FUNNEL_FIX], delay)
    assert early.funnel_quality == pytest.approx(rollout(steady, [], delay).funnel_quality)
    fixed = rollout(steady, [A.FUNNEL_FIX], 30 * DAY)
    plain = rollout(steady, [], 30 * DAY)
    assert fixed.funnel_quality > plain.funnel_quality
    assert fixed.paying > plain.paying
    fixed_kpis, plain_kpis = kpis(fixed, params), kpis(plain, params)
    assert fixed_kpis["signup_to_activation"] > plain_kpis["signup_to_activation"]
    assert fixed.cash < plain.cash  # not paid back within a month: only a planner sees it


def test_upgrade_prompt_converts_now_but_a_barrage_drives_churn(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    prompted = rollout(steady, [A.UPGRADE_PROMPT], 1)
    plain = rollout(steady, [], 1)
    assert prompted.paying > plain.paying
    assert kpis(prompted, params)["arpa"] > kpis(plain, params)["arpa"]  # basic -> pro
    barrage = rollout(steady, [A.UPGRADE_PROMPT] * (2 * DAY), 10 * DAY)
    once = rollout(steady, [A.UPGRADE_PROMPT], 10 * DAY)
    assert barrage.at_risk_paying > once.at_risk_paying


def test_price_increase_raises_arpa_now_and_churn_later(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    raised = rollout(steady, [A.PRICE_INCREASE], 1)
    plain = rollout(steady, [], 1)
    assert kpis(raised, params)["arpa"] == pytest.approx(
        kpis(plain, params)["arpa"] * (1 + params.price_step), rel=1e-3
    )
    assert rollout(raised, [], 20 * DAY).churned > rollout(plain, [], 20 * DAY).churned
    # A run of raises piles up cash within the quarter but wrecks the customer base.
    greedy = rollout(steady, [A.PRICE_INCREASE] * 4, 90 * DAY)
    once = rollout(steady, [A.PRICE_INCREASE], 90 * DAY)
    assert greedy.cash > once.cash
    assert greedy.paying < 0.9 * once.paying
    assert greedy.cash + greedy.customer_equity < once.cash + once.customer_equity


def test_price_decrease_lowers_arpa_and_raises_conversion(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    cut = rollout(steady, [A.PRICE_DECREASE], 30 * DAY)
    plain = rollout(steady, [], 30 * DAY)
    assert kpis(cut, params)["arpa"] < kpis(plain, params)["arpa"]
    assert kpis(cut, params)["conversion_rate"] > kpis(plain, params)["conversion_rate"]


def test_scale_infra_shortens_an_incident_at_a_recurring_cost(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    incident = with_shock(steady, "infra_incident", 0, 1, 1.0)
    scaled = rollout(incident, [A.NOOP, A.SCALE_INFRA], 4)
    plain = rollout(incident, [], 4)
    assert kpis(scaled, params)["health_score"] > kpis(plain, params)["health_score"] + 5
    assert scaled.infra_cost_level > plain.infra_cost_level
    # Without an incident or load, capacity is money spent for little.
    calm_scaled = rollout(steady, [A.SCALE_INFRA], 30 * DAY)
    calm_plain = rollout(steady, [], 30 * DAY)
    assert calm_scaled.cash < calm_plain.cash


def test_scale_infra_relieves_overload(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    overloaded = steady.copy()
    overloaded.capacity = dynamics.load_units(steady) / 0.95
    scaled = rollout(overloaded, [A.SCALE_INFRA], 3)
    plain = rollout(overloaded, [], 3)
    assert kpis(scaled, params)["health_score"] > kpis(plain, params)["health_score"] + 5


def test_shift_marketing_trades_reach_for_intent(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    shifted = rollout(steady, [A.SHIFT_MARKETING], 14 * DAY)
    plain = rollout(steady, [], 14 * DAY)
    assert (
        kpis(shifted, params)["signup_to_activation"] > kpis(plain, params)["signup_to_activation"]
    )
    assert sum(shifted.matured_signups) < sum(plain.matured_signups)


def test_ship_feature_pays_off_only_after_two_weeks(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    no_bugs = replace(params, release_bug_probability=0.0)
    delay = A.ACTIONS[A.SHIP_FEATURE].delay_steps
    state = steady.copy()
    shipped = dynamics.transition(state, A.SHIP_FEATURE, no_bugs, None)
    for _ in range(delay - 1):
        shipped = dynamics.transition(shipped, A.NOOP, no_bugs, None)
    assert shipped.feature_level == 0.0
    shipped = dynamics.transition(shipped, A.NOOP, no_bugs, None)
    assert shipped.feature_level > 0.0
    later = rollout(shipped, [], 45 * DAY)
    plain = rollout(steady, [], delay + 1 + 45 * DAY)
    assert later.paying > plain.paying
    assert kpis(later, params)["at_risk_share"] < kpis(plain, params)["at_risk_share"]


def test_features_beyond_the_team_capacity_are_wasted(
    steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    attempts = params.max_features_in_flight + 2
    state = rollout(steady, [A.SHIP_FEATURE] * attempts, attempts)
    in_flight = [a for _, a in state.pending if a == A.SHIP_FEATURE]
    assert len(in_flight) == params.max_features_in_flight
    spent = rollout(steady, [], attempts).cash - state.cash
    assert spent == pytest.approx(attempts * A.ACTIONS[A.SHIP_FEATURE].cost)
