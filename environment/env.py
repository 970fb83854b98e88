"""The Gymnasium environment ``autopilot/SaaSOps-v0``."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from environment import dynamics
from environment.actions import ACTION_NAMES, N_ACTIONS, check_action
from environment.kpis import (
    KPI_NAMES,
    OBS_HIGH,
    OBS_LOW,
    encode_vector,
    recent_from_state,
)
from environment.params import BusinessParams
from environment.render import render_ansi, render_rgb
from environment.scenarios import SHOCK_KINDS, get_scenario
from environment.state import BusinessState

Obs = NDArray[np.float32]


class SaaSOpsEnv(gym.Env[Obs, np.int64]):
    """A SaaS business run by one autonomous-operations decision every cycle.

    The hidden state is the business (:class:`~environment.state.BusinessState`): the user
    funnel by signup age, free, paying (basic and pro) and at-risk accounts, the past-due
    payment backlog, data defects and orphaned records, infrastructure capacity and incidents,
    price, marketing mix, message fatigue, features in the pipeline, and cash. Its dynamics are
    pure functions in :mod:`environment.dynamics`; this class only wires spaces, seeding,
    encoding and rendering.

    ## Action Space

    ``Discrete(13)``; the index is the position in :data:`environment.actions.ACTION_NAMES`:

    | index | action | | index | action |
    |---|---|---|---|---|
    | 0 | noop | | 7 | upgrade_prompt |
    | 1 | retention_campaign | | 8 | price_increase |
    | 2 | data_fix | | 9 | price_decrease |
    | 3 | orphan_cleanup | | 10 | scale_infra |
    | 4 | payment_retry | | 11 | shift_marketing |
    | 5 | onboarding_boost | | 12 | ship_feature |
    | 6 | funnel_fix | | | |

    Each action's cost, delay, context and misuse are documented in
    :mod:`environment.dynamics`.

    ## Observation Space

    ``Box(low, 1, (30,), float32)``: the 18 KPIs of :mod:`environment.kpis`, measured with
    sampling noise (shrinking as the base grows), then 12 recent-action entries, and encoded
    into the box:

    | index | KPI | unit | encoding | min | max |
    |---|---|---|---|---|---|
    | 0 | activation_rate | share | x | 0 | 1 |
    | 1 | d7_retention | share | x | 0 | 1 |
    | 2 | signup_to_activation | share | x | 0 | 1 |
    | 3 | conversion_rate | per month | x / (x + 0.05) | 0 | 1 |
    | 4 | ltv_cac | ratio | x / (x + 4) | 0 | 1 |
    | 5 | health_score | 0-100 | x / 100 | 0 | 1 |
    | 6 | alignment_score | 0-100 | x / 100 | 0 | 1 |
    | 7 | data_quality_issue_rate | share | x / (x + 0.02) | 0 | 1 |
    | 8 | orphaned_records | records | x / (x + 2000) | 0 | 1 |
    | 9 | billing_failure_rate | share | x | 0 | 1 |
    | 10 | failed_payment_backlog | share | x / (x + 0.01) | 0 | 1 |
    | 11 | at_risk_share | share | x | 0 | 1 |
    | 12 | message_pressure | per account | x / (x + 1) | 0 | 1 |
    | 13 | mrr | USD/month | x / (x + 250000) | 0 | 1 |
    | 14 | mrr_growth | per month | tanh(x / 0.05) | -1 | 1 |
    | 15 | churn_rate | per month | x / (x + 0.05) | 0 | 1 |
    | 16 | cac | USD | x / (x + 400) | 0 | 1 |
    | 17 | arpa | USD/month | x / (x + 80) | 0 | 1 |

    | 18-29 | cycles_since_<action> | cycles | min(c, 180) / 180 | 0 | 1 |

    Entries 18-29 follow :data:`environment.kpis.RECENT_ACTION_NAMES` (every action but noop):
    the cycles since the action last executed (1: the last step; 180, i.e. 30 days, or more:
    never), so every policy, the rules' cooldowns included, is a function of its observation.

    ``info["kpis"]`` holds the same measured KPIs by name in natural units, ``info["true_kpis"]``
    the noise-free ones.

    ## Rewards

    An operator's objective, defined once in :func:`environment.dynamics.reward`: ``r =
    value_weight * (cash flow + equity_weight * change in customer value) / revenue_scale +
    alignment_weight * alignment / 100 - failure_penalty * [business failed]``. The cash flow is
    revenue (MRR pro rata plus recovered back payments) minus marketing, hosting, payroll and
    the action's cost; the customer value (:func:`environment.dynamics.customer_equity`) is the
    discounted gross profit of the base, valued by segment (engaged, silent, past due, free) and
    net of the churn that fatigue and price shocks will cause, so over-messaging and price
    shocks are charged in the step that causes them. ``revenue_scale`` is one step's revenue
    at the starting size. Alignment is reported (``info["kpis"]["alignment_score"]``), not paid:
    ``alignment_weight`` defaults to 0.

    ## Starting State

    The business after a 120-day burn-in under a clock-driven routine (nightly payment retry,
    weekly data fix and cleanup), each stock perturbed by ~5%; the scenario's shocks are drawn.

    ## Episode End

    ``terminated`` when the business fails: cash below zero, or paying accounts below
    ``failure_paying_share`` (25%) of the start. The horizon is a ``TimeLimit`` of
    ``max_episode_steps`` (540 = 90 days of 4-hour cycles); ``step`` never truncates.

    ## Arguments

    ``gymnasium.make("autopilot/SaaSOps-v0", scenario="mixed", params=None, render_mode=None)``:
    ``scenario`` is a name from :data:`environment.scenarios.SCENARIO_NAMES`, ``params`` a
    mapping of :class:`~environment.params.BusinessParams` overrides.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012 (Gymnasium's API)

    def __init__(
        self,
        scenario: str = "mixed",
        params: dict[str, Any] | BusinessParams | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"unknown render_mode {render_mode!r}; allowed: {self.metadata['render_modes']}"
            )
        self.scenario = get_scenario(scenario)
        self.params = (
            params if isinstance(params, BusinessParams) else BusinessParams.from_overrides(params)
        )
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self._state: BusinessState | None = None
        self._kpis: dict[str, float] = {}
        self._history: list[dict[str, float]] = []

    # --- the Gymnasium API --------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self._state = dynamics.initial(self.params, self.scenario, self.np_random)
        self._history = []
        obs, info = self._observe(self._state)
        return obs, info

    def step(self, action: np.int64 | int) -> tuple[Obs, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        index = check_action(action)
        state = dynamics.transition(self._state, index, self.params, self.np_random)
        self._state = state
        failed = dynamics.terminal(state, self.params)
        obs, info = self._observe(state)
        # The reward reads the true alignment, as planners and tests do: measurement noise
        # belongs to the observation, not to the objective.
        reward = dynamics.reward(state, info["true_kpis"]["alignment_score"], self.params, failed)
        info["action"] = ACTION_NAMES[index]
        info["action_cost"] = state.last_action_cost
        return obs, reward, failed, False, info

    def render(self) -> str | NDArray[np.uint8] | None:
        if self.render_mode is None or self._state is None:
            return None
        if self.render_mode == "ansi":
            return render_ansi(self._kpis, self._state.t, self.params.steps_per_day)
        return render_rgb(self._history)

    # --- planning support ---------------------------------------------------------------------

    def get_state(self) -> BusinessState:
        """A copy of the full hidden state (the RNG's state is not included)."""
        if self._state is None:
            raise RuntimeError("call reset() before get_state()")
        return self._state.copy()

    def set_state(self, state: BusinessState) -> None:
        """Restore a state from :meth:`get_state`; later steps continue from it."""
        if not isinstance(state, BusinessState):
            raise TypeError(f"set_state expects a BusinessState, got {type(state).__name__}")
        self._state = state.copy()
        self._kpis = dynamics.true_kpis(self._state, self.params)

    @property
    def state(self) -> BusinessState:
        """The current hidden state (read-only by convention; use get_state for a copy)."""
        if self._state is None:
            raise RuntimeError("call reset() before reading the state")
        return self._state

    def active_shocks(self) -> list[str]:
        """Names of the shocks active at the current step."""
        levels = dynamics.shock_levels(self.state.shocks, self.state.t)
        return [kind for kind, level in zip(SHOCK_KINDS, levels, strict=True) if level > 0]

    # --- helpers ------------------------------------------------------------------------------

    def _observe(self, state: BusinessState) -> tuple[Obs, dict[str, Any]]:
        measured, truth = dynamics.measured_kpis(state, self.params, self.np_random)
        kpis = dict(zip(KPI_NAMES, measured, strict=True))
        self._kpis = kpis
        if self.render_mode == "rgb_array":
            self._history.append(kpis)
        info: dict[str, Any] = {"kpis": kpis, "true_kpis": truth, "cash": state.cash}
        return encode_vector(measured, recent_from_state(state.cycles_since)), info


__all__ = ["KPI_NAMES", "SaaSOpsEnv"]
