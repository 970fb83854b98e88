"""Each scenario's shock strikes inside its window and moves the KPIs it should."""

from __future__ import annotations

import numpy as np
import pytest

from environment import dynamics
from environment.params import BusinessParams
from environment.scenarios import (
    SCENARIO_NAMES,
    SCENARIOS,
    SHOCK_KINDS,
    SHOCK_SCENARIOS,
    Scenario,
    ShockSpec,
    get_scenario,
)
from environment.state import BusinessState

from .conftest import Rollout

DAY = 6
# scenario -> (KPI, direction it moves while the shock is on, relative to no shock)
EXPECTED_MOVES = {
    "competitor_churn": ("at_risk_share", +1),
    "payment_outage": ("billing_failure_rate", +1),
    "data_corruption": ("data_quality_issue_rate", +1),
    "viral_surge": ("activation_rate", -1),
    "infra_incident": ("health_score", -1),
    "seasonal_slump": ("mrr_growth", -1),
}


def test_six_shock_scenarios_plus_steady_and_mixed() -> None:
    assert set(SHOCK_SCENARIOS) == set(EXPECTED_MOVES)
    assert {"steady", "mixed"} <= set(SCENARIO_NAMES)
    assert {spec.kind for spec in SCENARIOS["mixed"].shocks} == set(SHOCK_KINDS)


@pytest.mark.parametrize("name", SHOCK_SCENARIOS)
def test_shock_strikes_within_its_window_and_moves_its_kpi(
    name: str, steady: BusinessState, params: BusinessParams, rollout: Rollout
) -> None:
    scenario = get_scenario(name)
    shocks = scenario.draw(np.random.default_rng(5), params.steps_per_day)
    assert shocks, name
    first = shocks[0]
    spec = scenario.shocks[0]
    assert spec.start_days[0] * DAY <= first.start <= spec.start_days[1] * DAY
    assert first.end > first.start

    shocked = steady.copy()
    shocked.shocks = shocks
    # Run to the middle of the first shock (past its onset for slow-acting shocks).
    probe = (
        first.start
        + max(1, (first.end - first.start) // 2)
        + (4 * DAY if name == "seasonal_slump" else 0)
    )
    with_shock = rollout(shocked, [], probe)
    without = rollout(steady, [], probe)
    kpi, direction = EXPECTED_MOVES[name]
    moved = dynamics.true_kpis(with_shock, params)[kpi] - dynamics.true_kpis(without, params)[kpi]
    assert direction * moved > 0, (name, kpi, moved)


def test_shocks_are_drawn_per_episode_from_the_rng() -> None:
    scenario = get_scenario("mixed")
    a = scenario.draw(np.random.default_rng(1), DAY)
    b = scenario.draw(np.random.default_rng(1), DAY)
    c = scenario.draw(np.random.default_rng(2), DAY)
    assert a == b
    assert a != c
    assert len(a) == scenario.draws == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "meteor"}, "unknown shock kind 'meteor'"),
        ({"start_days": (10, 5)}, r"start_days=\(10, 5\) needs 0 <= low <= high"),
        ({"magnitude": (-1, 1)}, r"magnitude=\(-1, 1\) needs 0 <= low <= high"),
    ],
)
def test_bad_shock_specs(kwargs: dict[str, object], message: str) -> None:
    spec: dict[str, object] = {
        "kind": "competitor",
        "start_days": (1, 2),
        "duration_days": (1, 2),
        "magnitude": (1, 2),
    }
    spec.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ShockSpec(**spec)  # type: ignore[arg-type]


def test_unknown_scenario_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'calm'; allowed: \\['steady'"):
        get_scenario("calm")


def test_scenarios_are_data() -> None:
    custom = Scenario("double_outage", "two outages", (SCENARIOS["payment_outage"].shocks[0],) * 2)
    assert len(custom.draw(np.random.default_rng(0), DAY)) == 2
