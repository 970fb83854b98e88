"""Materialize a simulated business into the product database.

The simulator counts accounts as (fractional) expected numbers in segments; this module runs it
day by day and keeps a population of individual accounts whose segment counts and daily flows
follow it, then writes their rows: users, events, workflows, suggestions, subscriptions,
billing events, usage metrics, outbox messages, archived orphans, audit entries and settings.

How the individuals follow the aggregates (all counts are rounded stochastically, so their
expectations equal the simulator's numbers):

- **Scale.** The business is scaled so that its living accounts at the start number
  ``users``: visitors, starting customers, marketing and costs are multiplied by one factor, so
  every ratio KPI keeps its value and every count KPI scales with it.
- **Start.** The starting state is written with a backdated history: the trial cohorts by day
  of age and the seven matured cohorts (their activation and day-7 return), the unactivated,
  active and at-risk accounts, paying accounts with the month of conversions and of churn
  before the start, the past-due backlog, 30 days of marketing spend.
- **Each day**, from the simulator's state before and after it: the day's signups and every
  trial cohort's activations (exact per cohort), day-7 returns when a cohort matures (with the
  simulator's return probabilities), conversions and paying churn (exact daily windows), free
  churn (total churn minus paying churn), every charge of accounts whose monthly billing day it
  is, failing with the simulator's failure ratio of that 4-hour step (recovered from its
  trailing average), the past-due backlog recovering or expiring towards the simulator's
  backlog, unactivated accounts leaving or activating late towards its stock, accounts going
  silent and coming back towards its at-risk stocks, and the messages its actions sent.
- **Silence** is written as it will be measured: an account that becomes at risk on day ``d``
  was last seen just over 14 days before the end of ``d``; engaged accounts are seen within the
  last 14 days.
- **At the end**, records (events, workflows, suggestions, billing events, users) number about
  ``records_per_account`` per living account plus the orphans, as in the simulator; the
  simulator's orphans are left behind by the latest churned accounts (and, if there are too
  few, by accounts hard-deleted long ago); its defects are spread over realistic kinds (NULL
  and malformed emails, duplicate users, unknown event types, future timestamps, missing
  workflow names, invalid confidences, negative amounts, activation before signup).

The routine policy is the simulator's pre-autopilot routine (nightly payment retry, weekly data
fix and orphan cleanup) plus a weekly win-back campaign, so that the outbox has messages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, Table, delete, func, insert, select, text
from sqlalchemy.orm import Session
from tqdm import tqdm

import environment
from agent import audit
from agent.db import check_schema
from agent.models import (
    PLANS,
    Archive,
    AuditLog,
    Base,
    BillingEvent,
    Event,
    Outbox,
    Setting,
    Subscription,
    Suggestion,
    UsageMetric,
    User,
    Workflow,
)
from agent.observe import MARKETING_METRIC
from environment import actions as A
from environment.dynamics import EMA_DAY, steady_start, system_health, true_kpis
from environment.dynamics import routine_action as clock_routine
from environment.params import BusinessParams
from environment.scenarios import SCENARIO_NAMES
from environment.state import BusinessState

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]

MAX_USERS = 5_000_000
MAX_DAYS = 365
SCALED_PARAMS = (
    "visitors_per_day",
    "initial_paying",
    "marketing_per_day",
    "fixed_costs_per_month",
    "infra_cost_per_month",
    "initial_cash",
    "action_cost_scale",
)
"""Parameters in accounts or dollars: scaling them all by one factor scales the business."""
CAMPAIGN_WEEKDAY = 1
"""Day of the week (day index mod 7) of the routine win-back campaign, sent at 08:00."""

# Segments of an individual account.
TRIAL, UNACT, FREE, RISK_FREE, PAY, RISK_PAY, PAST_DUE, CHURNED, LEFT = range(9)
_PLAN_NAMES = tuple(PLANS)
_BASIC, _PRO = 0, 1

FIRST_WEEK_SIGNALS = ("integration_connected", "teammate_invited", "template_used")
"""Events that accounts who go on to be engaged do more often in their first week."""
_EVENT_WEIGHTS = {
    "logged_in": 30,
    "workflow_created": 6,
    "workflow_run": 25,
    "workflow_succeeded": 12,
    "workflow_failed": 3,
    "integration_connected": 1,
    "teammate_invited": 1,
    "template_used": 2,
    "suggestion_shown": 6,
    "suggestion_accepted": 2,
    "report_viewed": 8,
    "upgrade_viewed": 1,
    "settings_changed": 3,
}
_GARBAGE_EVENT_TYPES = ("LOGIN", "wf_run_v0", "pageview", "", "null", "workflow.run")
_MALFORMED_EMAILS = ("{}", "{}@", "@{}.com", "{} @example.com", "{}example.com", "{}@example")
REPAIRABLE_SHARE = BusinessParams().data_fix_share
"""Share of defects a data fix can repair, as in the simulator (``data_fix_share``): they are
event types a client sent in the wrong case and padded (:func:`unnormalized_event_type`),
which ``data_fix`` normalizes; the other defects are spread over :data:`_DEFECT_SHARES`."""
_DEFECT_SHARES = {
    "unknown_event_type": 0.34,
    "future_timestamp": 0.10,
    "missing_workflow_name": 0.15,
    "null_email": 0.10,
    "malformed_email": 0.10,
    "duplicate_user": 0.08,
    "invalid_confidence": 0.05,
    "negative_amount": 0.04,
    "activation_before_signup": 0.04,
}


@dataclass(frozen=True)
class SeedConfig:
    """What to materialize.

    - ``users``: living accounts of the business at the start (the simulator is scaled to it).
    - ``days``: simulated days written after the start (the history before is backdated).
    - ``scenario``: a name from :data:`environment.scenarios.SCENARIO_NAMES`.
    - ``seed``: seeds the simulator and the sampling of individuals; same seed, same rows.
    - ``end``: when the simulated history ends (the natural ``as_of``); default: now, UTC,
      rounded down to the hour.
    - ``defects``: write the simulator's defects and orphans (``False``: a clean database).
    - ``batch_size``: rows per ``INSERT ... executemany``.
    """

    users: int
    days: int
    scenario: str = "steady"
    seed: int = 0
    end: datetime | None = None
    defects: bool = True
    batch_size: int = 20_000

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("users", self.users, 100, MAX_USERS),
            ("days", self.days, 1, MAX_DAYS),
            ("seed", self.seed, 0, 2**63 - 1),
            ("batch_size", self.batch_size, 1, 1_000_000),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{name}={value} is outside [{low}, {high}]")
        if self.scenario not in SCENARIO_NAMES:
            raise ValueError(f"unknown scenario {self.scenario!r}; allowed: {list(SCENARIO_NAMES)}")
        if self.end is not None and not isinstance(self.end, datetime):
            raise ValueError(f"end must be a datetime, got {self.end!r}")

    @property
    def end_time(self) -> datetime:
        """``end`` as naive UTC (default: this hour)."""
        if self.end is None:
            return datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
        if self.end.tzinfo is not None:
            return self.end.astimezone(UTC).replace(tzinfo=None)
        return self.end


@dataclass
class SeedResult:
    """What was written: ``as_of`` is the end of the history, ``true_kpis`` the simulator's
    noise-free KPIs then, ``state`` its final state, ``rows`` the rows per table."""

    start: datetime
    as_of: datetime
    params: BusinessParams
    scale: float
    true_kpis: dict[str, float]
    state: BusinessState
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def scaled_params(users: int) -> tuple[BusinessParams, float]:
    """Default parameters scaled so that the steady business has ``users`` living accounts."""
    base = BusinessParams()
    factor = users / steady_start(base).living_accounts
    overrides = {name: getattr(base, name) * factor for name in SCALED_PARAMS}
    return BusinessParams.from_overrides(overrides), factor


def routine_action(t: int, p: BusinessParams) -> int:
    """The seeding policy: the simulator's routine plus a weekly win-back campaign."""
    day, step = divmod(t, p.steps_per_day)
    if day % 7 == CAMPAIGN_WEEKDAY and step == 2:
        return A.RETENTION_CAMPAIGN
    return clock_routine(t, p)


