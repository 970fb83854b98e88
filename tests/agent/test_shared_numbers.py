"""Every number two modules share, pinned to its one home."""

from __future__ import annotations

import pytest

from agent import actuators, detect, observe
from agent.guardrails import BUILT_IN_LIMITS, Governance
from environment import state
from environment.actions import ACTION_NAMES, CYCLE_HOURS, PACING
from environment.kpis import PAYMENT_BANDS
from environment.params import BusinessParams
from policies.rules import RulesConfig

PARAMS = BusinessParams()


def test_a_cycle_is_one_environment_step() -> None:
    assert 24.0 / PARAMS.steps_per_day == CYCLE_HOURS


def test_pacing_covers_every_action_but_noop() -> None:
    assert set(PACING) == set(ACTION_NAMES) - {"noop"}


@pytest.mark.parametrize("action", sorted(PACING))
def test_the_guardrails_floors_come_from_the_pacing_table(action: str) -> None:
    pacing = PACING[action]
    rule = Governance().rule(action)
    assert rule.cooldown_hours == pacing.cooldown_hours
    assert rule.max_per_day == pacing.max_per_day
    assert rule.requires_approval is pacing.requires_approval
    assert BUILT_IN_LIMITS[action]["cooldown_hours"] == pacing.cooldown_hours


@pytest.mark.parametrize("action", sorted(PACING))
def test_the_rules_habits_come_from_the_pacing_table(action: str) -> None:
    habits = dict(RulesConfig().cooldowns)
    expected = PACING[action].habit_cycles
    assert habits.get(action) == expected
    if expected is not None:
        assert expected * CYCLE_HOURS == PACING[action].habit_hours


def test_only_ship_feature_has_a_habit_shorter_than_its_floor() -> None:
    shorter = {
        name
        for name, pacing in PACING.items()
        if pacing.habit_hours is not None and pacing.habit_hours < pacing.cooldown_hours
    }
    assert shorter == {"ship_feature"}  # documented beside the table


def test_detection_and_the_rules_read_the_same_payment_bands() -> None:
    rules = RulesConfig()
    assert PAYMENT_BANDS.outage_failure_rate == detect.OUTAGE_FAILURE_RATE
    assert rules.outage_failure_rate == PAYMENT_BANDS.outage_failure_rate
    assert rules.backlog_threshold == PAYMENT_BANDS.backlog_act
    assert PAYMENT_BANDS.backlog_act < PAYMENT_BANDS.backlog_medium < PAYMENT_BANDS.backlog_high


def test_a_price_change_moves_the_price_by_the_simulators_step() -> None:
    assert PARAMS.price_step == actuators.PRICE_STEP
    _, increase = actuators.SETTING_ACTIONS["price_increase"]
    _, decrease = actuators.SETTING_ACTIONS["price_decrease"]
    assert increase(1.0) == pytest.approx(1.0 + PARAMS.price_step, abs=1e-6)
    assert decrease(1.0) == pytest.approx(1.0 - PARAMS.price_step, abs=1e-6)


def test_windows_come_from_the_simulator() -> None:
    assert observe.MONTH_DAYS is state.MONTH_DAYS
    assert observe.WEEK_DAYS is state.WEEK_DAYS
