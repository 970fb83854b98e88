"""The business simulator: KPI vocabulary, action catalogue, scenarios, dynamics and the
Gymnasium environment ``autopilot/SaaSOps-v0`` (registered on import)."""

from __future__ import annotations

from typing import Any

import gymnasium

from environment.actions import ACTION_NAMES, ACTIONS, N_ACTIONS, action_index
from environment.env import SaaSOpsEnv
from environment.kpis import KPI_NAMES, KPI_SPECS, N_KPIS, alignment_score, encode
from environment.params import BusinessParams
from environment.scenarios import SCENARIO_NAMES, SCENARIOS, get_scenario

ENV_ID = "autopilot/SaaSOps-v0"
STEPS_PER_DAY = BusinessParams().steps_per_day
EPISODE_DAYS = 90
MAX_EPISODE_STEPS = EPISODE_DAYS * STEPS_PER_DAY
"""A default episode: 90 days of 4-hour cycles."""

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="environment.env:SaaSOpsEnv",
        max_episode_steps=MAX_EPISODE_STEPS,
    )


def make_env(scenario: str = "mixed", **kwargs: Any) -> gymnasium.Env[Any, Any]:
    """``gymnasium.make(ENV_ID, scenario=scenario, **kwargs)``."""
    return gymnasium.make(ENV_ID, scenario=scenario, **kwargs)


__all__ = [
    "ACTIONS",
    "ACTION_NAMES",
    "ENV_ID",
    "EPISODE_DAYS",
    "KPI_NAMES",
    "KPI_SPECS",
    "MAX_EPISODE_STEPS",
    "N_ACTIONS",
    "N_KPIS",
    "SCENARIOS",
    "SCENARIO_NAMES",
    "BusinessParams",
    "SaaSOpsEnv",
    "action_index",
    "alignment_score",
    "encode",
    "get_scenario",
    "make_env",
]