# --- the population of individual accounts ------------------------------------------------


class _Population:
    """Individual accounts as parallel arrays, grown as signups arrive."""

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.signup = np.zeros(capacity)
        self.activated = np.full(capacity, np.nan)
        self.seg = np.zeros(capacity, dtype=np.int8)
        self.engaged_since = np.zeros(capacity)
        """Latest moment the account was certainly active (events are written up to here)."""
        self.last_seen = np.full(capacity, np.nan)
        """Set when the account goes silent; otherwise chosen at the end."""
        self.deleted = np.full(capacity, np.nan)
        self.retained = np.zeros(capacity, dtype=np.int8)
        """1: seen on day 7 (at ``return_at``); 0: not; -1: not determined (old accounts)."""
        self.return_at = np.full(capacity, np.nan)
        self.sub = np.full(capacity, -1, dtype=np.int64)
        self.resume_seg = np.zeros(capacity, dtype=np.int8)
        """Segment a past-due account returns to when its payment is recovered."""

    def add(self, signup: Floats, seg: int) -> Ints:
        count = len(signup)
        while self.n + count > len(self.signup):
            self._grow()
        index = np.arange(self.n, self.n + count)
        self.signup[index] = signup
        self.seg[index] = seg
        self.engaged_since[index] = signup
        self.retained[index] = -1
        self.n += count
        return index

    def _grow(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                extra = np.full_like(value, _FILL.get(name, 0))
                setattr(self, name, np.concatenate([value, extra]))

    def members(self, seg: int) -> Ints:
        return np.flatnonzero(self.seg[: self.n] == seg)


_FILL: dict[str, Any] = {
    "activated": np.nan,
    "last_seen": np.nan,
    "deleted": np.nan,
    "return_at": np.nan,
    "sub": -1,
}


@dataclass
class _Ledger:
    """Rows other than users and events, collected while simulating (times in days)."""

    sub_user: list[int] = field(default_factory=list)
    sub_plan: list[int] = field(default_factory=list)
    sub_start: list[float] = field(default_factory=list)
    sub_end: list[float] = field(default_factory=list)
    sub_end_reason: list[str | None] = field(default_factory=list)
    bill_sub: list[int] = field(default_factory=list)
    bill_kind: list[str] = field(default_factory=list)
    bill_status: list[str] = field(default_factory=list)
    bill_amount: list[float] = field(default_factory=list)
    bill_time: list[float] = field(default_factory=list)
    bill_resolved: list[float] = field(default_factory=list)
    bill_resolution: list[str | None] = field(default_factory=list)
    open_failure: dict[int, int] = field(default_factory=dict)
    """Subscription -> its unresolved failed charge (index into the bill lists)."""
    outbox: list[tuple[float, str, Ints]] = field(default_factory=list)
    metrics: list[tuple[str, float, float]] = field(default_factory=list)
    settings: list[tuple[str, Any, float]] = field(default_factory=list)
    actions: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    archived: list[tuple[float, int]] = field(default_factory=list)

    def subscribe(self, user: int, plan: int, start: float) -> int:
        self.sub_user.append(user)
        self.sub_plan.append(plan)
        self.sub_start.append(start)
        self.sub_end.append(math.nan)
        self.sub_end_reason.append(None)
        return len(self.sub_user) - 1

    def bill(
        self,
        sub: int,
        kind: str,
        status: str,
        amount: float,
        at: float,
        resolved: float = math.nan,
        resolution: str | None = None,
    ) -> int:
        self.bill_sub.append(sub)
        self.bill_kind.append(kind)
        self.bill_status.append(status)
        self.bill_amount.append(amount)
        self.bill_time.append(at)
        self.bill_resolved.append(resolved)
        self.bill_resolution.append(resolution)
        return len(self.bill_sub) - 1


def paying_losses(old: BusinessState, new: BusinessState, p: BusinessParams) -> tuple[float, float]:
    """The paying accounts the simulator lost over one day (``old`` -> ``new``, whose last
    whole day is that one), split as the database records them: ``(involuntary,
    voluntary)``. Involuntary: past-due accounts whose payment expired, the day's mean
    backlog over ``failed_payment_expiry_days`` (the simulator's expiry rate); voluntary, the
    rest (silent accounts churning, cancellations after a price rise or too many retries)."""
    paying_lost = new.paying_churn_days[-1]
    backlog = 0.5 * (old.failed_payments + new.failed_payments)
    involuntary = min(backlog / p.failed_payment_expiry_days, paying_lost)
    return involuntary, paying_lost - involuntary


def stochastic_round(rng: np.random.Generator, expected: float) -> int:
    """An integer whose expectation is ``max(expected, 0)`` (its floor, plus one with the
    probability of the fractional part)."""
    expected = max(float(expected), 0.0)
    whole = math.floor(expected)
    return whole + int(rng.random() < expected - whole)


class _Materializer:
    """Runs the simulator day by day and keeps the population in step with it."""

    def __init__(self, config: SeedConfig, params: BusinessParams) -> None:
        self.config = config
        self.p = params
        self.rng = np.random.default_rng(config.seed)
        self.env = gymnasium.make(environment.ENV_ID, scenario=config.scenario, params=params)
        self.env.reset(seed=config.seed)
        self.sim: Any = self.env.unwrapped
        self.pop = _Population(int(config.users * 1.5) + 1000)
        self.ledger = _Ledger()
        self.cohorts: dict[int, Ints] = {}
        self.price_level = 1.0
        self.initial_price_level = 1.0

    # --- helpers ------------------------------------------------------------------------

    def count(self, expected: float) -> int:
        """:func:`stochastic_round` with this builder's generator."""
        return stochastic_round(self.rng, expected)

    def pick(self, candidates: Ints, k: int) -> Ints:
        k = min(k, len(candidates))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        return self.rng.choice(candidates, size=k, replace=False)

    def within(self, day: float, k: int) -> Floats:
        """``k`` uniform times within day ``day``."""
        return day + self.rng.random(k)

    def price(self, plan: int) -> float:
        return round(PLANS[_PLAN_NAMES[plan]] * self.price_level, 2)

    def new_plan(self, k: int) -> Ints:
        return (self.rng.random(k) < self.p.pro_share).astype(np.int64)

    # --- the backdated start ------------------------------------------------------------

    def materialize_start(self, s: BusinessState) -> None:
        p, rng, pop = self.p, self.rng, self.pop
        self.price_level = self.initial_price_level = s.price_level
        # trial cohorts by day of age (index a signed up on day -a)
        for age in range(1, len(s.trial_pending)):
            total = self.count(s.trial_pending[age] + s.trial_activated[age])
            members = pop.add(self.within(-age, total), TRIAL)
            self.cohorts[-age] = members
            done = self.pick(members, self.count(s.trial_activated[age]))
            span = -pop.signup[done]
            pop.activated[done] = pop.signup[done] + span * rng.random(len(done)) ** 2
            pop.engaged_since[done] = pop.activated[done]
        # matured cohorts (signed up on days -13 .. -7) are part of the older stocks
        matured_free = matured_unact = 0
        for j in range(len(s.matured_signups)):
            day = -13 + j
            members = pop.add(self.within(day, self.count(s.matured_signups[j])), UNACT)
            done = self.pick(members, self.count(s.matured_activated[j]))
            pop.activated[done] = pop.signup[done] + 7.0 * rng.random(len(done)) ** 2
            pop.seg[done] = FREE
            self._decide_return(
                members, s.matured_signups[j], s.matured_activated[j], s.matured_retained[j]
            )
            matured_free += len(done)
            matured_unact += len(members) - len(done)
        # older unactivated, active and at-risk free accounts
        unact = pop.add(
            -14.0 - rng.exponential(100.0, self.count(s.unactivated - matured_unact)), UNACT
        )
        pop.engaged_since[unact] = pop.signup[unact]
        free = pop.add(
            -14.0 - rng.exponential(120.0, self.count(s.active_free - matured_free)), FREE
        )
        self._activate_old(free)
        risk = pop.add(-28.0 - rng.exponential(120.0, self.count(s.at_risk_free)), RISK_FREE)
        self._activate_old(risk)
        pop.last_seen[risk] = np.maximum(
            pop.activated[risk], -14.0 - rng.exponential(20.0, len(risk))
        )
        # paying accounts: the month of conversions, then older ones
        n_paying = self.count(s.paying)
        starts: list[float] = []
        for i, converted in enumerate(s.conversions_days):
            starts.extend(self.within(-len(s.conversions_days) + i, self.count(converted)))
        starts = starts[:n_paying]
        starts.extend(-30.0 - rng.exponential(300.0, n_paying - len(starts)))
        start = np.array(starts)
        paying = pop.add(start - 7.0 - rng.exponential(45.0, len(start)), PAY)
        self._activate_old(paying, before=start)
        plans = np.zeros(len(paying), dtype=np.int64)
        plans[self.pick(np.arange(len(paying)), self.count(s.paying_pro))] = _PRO
        for user, plan, began in zip(paying, plans, start, strict=True):
            pop.sub[user] = self.ledger.subscribe(int(user), int(plan), float(began))
            pop.engaged_since[user] = max(began, pop.engaged_since[user])
        silent = self.pick(paying[start <= -15.0], self.count(s.at_risk_paying))
        pop.seg[silent] = RISK_PAY
        pop.last_seen[silent] = np.maximum(
            start[np.searchsorted(paying, silent)], -14.0 - rng.exponential(15.0, len(silent))
        )
        # the past-due backlog: a charge failed on the monthly billing day in the last 2 weeks
        backlog = pop.add(np.zeros(self.count(s.failed_payments)), PAST_DUE)
        failed_at = -rng.uniform(0.1, 14.0, len(backlog))
        months = 1 + rng.geometric(0.1, len(backlog))
        began = np.floor(failed_at) - 30.0 * months + rng.random(len(backlog))
        pop.signup[backlog] = began - 7.0 - rng.exponential(45.0, len(backlog))
        self._activate_old(backlog, before=began)
        for user, at, b in zip(backlog, failed_at, began, strict=True):
            sub = self.ledger.subscribe(int(user), int(self.new_plan(1)[0]), float(b))
            pop.sub[user] = sub
            pop.resume_seg[user] = PAY
            self.ledger.open_failure[sub] = self.ledger.bill(
                sub, "charge", "failed", self.price(self.ledger.sub_plan[sub]), float(at)
            )
        # charges of the last two months of everyone in good standing or past due
        for user in np.concatenate([paying, backlog]):
            sub = int(pop.sub[user])
            first = self.ledger.sub_start[sub]
            at = first + 30.0 * math.ceil(max(-60.0 - first, 0.0) / 30.0)
            while at < 0.0:
                if (
                    sub not in self.ledger.open_failure
                    or at < self.ledger.bill_time[self.ledger.open_failure[sub]] - 1
                ):
                    self.ledger.bill(
                        sub, "charge", "succeeded", self.price(self.ledger.sub_plan[sub]), at
                    )
                at += 30.0
        # paying churn of the month before the start, split as the backlog's expiry and the
        # at-risk churn imply
        expiring = s.failed_payments / p.failed_payment_expiry_days
        voluntary = s.at_risk_paying * p.at_risk_churn_per_month / 30.0
        involuntary_share = expiring / max(expiring + voluntary, 1e-9)
        for i, lost in enumerate(s.paying_churn_days):
            n = self.count(lost)
            ended = self.within(-len(s.paying_churn_days) + i, n)
            began_at = ended - 30.0 - rng.exponential(200.0, n)
            users = pop.add(began_at - 7.0 - rng.exponential(45.0, n), CHURNED)
            self._activate_old(users, before=began_at)
            for user, b, e in zip(users, began_at, ended, strict=True):
                sub = self.ledger.subscribe(int(user), int(self.new_plan(1)[0]), float(b))
                pop.sub[user] = sub
                pop.deleted[user] = e
                involuntary = rng.random() < involuntary_share
                self.ledger.sub_end[sub] = float(e)
                self.ledger.sub_end_reason[sub] = "payment_failed" if involuntary else "canceled"
                if involuntary:
                    self.ledger.bill(
                        sub,
                        "charge",
                        "failed",
                        self.price(self.ledger.sub_plan[sub]),
                        float(e - rng.uniform(1.0, 14.0)),
                        float(e),
                        "expired",
                    )
                pop.last_seen[user] = e - (0.0 if involuntary else 14.0 + rng.exponential(10.0))
        for i in range(30):
            self.ledger.metrics.append((MARKETING_METRIC, -30.0 + i + 1.0, p.marketing_per_day))
        self._record_health(s, 0.0)

    def _activate_old(self, users: Ints, before: Floats | None = None) -> None:
        """Accounts that activated long ago: soon after signup (before ``before``)."""
        rng, pop = self.rng, self.pop
        activated = pop.signup[users] + rng.exponential(2.0, len(users))
        if before is not None:
            activated = np.minimum(activated, before - 0.01)
        pop.activated[users] = np.maximum(activated, pop.signup[users])
        pop.engaged_since[users] = pop.activated[users]

    def _decide_return(
        self, members: Ints, signups: float, activated: float, retained: float
    ) -> None:
        """Day-7 returns of a maturing cohort with the simulator's probabilities."""
        pop, p = self.pop, self.p
        base = p.d7_return_activated * activated + p.d7_return_unactivated * (signups - activated)
        scale = retained / base if base > 0 else 0.0
        chance = np.where(
            np.isnan(pop.activated[members]),
            p.d7_return_unactivated * scale,
            p.d7_return_activated * scale,
        )
        back = self.rng.random(len(members)) < chance
        pop.retained[members] = back.astype(np.int8)
        at = pop.signup[members] + 7.0 + self.rng.random(len(members))
        pop.return_at[members] = np.where(back, at, np.nan)
        was = pop.engaged_since[members]
        pop.engaged_since[members] = np.where(back, np.maximum(was, at), was)

    def _record_health(self, s: BusinessState, at: float) -> None:
        """Monitoring at time ``at``: the simulator's error rate, latency and failed jobs."""
        for name, value in health_metrics(s, self.p):
            self.ledger.metrics.append((name, at, value))

    # --- one simulated day --------------------------------------------------------------

    def run_day(self, day: int) -> None:
        p, sim, ledger = self.p, self.sim, self.ledger
        old: BusinessState = sim.state.copy()
        steps: list[tuple[int, float, float, BusinessState, BusinessState]] = []
        for k in range(p.steps_per_day):
            before = sim.state.copy()
            action = routine_action(before.t, p)
            sim.step(action)
            after: BusinessState = sim.state.copy()
            attempts = (
                p.dt_days * before.billing_attempts_ema
                + (after.billing_attempts_ema - before.billing_attempts_ema) * EMA_DAY
            )
            failures = (
                p.dt_days * before.billing_failures_ema
                + (after.billing_failures_ema - before.billing_failures_ema) * EMA_DAY
            )
            steps.append((action, attempts, failures, before, after))
            at = day + (k + 1) / p.steps_per_day
            self._record_health(after, at)
            if action != A.NOOP:
                ledger.actions.append(
                    (day + k / p.steps_per_day, A.ACTION_NAMES[action], {"step": before.t})
                )
            if action == A.ORPHAN_CLEANUP:
                added = p.orphans_per_churned * (after.churned - before.churned)
                ledger.archived.append((at, self.count(before.orphans + added - after.orphans)))
            if after.price_level != before.price_level:
                self.price_level = after.price_level
                ledger.settings.append(("price_level", after.price_level, at))
        new: BusinessState = sim.state.copy()
        ledger.metrics.append((MARKETING_METRIC, day + 1.0, p.marketing_per_day))
        self._trials(day, old, new)
        self._conversions(day, new)
        self._billing(day, steps)
        self._churn(day, old, new)
        self._past_due(day, new, steps)
        self._unactivated(day, old, new)
        self._silence(
            day,
            FREE,
            RISK_FREE,
            old.at_risk_free,
            new.at_risk_free,
            0.5 * (old.active_free + new.active_free) * p.free_at_risk_per_month / 30.0,
        )
        engaged = 0.5 * (old.paying - old.at_risk_paying + new.paying - new.at_risk_paying)
        self._silence(
            day,
            PAY,
            RISK_PAY,
            old.at_risk_paying,
            new.at_risk_paying,
            engaged * p.paying_at_risk_per_month / 30.0,
        )
        self._messages(day, steps)

    def _trials(self, day: int, old: BusinessState, new: BusinessState) -> None:
        pop, rng = self.pop, self.rng
        signups = self.count(new.trial_pending[1] + new.trial_activated[1])
        self.cohorts[day] = pop.add(self.within(day, signups), TRIAL)
        last = len(old.trial_activated) - 1
        for age in range(last + 1):
            members = self.cohorts.get(day - age)
            if members is None:
                continue
            if age < last:
                expected = new.trial_activated[age + 1] - old.trial_activated[age]
            else:
                expected = new.matured_activated[-1] - old.trial_activated[age]
            pending = members[np.isnan(pop.activated[members])]
            done = self.pick(pending, self.count(expected))
            start = np.maximum(pop.signup[done], float(day))
            pop.activated[done] = start + (day + 1.0 - start) * rng.random(len(done))
            pop.engaged_since[done] = pop.activated[done]
        maturing = self.cohorts.pop(day - last, None)
        if maturing is not None:
            self._decide_return(
                maturing,
                new.matured_signups[-1],
                new.matured_activated[-1],
                new.matured_retained[-1],
            )
            pop.seg[maturing] = np.where(np.isnan(pop.activated[maturing]), UNACT, FREE)

    def _conversions(self, day: int, new: BusinessState) -> None:
        pop = self.pop
        chosen = self.pick(pop.members(FREE), self.count(new.conversions_days[-1]))
        starts = self.within(day, len(chosen))
        for user, start, plan in zip(chosen, starts, self.new_plan(len(chosen)), strict=True):
            pop.sub[user] = self.ledger.subscribe(int(user), int(plan), float(start))
            pop.engaged_since[user] = start
        pop.seg[chosen] = PAY

    def _billing(self, day: int, steps: Sequence[tuple[int, float, float, Any, Any]]) -> None:
        """Charges of every account whose monthly billing day it is; a charge in step ``k``
        fails with that step's failure ratio."""
        pop, ledger, rng = self.pop, self.ledger, self.rng
        ratio = [f / a if a > 0 else 0.0 for _, a, f, _, _ in steps]
        billed = np.concatenate([pop.members(PAY), pop.members(RISK_PAY)])
        subs = pop.sub[billed]
        starts = np.array([ledger.sub_start[s] for s in subs]) if len(subs) else np.empty(0)
        due = (np.floor(starts) <= day) & ((day - np.floor(starts)) % 30 == 0)
        for user, sub, start in zip(billed[due], subs[due], starts[due], strict=True):
            at = float(start) if start >= day else float(day + rng.random())
            step = min(int((at - day) * len(ratio)), len(ratio) - 1)
            amount = self.price(ledger.sub_plan[sub])
            if rng.random() < ratio[step]:
                ledger.open_failure[int(sub)] = ledger.bill(
                    int(sub), "charge", "failed", amount, at
                )
                pop.resume_seg[user] = pop.seg[user]
                pop.seg[user] = PAST_DUE
            else:
                ledger.bill(int(sub), "charge", "succeeded", amount, at)

    def _end_subscription(self, user: int, at: float, reason: str) -> None:
        pop, ledger = self.pop, self.ledger
        sub = int(pop.sub[user])
        ledger.sub_end[sub] = at
        ledger.sub_end_reason[sub] = reason
        failure = ledger.open_failure.pop(sub, None)
        if failure is not None:
            ledger.bill_resolved[failure] = at
            ledger.bill_resolution[failure] = (
                "expired" if reason == "payment_failed" else "canceled"
            )

    def _churn(self, day: int, old: BusinessState, new: BusinessState) -> None:
        pop, p, ledger = self.pop, self.p, self.ledger
        involuntary, voluntary = paying_losses(old, new, p)
        paying_lost = involuntary + voluntary
        for seg, expected, reason in (
            (PAST_DUE, involuntary, "payment_failed"),
            (RISK_PAY, voluntary, "canceled"),
        ):
            for user in self.pick(pop.members(seg), self.count(expected)):
                at = day + self.rng.random()
                if seg == PAST_DUE:
                    failed_at = ledger.bill_time[ledger.open_failure[int(pop.sub[user])]]
                    at = max(at, failed_at + 0.01)
                self._end_subscription(int(user), at, reason)
                pop.deleted[user] = at
                pop.seg[user] = CHURNED
        free_lost = (new.churned - old.churned) - paying_lost
        gone = self.pick(pop.members(RISK_FREE), self.count(free_lost))
        pop.deleted[gone] = self.within(day, len(gone))
        pop.seg[gone] = CHURNED

    def _past_due(
        self, day: int, new: BusinessState, steps: Sequence[tuple[int, float, float, Any, Any]]
    ) -> None:
        """Recover past-due accounts down to the simulator's backlog; retry rounds write a
        retry per past-due subscription."""
        pop, ledger, rng = self.pop, self.ledger, self.rng
        retries = [
            day + k / len(steps) + 0.01
            for k, step in enumerate(steps)
            if step[0] == A.PAYMENT_RETRY
        ]
        backlog = pop.members(PAST_DUE)
        recovered = self.pick(backlog, len(backlog) - self.count(new.failed_payments))
        recovered_set = set(recovered.tolist())
        for round_at in retries:
            for user in backlog:
                sub = int(pop.sub[user])
                failure = ledger.open_failure.get(sub)
                if failure is None or ledger.bill_time[failure] >= round_at:
                    continue
                if int(user) in recovered_set:
                    continue
                ledger.bill(sub, "retry", "failed", ledger.bill_amount[failure], round_at)
        for user in recovered:
            sub = int(pop.sub[user])
            failure = ledger.open_failure.pop(sub)
            failed_at = ledger.bill_time[failure]
            later = [r for r in retries if r > failed_at]
            if later:
                at, kind, resolution = later[0], "retry", "retried"
            else:
                at = max(day + rng.random(), failed_at + 0.01)
                kind, resolution = "charge", "recovered"
            ledger.bill(sub, kind, "succeeded", ledger.bill_amount[failure], at)
            ledger.bill_resolved[failure] = at
            ledger.bill_resolution[failure] = resolution
            pop.seg[user] = pop.resume_seg[user]

    def _unactivated(self, day: int, old: BusinessState, new: BusinessState) -> None:
        pop, p = self.pop, self.p
        members = pop.members(UNACT)
        excess = len(members) - self.count(new.unactivated)
        if excess <= 0:
            return
        leaving = 0.5 * (old.unactivated + new.unactivated) * p.unactivated_leave_per_day
        # accounts still in a measured cohort (younger than 15 days) do not leave yet
        settled = members[pop.signup[members] <= day - 15]
        gone = self.pick(settled, min(excess, self.count(leaving)))
        pop.deleted[gone] = self.within(day, len(gone))
        pop.seg[gone] = LEFT
        late = self.pick(np.setdiff1d(members, gone), excess - len(gone))
        pop.activated[late] = self.within(day, len(late))
        pop.engaged_since[late] = pop.activated[late]
        pop.seg[late] = FREE

    def _silence(
        self, day: int, engaged: int, silent: int, old: float, new: float, going: float
    ) -> None:
        """Move accounts between ``engaged`` and ``silent`` so the silent stock follows the
        simulator's; a newly silent account was last seen just over 14 days before the end
        of the day."""
        pop, rng = self.pop, self.rng
        net = self.count(new) - len(pop.members(silent))
        quiet = self.count(going)
        back = quiet - net
        if back < 0:
            quiet, back = quiet - back, 0
        returning = self.pick(pop.members(silent), back)
        pop.seg[returning] = engaged
        pop.engaged_since[returning] = self.within(day, len(returning))
        pop.last_seen[returning] = np.nan
        last = day - 13.0 - 0.5 * rng.random(pop.n)
        members = pop.members(engaged)
        eligible = members[pop.engaged_since[members] <= last[members]]
        going_quiet = self.pick(eligible, quiet)
        pop.seg[going_quiet] = silent
        pop.last_seen[going_quiet] = last[going_quiet]

    def _messages(self, day: int, steps: Sequence[tuple[int, float, float, Any, Any]]) -> None:
        pop = self.pop
        for k, (action, *_rest) in enumerate(steps):
            at = day + k / len(steps) + 0.001
            if action == A.RETENTION_CAMPAIGN:
                to = np.concatenate([pop.members(RISK_FREE), pop.members(RISK_PAY)])
            elif action == A.ONBOARDING_BOOST:
                to = np.concatenate([pop.members(TRIAL), pop.members(UNACT)])
            elif action == A.UPGRADE_PROMPT:
                paying = pop.members(PAY)
                basic = paying[[self.ledger.sub_plan[s] == _BASIC for s in pop.sub[paying]]]
                to = np.concatenate([pop.members(FREE), basic])
            else:
                continue
            self.ledger.outbox.append((at, A.ACTION_NAMES[action], to))


# --- writing rows -------------------------------------------------------------------------


def _times(start: datetime, days: Floats) -> list[datetime | None]:
    """Day offsets from ``start`` as datetimes (NaN -> None), microsecond precision."""
    days = np.asarray(days, dtype=np.float64)
    micros = np.round(np.nan_to_num(days) * 86_400e6).astype("timedelta64[us]")
    stamps = (np.datetime64(start, "us") + micros).astype(object).tolist()
    if np.isnan(days).any():
        for i in np.flatnonzero(np.isnan(days)):
            stamps[i] = None
    return stamps


class _Writer:
    """Bulk inserts in batches with a progress bar."""

    def __init__(self, engine: Engine, batch_size: int, bar: tqdm[Any] | None) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.bar = bar
        self.rows: dict[str, int] = {}

    def write(self, table: Table, columns: dict[str, Sequence[Any]]) -> None:
        names = list(columns)
        total = len(columns[names[0]]) if names else 0
        statement = insert(table)
        # a commit per batch: one transaction per table would make SQLite hold the whole table
        # in its write-ahead log (gigabytes at a million users) until the end
        with self.engine.connect() as connection:
            for begin in range(0, total, self.batch_size):
                chunk = [
                    dict(zip(names, row, strict=True))
                    for row in zip(
                        *(columns[name][begin : begin + self.batch_size] for name in names),
                        strict=True,
                    )
                ]
                connection.execute(statement, chunk)
                connection.commit()
                if self.bar is not None:
                    self.bar.update(len(chunk))
        self.rows[table.name] = self.rows.get(table.name, 0) + total


def _tolist(values: Any) -> list[Any]:
    return np.asarray(values).tolist()


def seed(
    engine: Engine,
    config: SeedConfig,
    *,
    progress: bool = False,
    replace: bool = False,
    archive_history: Path | None = None,
) -> SeedResult:
    """Materialize the business of ``config`` into ``engine``'s database (at the head
    migration, with no users unless ``replace``, which first empties every table).

    ``replace`` on a database where the agent has history (cycles, decisions, executions,
    approvals) refuses unless ``archive_history`` names a new file to save that history and
    its audit trail to first (:func:`agent.audit.export_history`)."""
    began = time.perf_counter()
    check_schema(engine)
    with engine.connect() as connection:
        existing = connection.execute(select(func.count()).select_from(User)).scalar_one()
    if existing and not replace:
        raise ValueError(
            f"database {engine.url.render_as_string(hide_password=True)} already has "
            f"{existing} users; seed an empty database or pass replace=True (--replace)"
        )
    if replace:
        with engine.begin() as connection:
            history = audit.agent_history(connection)
            if history and archive_history is None:
                listed = ", ".join(f"{n} {name}" for name, n in history.items())
                raise ValueError(
                    f"database {engine.url.render_as_string(hide_password=True)} has agent "
                    f"history ({listed}); --replace would erase it and its audit trail: pass "
                    "--archive-history PATH to save it to a new file first"
                )
            if history and archive_history is not None:
                audit.export_history(connection, archive_history)
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(delete(table))
    params, scale = scaled_params(config.users)
    end = config.end_time
    start = end - timedelta(days=config.days)
    m = _Materializer(config, params)
    m.materialize_start(m.sim.state.copy())
    days: Iterable[int] = range(config.days)
    if progress:
        days = tqdm(days, desc="simulating days", unit="day")
    for day in days:
        m.run_day(day)
    state: BusinessState = m.sim.state.copy()
    truth = true_kpis(state, params)
    tables = _build_rows(m, state, float(config.days), config.defects)
    total = sum(len(next(iter(cols.values()))) for _, cols in tables if cols)
    bar = tqdm(total=total, desc="writing rows", unit="row", unit_scale=True) if progress else None
    writer = _Writer(engine, config.batch_size, bar)
    for table, columns in tables:
        converted = {
            name: _times(start, values) if name in _TIME_COLUMNS else values
            for name, values in columns.items()
        }
        if table is AuditLog.__table__:
            converted = _chained(converted)
        writer.write(table, converted)
    if bar is not None:
        bar.close()
    with Session(engine) as session:  # the seeded trail is anchored like the agent's
        audit.anchor(session)
        session.commit()
    _finish(engine)
    return SeedResult(
        start=start,
        as_of=end,
        params=params,
        scale=scale,
        true_kpis=truth,
        state=state,
        rows=writer.rows,
        seconds=time.perf_counter() - began,
    )


_TIME_COLUMNS = frozenset(
    {
        "signup_at",
        "activated_at",
        "deleted_at",
        "created_at",
        "last_run_at",
        "occurred_at",
        "shown_at",
        "responded_at",
        "started_at",
        "ended_at",
        "resolved_at",
        "recorded_at",
        "sent_at",
        "archived_at",
        "effective_at",
    }
)


def _finish(engine: Engine) -> None:
    """After a bulk load: planner statistics; on SQLite fold the write-ahead log back into the
    file (reads through a large WAL are slow); on PostgreSQL move id sequences past the
    explicitly inserted ids."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        return
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
        for table in Base.metadata.sorted_tables:
            if "id" not in table.c:
                continue
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"coalesce(max(id), 0) + 1, false) FROM {table.name}"
                )
            )


# --- from the population to rows ----------------------------------------------------------


def _build_rows(
    m: _Materializer, state: BusinessState, end: float, with_defects: bool
) -> list[tuple[Table, dict[str, Any]]]:
    p, pop, ledger, rng = m.p, m.pop, m.ledger, m.rng
    n = pop.n
    users = np.arange(n)
    seg = pop.seg[:n]
    signup = pop.signup[:n]
    activated = pop.activated[:n].copy()
    engaged_since = np.minimum(pop.engaged_since[:n], end - 1e-4)
    # last seen: silent and churned accounts keep theirs; engaged ones were seen lately
    last_seen = pop.last_seen[:n].copy()
    open_ = np.isnan(last_seen)
    recent = end - rng.random(n) * np.minimum(13.5, np.maximum(end - engaged_since, 0.0))
    unactivated_seen = signup + rng.random(n) * (end - signup)
    last_seen = np.where(
        open_,
        np.where(seg == UNACT, np.maximum(unactivated_seen, engaged_since), recent),
        last_seen,
    )
    last_seen = np.where(seg == CHURNED, np.minimum(last_seen, pop.deleted[:n]), last_seen)
    last_seen = np.maximum(last_seen, signup)
    # accounts that did not return on day 7 were not seen then
    not_returned = pop.retained[:n] != 1
    age_seen = last_seen - signup
    in_window = not_returned & (age_seen >= 7.0) & (age_seen < 8.0)
    later = signup + 8.0 + 0.01
    quiet = np.isin(seg, (RISK_FREE, RISK_PAY, CHURNED, LEFT)) | (later > end)
    last_seen = np.where(in_window, np.where(quiet, signup + 6.99, later), last_seen)
    keeps_records = (seg != LEFT) & (seg != CHURNED)

    # --- users
    emails = [
        f"user{i + 1}@{('acme', 'globex', 'initech', 'umbrella', 'hooli')[i % 5]}.example.com"
        for i in range(n)
    ]
    names: list[str | None] = [f"User {i + 1}" for i in range(n)]
    channel = np.where(rng.random(n) < 0.2, "targeted", "broad")
    deleted = pop.deleted[:n].copy()

    # --- workflows
    wf_count = np.where(~np.isnan(activated), 1 + rng.poisson(2.0, n), rng.poisson(0.3, n))
    wf_count = np.where(keeps_records, wf_count, 0)
    wf_user = np.repeat(users, wf_count)
    first_of_user = np.r_[True, wf_user[1:] != wf_user[:-1]] if len(wf_user) else np.empty(0, bool)
    wf_lo = np.where(
        np.isnan(activated[wf_user]),
        signup[wf_user],
        np.minimum(activated[wf_user], last_seen[wf_user]),
    )
    wf_created = wf_lo + rng.random(len(wf_user)) * np.maximum(last_seen[wf_user] - wf_lo, 0.0)
    has_act = ~np.isnan(activated[wf_user])
    wf_created = np.where(
        first_of_user & has_act, np.maximum(activated[wf_user] - 0.01, signup[wf_user]), wf_created
    )
    wf_status = rng.choice(
        ["active", "paused", "draft", "archived"], len(wf_user), p=[0.6, 0.15, 0.15, 0.1]
    )
    wf_status = np.where(has_act, wf_status, "draft")
    wf_last_run = np.where(
        wf_status == "draft",
        np.nan,
        np.minimum(last_seen[wf_user], wf_created + rng.exponential(5.0, len(wf_user))),
    )
    wf_names: list[str | None] = [f"Workflow {i + 1}" for i in range(len(wf_user))]

    # --- suggestions (confidence is a little over-confident at the top)
    sg_count = np.where(~np.isnan(activated) & keeps_records, rng.poisson(1.5, n), 0)
    sg_user = np.repeat(users, sg_count)
    sg_lo = np.minimum(np.nan_to_num(activated[sg_user], nan=0.0), last_seen[sg_user])
    sg_shown = sg_lo + rng.random(len(sg_user)) * np.maximum(last_seen[sg_user] - sg_lo, 0.0)
    confidence = rng.beta(2.0, 2.0, len(sg_user))
    adopted = rng.random(len(sg_user)) < 0.05 + 0.8 * confidence
    responded = sg_shown + rng.exponential(0.5, len(sg_user))
    answered = responded <= end
    sg_kind = rng.choice(["template", "integration", "schedule", "invite"], len(sg_user))
    sg_confidence: list[float | None] = np.round(confidence, 4).tolist()

    # --- subscriptions and billing
    n_subs = len(ledger.sub_user)
    sub_status = []
    for i in range(n_subs):
        if not math.isnan(ledger.sub_end[i]):
            sub_status.append("canceled")
        elif i in ledger.open_failure:
            sub_status.append("past_due")
        else:
            sub_status.append("active")
    bill_user = [ledger.sub_user[s] for s in ledger.bill_sub]
    bill_amount = list(ledger.bill_amount)
    bill_time = np.array(ledger.bill_time)
    failure_code = [
        ("card_declined", "insufficient_funds", "expired_card")[i % 3]
        if status == "failed"
        else None
        for i, status in enumerate(ledger.bill_status)
    ]

    # --- events: fixed ones, then the rest spread over each account's active span
    fixed_user: list[Ints] = []
    fixed_time: list[Floats] = []
    fixed_type: list[NDArray[Any]] = []

    def add_fixed(mask: NDArray[np.bool_], times: Floats, kind: str) -> None:
        chosen = np.flatnonzero(mask & keeps_records)
        fixed_user.append(chosen)
        fixed_time.append(times[chosen])
        fixed_type.append(np.full(len(chosen), kind, dtype=object))

    add_fixed(np.ones(n, bool), signup, "signed_up")
    add_fixed(~np.isnan(activated), activated, "workflow_succeeded")
    return_at = pop.return_at[:n]
    add_fixed(~np.isnan(return_at) & (return_at <= end), return_at, "logged_in")
    add_fixed(np.ones(n, bool), last_seen, "logged_in")
    n_fixed = sum(len(u) for u in fixed_user)

    living = state.living_accounts * 1.0
    orphans_target = m.count(state.orphans) if with_defects else 0
    other_rows = n + len(wf_user) + len(sg_user) + len(ledger.bill_sub) + n_fixed + orphans_target
    budget = max(p.records_per_account * living + orphans_target - other_rows, 0.0)
    span = np.maximum(last_seen - signup, 0.0)
    engaged_now = np.isin(seg, (FREE, PAY, PAST_DUE, TRIAL))
    weight = np.where(keeps_records, np.sqrt(span + 1.0) * np.where(engaged_now, 3.0, 1.0), 0.0)
    weight = np.where(np.isnan(activated), weight * 0.3, weight)
    n_events = rng.poisson(budget * weight / max(weight.sum(), 1e-9))
    ev_user = np.repeat(users, n_events)
    ev_time = signup[ev_user] + rng.random(len(ev_user)) * span[ev_user]
    types = list(_EVENT_WEIGHTS)
    base = np.array([_EVENT_WEIGHTS[t] for t in types], dtype=float)
    boosted = base.copy()
    for signal in FIRST_WEEK_SIGNALS:
        boosted[types.index(signal)] *= 6.0
    ev_type = rng.choice(types, len(ev_user), p=base / base.sum()).astype(object)
    high = engaged_now[ev_user] & ~np.isnan(activated[ev_user]) & (ev_time - signup[ev_user] < 7.0)
    ev_type[high] = rng.choice(types, int(high.sum()), p=boosted / boosted.sum())
    ev_user = np.concatenate([*fixed_user, ev_user])
    ev_time = np.concatenate([*fixed_time, ev_time])
    ev_type = np.concatenate([*fixed_type, ev_type])
    # the day-7 window holds an event only for accounts that returned then
    age = ev_time - signup[ev_user]
    in_window = (age >= 7.0) & (age < 8.0) & not_returned[ev_user]
    ev_time = np.where(in_window, ev_time + 1.0, ev_time)
    ev_time = np.where(in_window & (ev_time > last_seen[ev_user]), ev_time - 2.0, ev_time)
    ev_user_ids: list[int | None] = list((ev_user + 1).tolist())

    # --- orphans: records the latest churned accounts left behind
    extra_user: list[int | None] = []
    extra_time: list[float] = []
    extra_type: list[str] = []
    wf_extra: list[tuple[int, float]] = []
    if orphans_target:
        churned = np.flatnonzero(seg == CHURNED)
        churned = churned[np.argsort(-deleted[churned])]
        left = orphans_target
        for user in churned:
            if left <= 0:
                break
            k = min(left, round(p.orphans_per_churned))
            lo, hi = signup[user], deleted[user]
            for _ in range(k):
                at = float(lo + rng.random() * max(hi - lo, 0.0))
                if rng.random() < 0.15:
                    wf_extra.append((int(user) + 1, at))
                else:
                    extra_user.append(int(user) + 1)
                    extra_time.append(at)
                    extra_type.append(str(rng.choice(types, p=base / base.sum())))
            left -= k
        for i in range(left):  # accounts hard-deleted long ago: ids no user has
            extra_user.append(n + 1 + i // 6)
            extra_time.append(float(-rng.uniform(60.0, 400.0)))
            extra_type.append("logged_in")
    ev_user_ids.extend(extra_user)
    ev_time = np.concatenate([ev_time, np.array(extra_time)])
    ev_type = np.concatenate([ev_type, np.array(extra_type, dtype=object)])
    wf_user_ids: list[int | None] = [*(wf_user + 1).tolist(), *(u for u, _ in wf_extra)]
    wf_created = np.concatenate([wf_created, np.array([t for _, t in wf_extra])])
    wf_status = np.concatenate([wf_status, np.full(len(wf_extra), "archived")])
    wf_last_run = np.concatenate([wf_last_run, np.array([t for _, t in wf_extra])])
    wf_names.extend(f"Workflow of closed account {u}" for u, _ in wf_extra)

    ev_type_list: list[str] = ev_type.tolist()
    user_email: list[str | None] = list(emails)
    negative_bills: list[tuple[int, float]] = []
    future_offsets: list[float] = []
    if with_defects:
        future_offsets = _inject_defects(
            m.count(state.defects),
            rng,
            end,
            user_email,
            activated,
            signup,
            keeps_records,
            ev_type_list,
            wf_names,
            sg_confidence,
            ledger,
            negative_bills,
        )
    ev_time_final = ev_time
    if future_offsets:  # events stamped in the future by a skewed client clock
        add_users = rng.choice(np.flatnonzero(keeps_records), len(future_offsets)) + 1
        ev_user_ids.extend(add_users.tolist())
        ev_time_final = np.concatenate([ev_time, end + np.array(future_offsets)])
        ev_type_list.extend(
            str(t) for t in rng.choice(types, len(future_offsets), p=base / base.sum())
        )
    for sub, at in negative_bills:  # a refund booked as a negative charge
        ledger.bill(sub, "charge", "succeeded", -m.price(ledger.sub_plan[sub]), at)
        bill_user.append(ledger.sub_user[sub])
        failure_code.append(None)
    bill_amount = list(ledger.bill_amount)
    bill_time = np.array(ledger.bill_time)
    order = np.argsort(ev_time_final, kind="stable")

    # --- agent-side rows
    out_time = [at for at, _, to in ledger.outbox for _ in range(len(to))]
    out_topic = [topic for _, topic, to in ledger.outbox for _ in range(len(to))]
    out_user = [int(u) + 1 for _, _, to in ledger.outbox for u in to]
    out_sent = np.array(out_time) + 0.01 if out_time else np.empty(0)
    arch_time = [at for at, k in ledger.archived for _ in range(k)]
    arch_payload = [
        {"id": -(i + 1), "user_id": int(n + 1000 + i // 6), "type": "logged_in", "reason": "orphan"}
        for i in range(len(arch_time))
    ]
    settings = [
        ("price_level", m.initial_price_level, -400.0),
        ("gross_margin", p.gross_margin, -400.0),
        ("base_latency_ms", p.base_latency_ms, -400.0),
        ("onboarding_variant", "default", -400.0),
        *ledger.settings,
    ]
    audit = _audit_rows(ledger.actions)
    metric_names = [name for name, _, _ in ledger.metrics]
    metric_times = np.array([at for _, at, _ in ledger.metrics])
    metric_values = [value for _, _, value in ledger.metrics]

    tables: list[tuple[Table, dict[str, Any]]] = [
        (
            User.__table__,  # type: ignore[list-item]
            {
                "id": _tolist(users + 1),
                "email": user_email,
                "name": names,
                "signup_at": signup,
                "activated_at": activated,
                "deleted_at": deleted,
                "acquisition_channel": channel.tolist(),
            },
        ),
        (
            Workflow.__table__,  # type: ignore[list-item]
            {
                "user_id": wf_user_ids,
                "name": wf_names,
                "status": wf_status.tolist(),
                "created_at": wf_created,
                "last_run_at": wf_last_run,
            },
        ),
        (
            Event.__table__,  # type: ignore[list-item]
            {
                "user_id": [ev_user_ids[i] for i in order],
                "type": [ev_type_list[i] for i in order],
                "occurred_at": ev_time_final[order],
            },
        ),
        (
            Suggestion.__table__,  # type: ignore[list-item]
            {
                "user_id": _tolist(sg_user + 1),
                "kind": sg_kind.tolist(),
                "confidence": sg_confidence,
                "shown_at": sg_shown,
                "adopted": [
                    bool(a) if ok else None for a, ok in zip(adopted, answered, strict=True)
                ],
                "responded_at": np.where(answered, responded, np.nan),
            },
        ),
        (
            Subscription.__table__,  # type: ignore[list-item]
            {
                "id": list(range(1, n_subs + 1)),
                "user_id": [u + 1 for u in ledger.sub_user],
                "plan": [_PLAN_NAMES[k] for k in ledger.sub_plan],
                "list_price": [PLANS[_PLAN_NAMES[k]] for k in ledger.sub_plan],
                "status": sub_status,
                "started_at": np.array(ledger.sub_start),
                "start_reason": ["conversion"] * n_subs,
                "ended_at": np.array(ledger.sub_end),
                "end_reason": ledger.sub_end_reason,
            },
        ),
        (
            BillingEvent.__table__,  # type: ignore[list-item]
            {
                "subscription_id": [s + 1 for s in ledger.bill_sub],
                "user_id": [u + 1 for u in bill_user],
                "kind": ledger.bill_kind,
                "status": ledger.bill_status,
                "amount": bill_amount,
                "currency": ["USD"] * len(bill_amount),
                "occurred_at": bill_time,
                "failure_code": failure_code,
                "resolved_at": np.array(ledger.bill_resolved),
                "resolution": ledger.bill_resolution,
            },
        ),
        (
            UsageMetric.__table__,  # type: ignore[list-item]
            {"name": metric_names, "recorded_at": metric_times, "value": metric_values},
        ),
        (
            Outbox.__table__,  # type: ignore[list-item]
            {
                "created_at": np.array(out_time),
                "kind": ["message"] * len(out_time),
                "topic": out_topic,
                "user_id": out_user,
                "payload": [{"template": topic} for topic in out_topic],
                "status": ["sent"] * len(out_time),
                "sent_at": out_sent,
            },
        ),
        (
            Archive.__table__,  # type: ignore[list-item]
            {
                "archived_at": np.array(arch_time),
                "source_table": ["events"] * len(arch_time),
                "source_id": [-(i + 1) for i in range(len(arch_time))],
                "payload": arch_payload,
                "reason": ["orphan_cleanup"] * len(arch_time),
            },
        ),
        (
            Setting.__table__,  # type: ignore[list-item]
            {
                "key": [k for k, _, _ in settings],
                "value": [v for _, v, _ in settings],
                "effective_at": np.array([at for _, _, at in settings]),
                "set_by": ["seed"] * len(settings),
            },
        ),
        (AuditLog.__table__, audit),  # type: ignore[list-item]
    ]
    return tables


def health_metrics(s: BusinessState, p: BusinessParams) -> list[tuple[str, float]]:
    """The monitoring samples of state ``s``: the simulator's error rate, p95 latency and
    failed-job rate, as the ``usage_metrics`` names :mod:`agent.observe` reads."""
    _, latency, errors, failed_jobs = system_health(s, p)
    return [
        ("error_rate", float(errors)),
        ("p95_latency_ms", float(latency)),
        ("failed_job_rate", float(failed_jobs)),
    ]


def unnormalized_event_type(kind: str) -> str:
    """A repairable defect: the known event type ``kind`` padded and upper case, which
    observation counts as an unknown type and ``data_fix`` restores (trim, lower case)."""
    return f" {kind.upper()} "


def _inject_defects(
    target: int,
    rng: np.random.Generator,
    end: float,
    emails: list[str | None],
    activated: Floats,
    signup: Floats,
    keeps_records: NDArray[np.bool_],
    ev_type: list[str],
    wf_names: list[str | None],
    confidence: list[float | None],
    ledger: _Ledger,
    negative_bills: list[tuple[int, float]],
) -> list[float]:
    """Spread ``target`` defective records over realistic kinds, one defect per record: a
    :data:`REPAIRABLE_SHARE` of them repairable event types, the rest by
    :data:`_DEFECT_SHARES`. Returns the offsets (days after the end) of future-dated events
    to add."""
    repairable = int(rng.binomial(target, REPAIRABLE_SHARE))
    kinds = list(_DEFECT_SHARES)
    counts = rng.multinomial(target - repairable, [_DEFECT_SHARES[k] for k in kinds])
    wanted = dict(zip(kinds, counts.tolist(), strict=True))
    users = np.flatnonzero(keeps_records)
    user_pool = rng.permutation(users)
    cursor = 0

    def take_users(k: int) -> Ints:
        nonlocal cursor
        chosen = user_pool[cursor : cursor + k]
        cursor += len(chosen)
        return chosen

    for user in take_users(wanted["null_email"]):
        emails[user] = None
    for i, user in enumerate(take_users(wanted["malformed_email"])):
        emails[user] = _MALFORMED_EMAILS[i % len(_MALFORMED_EMAILS)].format(f"user{user + 1}")
    duplicates = take_users(wanted["duplicate_user"])
    originals = take_users(len(duplicates))
    for dup, original in zip(duplicates, originals, strict=True):
        emails[dup] = str(emails[original]).upper() if rng.random() < 0.5 else emails[original]
    candidates = np.array(
        [
            u
            for u in take_users(wanted["activation_before_signup"] * 3)
            if not np.isnan(activated[u])
        ]
    )
    for user in candidates[: wanted["activation_before_signup"]]:
        activated[user] = signup[user] - rng.uniform(0.5, 30.0)
    # events: unknown types on real events; future timestamps as extra rows
    known = len(ev_type)
    chosen = rng.choice(known, min(wanted["unknown_event_type"] + repairable, known), replace=False)
    for i in chosen[:repairable]:
        ev_type[int(i)] = unnormalized_event_type(ev_type[int(i)])
    for i in chosen[repairable:]:
        ev_type[int(i)] = _GARBAGE_EVENT_TYPES[int(i) % len(_GARBAGE_EVENT_TYPES)]
    named = [i for i, name in enumerate(wf_names) if name is not None]
    for i in rng.permutation(len(named))[: wanted["missing_workflow_name"]]:
        wf_names[named[int(i)]] = None
    garbage_confidence = (None, 1.7, -0.2, 12.0)
    for j, i in enumerate(rng.permutation(len(confidence))[: wanted["invalid_confidence"]]):
        confidence[int(i)] = garbage_confidence[j % len(garbage_confidence)]
    subs = len(ledger.sub_user)
    for _ in range(wanted["negative_amount"] if subs else 0):
        negative_bills.append((int(rng.integers(subs)), float(end - rng.uniform(2.0, 25.0))))
    return rng.uniform(1.0, 400.0, wanted["future_timestamp"]).tolist()


def _audit_rows(actions: Sequence[tuple[float, str, dict[str, Any]]]) -> dict[str, Any]:
    """The routine's actions as audit entries (hashed into a chain by :func:`_chained` once
    their times are datetimes)."""
    return {
        "occurred_at": np.array([at for at, _, _ in actions], dtype=np.float64),
        "actor": ["routine"] * len(actions),
        "action": [action for _, action, _ in actions],
        "target": [None] * len(actions),
        "details": [details for _, _, details in actions],
    }


def _chained(columns: dict[str, Any]) -> dict[str, Any]:
    """Audit columns with ids from 1 and the hash chain of :mod:`agent.audit`, so that
    ``autopilot audit verify`` accepts a seeded trail and the agent appends to it."""
    ids, prev_hashes, hashes = [], [], []
    prev = audit.GENESIS
    for i, (at, actor, action, target, details) in enumerate(
        zip(
            columns["occurred_at"],
            columns["actor"],
            columns["action"],
            columns["target"],
            columns["details"],
            strict=True,
        ),
        start=1,
    ):
        digest = audit.entry_digest(
            prev_hash=prev,
            entry_id=i,
            occurred_at=at,
            actor=actor,
            action=action,
            target=target,
            details=details,
            cycle_id=None,
            execution_id=None,
        )
        ids.append(i)
        prev_hashes.append(prev)
        hashes.append(digest)
        prev = digest
    return {**columns, "id": ids, "prev_hash": prev_hashes, "entry_hash": hashes}


__all__ = ["SeedConfig", "SeedResult", "routine_action", "scaled_params", "seed"]
