"""The hidden state of the simulated business.

A plain record of numbers (no behaviour but copying). :mod:`environment.dynamics` reads one
state and returns a new one; a state handed out by the environment is never mutated afterwards,
so ``get_state()`` / ``set_state()`` round-trip exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter

from environment.scenarios import Shock

COHORT_DAYS = 7
"""Trial cohorts are tracked by day of age 0..6; on day 7 a cohort matures."""
MATURED_WINDOW = 7
"""Matured cohorts kept for D7 retention and signup-to-activation (signed up 8-14 days ago)."""
MONTH_DAYS = 30
"""Length of the trailing monthly windows."""
WEEK_DAYS = 7


@dataclass(slots=True, eq=True)
class BusinessState:
    """Everything the simulator knows; accounts are counted as (fractional) expected numbers."""

    t: int
    """Steps since the episode started."""
    # --- funnel -------------------------------------------------------------------------------
    trial_pending: tuple[float, ...]
    """Signups not yet activated, by day of age 0..6."""
    trial_activated: tuple[float, ...]
    """Signups activated within their first week, by day of age 0..6."""
    matured_signups: tuple[float, ...]
    """Signups of the last ``MATURED_WINDOW`` matured cohorts, oldest first."""
    matured_activated: tuple[float, ...]
    """Of those, activated within 7 days."""
    matured_retained: tuple[float, ...]
    """Of those, seen again on day 7."""
    unactivated: float
    """Accounts past their first week that never activated but still come back now and then."""
    active_free: float
    """Activated, free, engaged accounts."""
    at_risk_free: float
    """Activated free accounts silent for 14 days."""
    paying_basic: float
    """Paying accounts in good standing on the basic plan (silent ones included)."""
    paying_pro: float
    """Paying accounts in good standing on the pro plan (silent ones included)."""
    at_risk_paying: float
    """Paying accounts silent for 14 days (a subset of the two above)."""
    failed_payments: float
    """Past-due accounts whose payment failed and awaits retry."""
    churned: float
    """Accounts lost since the start (at-risk free, voluntary and involuntary paying)."""
    paying_at_start: float
    """Paying accounts at the start of the episode (for the failure condition)."""
    # --- trailing windows: ``*_today`` accumulates, ``*_days`` holds whole days, oldest first --
    conversions_today: float
    conversions_days: tuple[float, ...]
    paying_churn_today: float
    paying_churn_days: tuple[float, ...]
    messages_today: float
    messages_days: tuple[float, ...]
    mrr_days: tuple[float, ...]
    """MRR at the end of each of the last ``MONTH_DAYS + 1`` days."""
    billing_attempts_ema: float
    """Billing attempts per day, exponentially averaged over about a day."""
    billing_failures_ema: float
    # --- billing, data, infrastructure -----------------------------------------------------
    retry_pressure: float
    """Retry rounds in the last ~2 days (decaying count)."""
    defects: float
    """Defective records."""
    orphans: float
    """Records whose account is gone."""
    capacity: float
    """Infrastructure capacity in load units."""
    infra_cost_level: float
    """Hosting cost relative to the start."""
    incident: float
    """Severity of the ongoing incident, 0 (none) to 1 (down)."""
    # --- levers and their memory ------------------------------------------------------------
    price_level: float
    """List price relative to the start."""
    price_shock: float
    """Fresh, decaying churn pressure from price increases."""
    channel_mix: float
    """Share of marketing spend on targeted, high-intent channels."""
    fatigue: float
    """Message fatigue of the audience (decays)."""
    onboarding: float
    """Activation hazard lift from onboarding boosts (decays)."""
    funnel_quality: float
    """0-1: how leak-free the signup and activation funnel is."""
    feature_level: float
    """0-1: the value of shipped features (decays)."""
    prompt_readiness: float
    """0-1: how much of the audience's readiness to upgrade is left; a prompt uses the share
    it reaches, and readiness refills over ``prompt_refill_days``."""
    pushed_pro: float
    """Pro accounts that a prompt pushed and that will downgrade again (a subset of
    ``paying_pro``)."""
    pending: tuple[tuple[int, int], ...]
    """Delayed effects as (due step, action index), by due step."""
    recent_use: tuple[float, ...]
    """Per action, a decaying count of recent uses (diminishing returns)."""
    cycles_since: tuple[int, ...]
    """Per action index, steps since it last executed (1: in the last step), capped at
    :data:`environment.kpis.RECENT_HORIZON_CYCLES` ("never"); the observation carries it."""
    # --- money and the scenario -------------------------------------------------------------
    cash: float
    """USD in the bank."""
    last_revenue: float
    """Revenue collected in the last step (USD)."""
    last_costs: float
    """Operating costs of the last step, action costs included (USD)."""
    last_action_cost: float
    """Cost of the action taken in the last step (USD)."""
    customer_equity: float
    """Lifetime gross profit of the paying base (USD; see ``customer_equity``)."""
    last_equity_change: float
    """Change of ``customer_equity`` in the last step (USD)."""
    shocks: tuple[Shock, ...]
    """This episode's shocks."""

    def copy(self) -> BusinessState:
        """A shallow copy; every field is a number or a tuple, so it is independent."""
        return BusinessState(*_ALL_FIELDS(self))

    @property
    def paying(self) -> float:
        """Paying accounts in good standing."""
        return self.paying_basic + self.paying_pro

    @property
    def trial(self) -> float:
        """Accounts in their first week."""
        return sum(self.trial_pending) + sum(self.trial_activated)

    @property
    def living_accounts(self) -> float:
        """Every account not churned (past-due ones included)."""
        return (
            self.trial
            + self.unactivated
            + self.active_free
            + self.at_risk_free
            + self.paying
            + self.failed_payments
        )


_ALL_FIELDS = attrgetter(*(f.name for f in fields(BusinessState)))
