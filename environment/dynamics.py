"""The business dynamics as pure functions over a state and frozen parameters.

``initial`` -> ``transition`` -> ``kpis`` / ``reward`` / ``terminal``, in the manner of
Gymnasium's functional ``FuncEnv``. ``transition`` never mutates its input: it copies the state
and advances the copy through named processes, in this order, each step of ``dt`` days:

1. **Act.** The action's cost is paid now; its effect lands after its delay (``pending``).
   Each effect is multiplied by ``1 / (1 + recent uses)``: repeating an action yields less.
2. **Shocks** of the scenario set their intensities for this step.
3. **Infrastructure**: utilization = load / capacity drives p95 latency (a queueing-style
   ``u / (1 - u)`` term), incidents add errors and latency, bad data fails background jobs,
   orphans bloat storage; together they give ``health_score``.
4. **Acquisition and activation**: visitors (marketing mix, season, virality, noise) x
   signup rate x funnel quality x a latency penalty (Akamai: -2.4% per 100 ms) become trial
   accounts; each day of age has its own activation hazard (front-loaded, Userpilot's 36 h
   time to value), scaled by funnel quality, intent, onboarding, data quality and health.
5. **Engagement**: free accounts convert (price elasticity, features, competitor); engaged
   accounts go silent (at risk) at a hazard multiplied by poor health, fatigue, a competitor,
   fresh and lasting price pressure, and reduced by shipped features; at-risk accounts come
   back or churn.
6. **Billing**: each paying account is billed once a month; declines (base rate, bad data, an
   outage) move it to the past-due backlog, which customers partly fix themselves and which
   otherwise expires into involuntary churn after ~2 weeks (Stripe's default retry window).
7. **Data**: new and updated records bring defects; churned accounts leave orphans.
8. **Money**: revenue is MRR pro rata plus recovered back payments; costs are marketing,
   hosting, payroll and the action. Cash accumulates.
9. **Decay and roll-over**: fatigue, lifts and memories decay; at the end of each day the trial
   cohorts age, the day-7 cohort matures and the daily windows shift.

Action effects (magnitudes and their sources are on :class:`BusinessParams`):

- ``retention_campaign``: wins back ``win_back_rate`` of at-risk accounts, less when fatigued
  (``exp(-fatigue)``); adds fatigue, which raises the at-risk hazard as ``1 + k fatigue^2``:
  once helps, a barrage drives churn. Costs per message. Helps during a competitor shock.
- ``data_fix``: repairs ``data_fix_share`` of defects (lands next step). Helps after a bad
  release: defects raise billing failures, fail jobs and hurt activation.
- ``orphan_cleanup``: archives ``orphan_cleanup_share`` of orphans; less bloat, better health.
- ``payment_retry``: recovers ``retry_recovery`` of the past-due backlog and its back payment;
  during an outage most retries fail too, and more than ``excessive_retries`` rounds in ~2 days
  cancel part of the backlog (card-network rules): retry after the outage, not during it.
- ``onboarding_boost``: lifts the activation hazard for a few days (saturating) and activates a
  few unactivated accounts. Helps when many low-intent signups arrive (a viral surge).
- ``funnel_fix``: after 3 days, closes ``funnel_gap_closed`` of the funnel leak, for good but
  for slow decay: an investment whose value is only visible to a planner.
- ``upgrade_prompt``: converts a share of free accounts now and moves basic to pro, less when
  fatigued, and adds fatigue: the churn comes later.
- ``price_increase`` / ``price_decrease``: ARPA moves by ``price_step`` now; conversion follows
  ``price ** -elasticity``; a raise adds decaying churn pressure now and lasting pressure
  ``1 + k (price - 1)^2`` above the starting price: myopically always right, in time wrong.
- ``scale_infra``: more capacity next step and half the incident severity, for a recurring cost.
- ``shift_marketing``: after a day, moves spend to targeted channels: fewer visitors of higher
  intent (activation up, CAC down); fades over weeks.
- ``ship_feature``: after two weeks raises conversion and lowers the at-risk hazard for months;
  a release may corrupt data; beyond ``max_features_in_flight`` the money is wasted.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

import numpy as np

from environment import actions as A
from environment.actions import ACTIONS, N_ACTIONS
from environment.kpis import (
    KPI_NAMES,
    N_KPIS,
    RECENT_HORIZON_CYCLES,
    alignment_of,
    kpi_vector,
)
from environment.params import BusinessParams
from environment.scenarios import SHOCK_KINDS, Scenario, Shock
from environment.state import COHORT_DAYS, MATURED_WINDOW, MONTH_DAYS, WEEK_DAYS, BusinessState

_COMPETITOR, _OUTAGE, _CORRUPTION, _VIRAL, _INCIDENT, _SLUMP = range(len(SHOCK_KINDS))
_NEVER_RAN = (RECENT_HORIZON_CYCLES,) * N_ACTIONS
BURN_IN_DAYS = 120
"""Days the business runs under its pre-autopilot routine before an episode starts."""
EMA_DAY = 1.0
"""Time constant (days) of the trailing billing averages."""


# --- shocks -------------------------------------------------------------------------------


def shock_levels(shocks: tuple[Shock, ...], t: int) -> list[float]:
    """Intensity of each shock kind at step ``t`` (0 when inactive).

    A seasonal slump rises and falls as ``sin(pi * progress)``; other shocks are flat.
    """
    levels = [0.0] * len(SHOCK_KINDS)
    for kind, start, end, magnitude in shocks:
        if start <= t < end:
            if kind == _SLUMP:
                magnitude *= math.sin(math.pi * (t - start + 0.5) / (end - start))
            levels[kind] = max(levels[kind], magnitude)
    return levels


# --- derived measurements -----------------------------------------------------------------


def load_units(s: BusinessState) -> float:
    """Infrastructure load: paying accounts weigh most, trials and idle accounts least."""
    return s.active_free + 1.5 * s.paying + 0.5 * s.trial + 0.1 * (s.unactivated + s.at_risk_free)


def records(s: BusinessState, p: BusinessParams) -> float:
    """Stored workflows and events: every living account's records plus the orphans."""
    return p.records_per_account * s.living_accounts + s.orphans


def arpa(s: BusinessState, p: BusinessParams) -> float:
    """Average revenue per paying account (USD per month) at the current plan mix and price."""
    paying = s.paying
    if paying <= 0:
        return p.base_arpa * s.price_level
    return s.price_level * (s.paying_basic * p.basic_price + s.paying_pro * p.pro_price) / paying


def mrr(s: BusinessState, p: BusinessParams) -> float:
    """Monthly recurring revenue of the accounts in good standing (USD)."""
    return s.price_level * (s.paying_basic * p.basic_price + s.paying_pro * p.pro_price)


def health_score(
    error_rate: float,
    p95_latency_ms: float,
    failed_job_rate: float,
    bloat: float,
    base_latency_ms: float,
) -> float:
    """0-100: 100 minus four saturating penalties: errors (35 points, half at 2%), latency
    above ``base_latency_ms`` (25, half at +400 ms), failed background jobs (20, half at 5%),
    data bloat, orphans / records (20, half at 2%). Inputs are clipped at 0. The SQL
    observation uses the same function on measured inputs."""
    errors = max(error_rate, 0.0)
    excess = max(p95_latency_ms - base_latency_ms, 0.0)
    jobs = max(failed_job_rate, 0.0)
    bloat = max(bloat, 0.0)
    return 100.0 - (
        35.0 * errors / (errors + 0.02)
        + 25.0 * excess / (excess + 400.0)
        + 20.0 * jobs / (jobs + 0.05)
        + 20.0 * bloat / (bloat + 0.02)
    )


def system_health(s: BusinessState, p: BusinessParams) -> tuple[float, float, float, float]:
    """(health score 0-100, p95 latency ms, error rate, failed-job rate) of the state."""
    utilization = min(load_units(s) / s.capacity, 0.97)
    n_records = records(s, p)
    bloat = s.orphans / n_records
    defect_rate = s.defects / n_records
    latency = (
        p.base_latency_ms
        * (1.0 + 0.3 * utilization / (1.0 - utilization))
        * (1.0 + 2.0 * s.incident)
        * (1.0 + 2.0 * bloat)
    )
    errors = p.base_error_rate + 0.08 * s.incident + 0.1 * max(0.0, utilization - 0.85)
    failed_jobs = 0.01 + 2.0 * defect_rate + 0.1 * s.incident
    score = health_score(errors, latency, failed_jobs, bloat, p.base_latency_ms)
    return score, latency, errors, failed_jobs


def true_kpis(s: BusinessState, p: BusinessParams) -> dict[str, float]:
    """Every KPI of :data:`environment.kpis.KPI_NAMES`, noise-free, in natural units."""
    trial_activated = sum(s.trial_activated)
    trial_pending = sum(s.trial_pending)
    engaged_paying = s.paying - s.at_risk_paying
    activated = trial_activated + s.active_free + engaged_paying
    active_accounts = activated + trial_pending + s.unactivated
    at_risk = s.at_risk_free + s.at_risk_paying
    matured = sum(s.matured_signups)
    paying = s.paying
    conversions_30d = sum(s.conversions_days)
    churn_30d = sum(s.paying_churn_days)
    now_mrr = mrr(s, p)
    now_arpa = arpa(s, p)
    churn_rate = churn_30d / max(paying, 1.0)
    cac = p.marketing_per_day * MONTH_DAYS / max(conversions_30d, 1.0)
    health = system_health(s, p)[0]
    kpis = {
        "activation_rate": activated / max(active_accounts, 1.0),
        "d7_retention": sum(s.matured_retained) / max(matured, 1.0),
        "signup_to_activation": sum(s.matured_activated) / max(matured, 1.0),
        "conversion_rate": conversions_30d / max(s.active_free, 1.0),
        "ltv_cac": now_arpa * p.gross_margin / max(churn_rate, 0.005) / cac,
        "health_score": health,
        "alignment_score": 0.0,
        "data_quality_issue_rate": s.defects / records(s, p),
        "orphaned_records": s.orphans,
        "billing_failure_rate": s.billing_failures_ema / max(s.billing_attempts_ema, 1e-9),
        "failed_payment_backlog": s.failed_payments / max(paying, 1.0),
        "at_risk_share": at_risk / max(at_risk + s.active_free + engaged_paying, 1.0),
        "message_pressure": sum(s.messages_days) / max(active_accounts, 1.0),
        "mrr": now_mrr,
        "mrr_growth": now_mrr / max(s.mrr_days[0], 1.0) - 1.0,
        "churn_rate": churn_rate,
        "cac": cac,
        "arpa": now_arpa,
    }
    kpis["alignment_score"] = alignment_of(kpi_vector(kpis))
    return kpis


def _sample_sizes(s: BusinessState) -> list[float]:
    """The number of observations behind each KPI, in KPI order (noise scales as 1/sqrt(n))."""
    active = s.trial + s.unactivated + s.active_free + s.paying
    matured = sum(s.matured_signups)
    conversions = sum(s.conversions_days)
    churned = sum(s.paying_churn_days)
    ltv_n = 1.0 / (1.0 / max(conversions, 1.0) + 1.0 / max(churned, 1.0))
    return [
        active,  # activation_rate
        matured,  # d7_retention
        matured,  # signup_to_activation
        conversions,  # conversion_rate (relative: a count)
        ltv_n,  # ltv_cac (relative)
        1.0,  # health_score: fixed noise
        1.0,  # alignment_score: recomputed from the others
        s.living_accounts,  # data_quality_issue_rate
        s.orphans,  # orphaned_records (relative: Poisson)
        s.billing_attempts_ema,  # billing_failure_rate
        s.failed_payments,  # failed_payment_backlog (relative)
        active,  # at_risk_share
        active,  # message_pressure (relative)
        s.paying,  # mrr (relative)
        s.paying,  # mrr_growth
        churned,  # churn_rate (relative)
        conversions,  # cac (relative)
        s.paying,  # arpa (relative)
    ]


def _noise_model(name: str) -> tuple[bool, float, float, float, float, float]:
    """(is a share, relative coefficient, absolute coefficient, fixed sd, low, high) of a KPI's
    noise; the first three scale as 1/sqrt(n)."""
    if name in {
        "activation_rate",
        "d7_retention",
        "signup_to_activation",
        "data_quality_issue_rate",
        "billing_failure_rate",
        "at_risk_share",
    }:
        return True, 0.0, 0.0, 0.0, 0.0, 1.0
    if name == "health_score":
        return False, 0.0, 0.0, 0.5, 0.0, 100.0
    if name == "mrr_growth":
        return False, 0.0, 0.1, 0.0, -math.inf, math.inf
    if name == "alignment_score":
        return False, 0.0, 0.0, 0.0, 0.0, 100.0
    # Revenue is counted, not sampled: its noise is a tenth of a pure count's.
    damping = {"mrr": 0.1, "arpa": 0.1, "message_pressure": 0.5}.get(name, 1.0)
    return False, damping, 0.0, 0.0, 0.0, math.inf


_NOISE = tuple(_noise_model(name) for name in KPI_NAMES)
_ALIGNMENT = KPI_NAMES.index("alignment_score")


def measured_kpis(
    s: BusinessState, p: BusinessParams, rng: np.random.Generator | None
) -> tuple[list[float], dict[str, float]]:
    """(measured KPI values in ``KPI_NAMES`` order, true KPIs by name).

    Measured KPIs carry sampling noise that shrinks as the base grows: a share ``q`` measured
    on ``n`` accounts gets ``N(0, q (1 - q) / n)``; a count-like KPI relative noise
    ``1 / sqrt(n)`` (a tenth of it for revenue, which is counted rather than sampled);
    ``mrr_growth`` ``0.1 / sqrt(n)``; the health score 0.5 points. A measured share stays in
    [0, 1], a count non-negative, the score in [0, 100]; the alignment score is recomputed
    from the measured KPIs. ``rng=None``: no noise.
    """
    truth = true_kpis(s, p)
    values = kpi_vector(truth)
    if rng is None:
        return values, truth
    noise = rng.standard_normal(N_KPIS).tolist()
    sizes = _sample_sizes(s)
    measured = []
    for value, z, n, (share, relative, absolute, fixed, low, high) in zip(
        values, noise, sizes, _NOISE, strict=True
    ):
        spread = relative * abs(value) + absolute
        if share:
            spread += math.sqrt(max(value * (1.0 - value), 0.0))
        sd = spread / math.sqrt(max(n, 1.0)) + fixed
        measured.append(min(max(value + sd * z, low), high))
    measured[_ALIGNMENT] = alignment_of(measured)
    return measured, truth


# --- the start ----------------------------------------------------------------------------


def _rough_start(p: BusinessParams) -> BusinessState:
    """A plausible business before burn-in: ``initial_paying`` customers and a funnel in
    proportion; the burn-in then brings every stock and window to a consistent state."""
    paying = p.initial_paying
    signups_per_day = p.visitors_per_day * p.visit_to_signup
    hazards = p.activation_hazards
    pending, activated, remaining = [], [], signups_per_day
    for age in range(COHORT_DAYS):
        share = 1.0 - math.exp(-hazards[age])
        activated.append(signups_per_day - remaining * (1.0 - share))
        remaining *= 1.0 - share
        pending.append(remaining)
    free = 1.5 * paying
    start = BusinessState(
        t=0,
        trial_pending=tuple(pending),
        trial_activated=tuple(activated),
        matured_signups=(signups_per_day,) * MATURED_WINDOW,
        matured_activated=(signups_per_day * p.activation_within_7d,) * MATURED_WINDOW,
        matured_retained=(signups_per_day * 0.24,) * MATURED_WINDOW,
        unactivated=signups_per_day * (1 - p.activation_within_7d) * 30,
        active_free=free,
        at_risk_free=0.2 * free,
        paying_basic=paying * (1 - p.pro_share),
        paying_pro=paying * p.pro_share,
        at_risk_paying=0.1 * paying,
        failed_payments=0.01 * paying,
        churned=0.0,
        paying_at_start=paying,
        conversions_today=0.0,
        conversions_days=(free * p.free_conversion_per_month / MONTH_DAYS,) * MONTH_DAYS,
        paying_churn_today=0.0,
        paying_churn_days=(paying * 0.05 / MONTH_DAYS,) * MONTH_DAYS,
        messages_today=0.0,
        messages_days=(0.0,) * WEEK_DAYS,
        mrr_days=(paying * p.base_arpa,) * (MONTH_DAYS + 1),
        billing_attempts_ema=paying / MONTH_DAYS,
        billing_failures_ema=paying / MONTH_DAYS * p.billing_failure_rate,
        retry_pressure=0.0,
        defects=0.0,
        orphans=0.0,
        capacity=1.0,
        infra_cost_level=1.0,
        incident=0.0,
        price_level=1.0,
        price_shock=0.0,
        channel_mix=p.base_channel_mix,
        fatigue=0.0,
        onboarding=0.0,
        funnel_quality=p.initial_funnel_quality,
        feature_level=0.0,
        prompt_readiness=1.0,
        pushed_pro=0.0,
        pending=(),
        recent_use=(0.0,) * N_ACTIONS,
        cycles_since=_NEVER_RAN,
        cash=p.initial_cash,
        last_revenue=0.0,
        last_costs=0.0,
        last_action_cost=0.0,
        customer_equity=0.0,
        last_equity_change=0.0,
        shocks=(),
    )
    start.capacity = load_units(start) / p.initial_utilization
    start.customer_equity = customer_equity(start, p)
    return start


def routine_action(t: int, p: BusinessParams) -> int:
    """What the business did before autopilot: a nightly payment retry and a weekly data fix
    and orphan cleanup, by the clock, blind to the KPIs."""
    day, step = divmod(t, p.steps_per_day)
    if step != 0:
        return A.NOOP
    if day % 7 == 3:
        return A.DATA_FIX
    if day % 7 == 5:
        return A.ORPHAN_CLEANUP
    return A.PAYMENT_RETRY


def steady_start(p: BusinessParams) -> BusinessState:
    """The business after ``BURN_IN_DAYS`` of :func:`routine_action` with no shocks or noise.

    The burn-in runs once per parameter set; each call returns a fresh copy of its result,
    so no caller can change what the next episode starts from.
    """
    return _burned_in(p).copy()


@lru_cache(maxsize=32)
def _burned_in(p: BusinessParams) -> BusinessState:
    """The cached burn-in behind :func:`steady_start`; never handed out."""
    state = _rough_start(p)
    routine = replace(p, funnel_decay_per_day=0.0)  # the funnel starts at its stated quality
    for t in range(BURN_IN_DAYS * p.steps_per_day):
        state = transition(state, routine_action(t, p), routine, None)
    state.t = 0
    state.churned = 0.0
    state.paying_at_start = state.paying
    state.cash = p.initial_cash
    state.recent_use = (0.0,) * N_ACTIONS
    state.cycles_since = _NEVER_RAN
    state.pending = ()
    state.last_equity_change = 0.0
    return state


_PERTURBED = (
    "unactivated",
    "active_free",
    "at_risk_free",
    "paying_basic",
    "paying_pro",
    "failed_payments",
    "defects",
    "orphans",
)


def initial(p: BusinessParams, scenario: Scenario, rng: np.random.Generator) -> BusinessState:
    """The first state of an episode: the steady business, each stock scaled by a lognormal
    factor (sd 5%), and this episode's shocks drawn from the scenario."""
    s = steady_start(p)
    mrr_before, free_before, paying_before = mrr(s, p), s.active_free, s.paying
    factors = np.exp(0.05 * rng.standard_normal(len(_PERTURBED)))
    for name, factor in zip(_PERTURBED, factors, strict=True):
        setattr(s, name, getattr(s, name) * float(factor))
    s.at_risk_paying = min(s.at_risk_paying, s.paying)
    # The trailing windows describe the same (perturbed) business: scale them alike, so that
    # growth, conversion and churn rates start where the unperturbed business had them.
    s.mrr_days = tuple(v * mrr(s, p) / mrr_before for v in s.mrr_days)
    s.conversions_days = tuple(v * s.active_free / free_before for v in s.conversions_days)
    s.paying_churn_days = tuple(v * s.paying / paying_before for v in s.paying_churn_days)
    s.paying_at_start = s.paying
    # The equity describes the perturbed base, or step 1 would book the perturbation as value.
    s.customer_equity = customer_equity(s, p)
    s.shocks = scenario.draw(rng, p.steps_per_day)
    return s


# --- the transition -----------------------------------------------------------------------


def transition(
    state: BusinessState, action: int, p: BusinessParams, rng: np.random.Generator | None
) -> BusinessState:
    """The state one step after taking ``action`` (an index, already validated).

    ``rng=None`` runs the expected dynamics with no randomness (used for the burn-in).
    The input state is not modified.
    """
    s = state.copy()
    s.last_revenue = 0.0
    dt = p.dt_days
    shocks = shock_levels(s.shocks, s.t)
    cost = _take_action(s, action, p)
    s.cycles_since = _count_cycles(s.cycles_since, action)
    _apply_due_effects(s, p, shocks, rng)
    _corruption_onset(s, p, shocks)
    _infrastructure(s, p, shocks, dt)
    health, latency, _, _ = system_health(s, p)
    latency_factor = max(0.2, 1.0 - p.latency_conversion_per_100ms * (latency - 250.0) / 100.0)
    health_factor = 1.0 + 3.0 * max(0.0, 0.85 - health / 100.0)
    _acquisition(s, p, shocks, dt, latency_factor, health_factor, rng)
    churned_accounts = _engagement(s, p, shocks, dt, latency_factor, health_factor)
    _organic_expansion(s, p, dt)
    churned_accounts += _billing(s, p, shocks, dt)
    _data(s, p, shocks, dt, churned_accounts)
    _money(s, p, dt, cost)
    equity = customer_equity(s, p)
    s.last_equity_change = equity - s.customer_equity
    s.customer_equity = equity
    _decay(s, p)
    s.t += 1
    if s.t % p.steps_per_day == 0:
        _end_of_day(s, p, health)
    return s


def _count_cycles(cycles_since: tuple[int, ...], action: int) -> tuple[int, ...]:
    """One more step since every action, capped at the horizon; the executed action's is 1."""
    counted = [min(c + 1, RECENT_HORIZON_CYCLES) for c in cycles_since]
    if action != A.NOOP:
        counted[action] = 1
    return tuple(counted)


def _take_action(s: BusinessState, action: int, p: BusinessParams) -> float:
    """Pay for the action, remember the use, and schedule its effect. Returns its cost (USD)."""
    spec = ACTIONS[action]
    cost = spec.cost * p.action_cost_scale
    if action == A.NOOP:
        return cost
    cost += _variable_cost(s, action, p)
    if action == A.SHIP_FEATURE:
        in_flight = sum(1 for _, a in s.pending if a == A.SHIP_FEATURE)
        if in_flight >= p.max_features_in_flight:
            return cost  # the team is already at capacity: the money is spent, nothing ships
    s.pending = tuple(sorted((*s.pending, (s.t + spec.delay_steps, action))))
    return cost


def _variable_cost(s: BusinessState, action: int, p: BusinessParams) -> float:
    """Per-message and per-payment costs of an action."""
    if action == A.RETENTION_CAMPAIGN:
        return p.campaign_cost_per_message * (s.at_risk_free + s.at_risk_paying)
    if action == A.PAYMENT_RETRY:
        return p.retry_fee * s.failed_payments
    return 0.0


def _apply_due_effects(
    s: BusinessState, p: BusinessParams, shocks: list[float], rng: np.random.Generator | None
) -> None:
    """Apply every pending effect whose time has come, in order."""
    while s.pending and s.pending[0][0] <= s.t:
        _, action = s.pending[0]
        s.pending = s.pending[1:]
        _effect(s, action, p, shocks, rng)


def _effect(
    s: BusinessState,
    action: int,
    p: BusinessParams,
    shocks: list[float],
    rng: np.random.Generator | None,
) -> None:
    """The effect of one action landing now (see the module docstring)."""
    use = s.recent_use
    strength = 1.0 / (1.0 + use[action])
    s.recent_use = (*use[:action], use[action] + 1.0, *use[action + 1 :])
    reach = strength * math.exp(-s.fatigue)
    if action == A.RETENTION_CAMPAIGN:
        won_free = s.at_risk_free * p.win_back_rate * reach
        won_paying = s.at_risk_paying * p.win_back_rate * reach
        s.messages_today += s.at_risk_free + s.at_risk_paying
        s.at_risk_free -= won_free
        s.active_free += won_free
        s.at_risk_paying -= won_paying
        s.fatigue += p.campaign_fatigue
    elif action == A.DATA_FIX:
        s.defects *= 1.0 - p.data_fix_share * strength
    elif action == A.ORPHAN_CLEANUP:
        s.orphans *= 1.0 - p.orphan_cleanup_share * strength
    elif action == A.PAYMENT_RETRY:
        _retry_payments(s, p, shocks, strength)
    elif action == A.ONBOARDING_BOOST:
        s.onboarding += (
            p.onboarding_lift * strength * max(0.0, 1.0 - s.onboarding / (3 * p.onboarding_lift))
        )
        late = s.unactivated * p.onboarding_late_activation * strength
        s.unactivated -= late
        s.active_free += late
        s.messages_today += s.trial + s.unactivated
        s.fatigue += 0.1 * p.campaign_fatigue
    elif action == A.FUNNEL_FIX:
        s.funnel_quality += p.funnel_gap_closed * (1.0 - s.funnel_quality)
    elif action == A.UPGRADE_PROMPT:
        ready = reach * s.prompt_readiness
        converted = (
            s.active_free
            * p.prompt_conversion
            * ready
            * s.price_level**-p.price_conversion_elasticity
        )
        upgraded = s.paying_basic * p.prompt_pro_share * ready
        s.messages_today += s.active_free + s.paying_basic
        s.active_free -= converted
        s.paying_basic += converted * (1 - p.pro_share) - upgraded
        s.paying_pro += converted * p.pro_share + upgraded
        s.pushed_pro += upgraded * p.pushed_downgrade_share
        s.conversions_today += converted
        s.fatigue += p.prompt_fatigue
        s.prompt_readiness *= 1.0 - min(reach, 1.0)
    elif action == A.PRICE_INCREASE:
        log_willing_before = log_willing_to_pay(s.price_level, p)
        s.price_level *= 1.0 + p.price_step
        s.price_shock += p.price_step
        _cancel_paying(s, -math.expm1(log_willing_to_pay(s.price_level, p) - log_willing_before))
    elif action == A.PRICE_DECREASE:
        s.price_level *= 1.0 - p.price_step
    elif action == A.SCALE_INFRA:
        s.capacity *= 1.0 + p.capacity_step
        s.infra_cost_level *= 1.0 + p.capacity_step
        s.incident *= 0.5
    elif action == A.SHIFT_MARKETING:
        s.channel_mix += p.marketing_mix_step * (1.0 - s.channel_mix)
    elif action == A.SHIP_FEATURE:
        s.feature_level += p.feature_boost * (1.0 - s.feature_level)
        if rng is not None and rng.random() < p.release_bug_probability:
            corrupted = p.release_bug_defects * records(s, p)
            s.defects += corrupted
            s.orphans += 0.1 * corrupted


def log_willing_to_pay(price_level: float, p: BusinessParams) -> float:
    """Log of the share of accounts whose willingness to pay (lognormal, relative to the
    starting price) is at least ``price_level``; in the far tail, the asymptotic
    ``-z^2/2 - log(z sqrt(2 pi))``, so ratios stay exact where the share underflows."""
    z = math.log(price_level / p.willingness_to_pay_median) / p.willingness_to_pay_spread
    if z < 8.0:
        return math.log(0.5 * math.erfc(z / math.sqrt(2.0)))
    return -0.5 * z * z - math.log(z * math.sqrt(2.0 * math.pi))


def _cancel_paying(s: BusinessState, share: float) -> None:
    """A share of the paying base (silent accounts alike) cancels now: voluntary churn."""
    lost = s.paying * share
    s.at_risk_paying *= 1.0 - share
    _remove_paying(s, lost)
    s.paying_churn_today += lost
    s.churned += lost


def _retry_payments(
    s: BusinessState, p: BusinessParams, shocks: list[float], strength: float
) -> None:
    """One retry round over the past-due backlog (see ``payment_retry``)."""
    success = 1.0 - shocks[_OUTAGE]
    recovered = s.failed_payments * p.retry_recovery * strength * success
    s.retry_pressure += 1.0
    excess = max(0.0, s.retry_pressure - p.excessive_retries)
    cancelled = (s.failed_payments - recovered) * min(1.0, p.excess_retry_churn * excess)
    s.failed_payments -= recovered + cancelled
    _restore_paying(s, p, recovered)
    s.last_revenue += recovered * arpa(s, p)
    s.paying_churn_today += cancelled
    s.churned += cancelled


def _restore_paying(s: BusinessState, p: BusinessParams, accounts: float) -> None:
    """Past-due accounts back in good standing, at the plan mix of new customers."""
    s.paying_basic += accounts * (1 - p.pro_share)
    s.paying_pro += accounts * p.pro_share


def _corruption_onset(s: BusinessState, p: BusinessParams, shocks: list[float]) -> None:
    """A corrupting release hits in the first step of its shock: defects and orphans jump."""
    for kind, start, _, magnitude in s.shocks:
        if kind == _CORRUPTION and start == s.t:
            corrupted = magnitude * records(s, p)
            s.defects += corrupted
            s.orphans += 0.1 * corrupted


def _infrastructure(s: BusinessState, p: BusinessParams, shocks: list[float], dt: float) -> None:
    """Incidents strike with their shock and heal at ``incident_recovery_per_day``."""
    s.incident = max(s.incident * math.exp(-p.incident_recovery_per_day * dt), shocks[_INCIDENT])


def _acquisition(
    s: BusinessState,
    p: BusinessParams,
    shocks: list[float],
    dt: float,
    latency_factor: float,
    health_factor: float,
    rng: np.random.Generator | None,
) -> None:
    """Visitors become signups; trial accounts activate by their age's hazard."""
    viral = shocks[_VIRAL]
    reach = 1.0 - p.targeted_reach_loss * s.channel_mix
    intent = 1.0 + p.targeted_intent_gain * (s.channel_mix - p.base_channel_mix)
    funnel = s.funnel_quality / p.initial_funnel_quality
    noise = 1.0 if rng is None else math.exp(0.1 * rng.standard_normal())
    visitors = p.visitors_per_day * reach * (1.0 - shocks[_SLUMP]) * (1.0 + viral) * noise
    signups = visitors * p.visit_to_signup * funnel * latency_factor * dt
    defect_rate = s.defects / records(s, p)
    multiplier = (
        funnel
        * intent
        * (1.0 + s.onboarding)
        * max(0.1, 1.0 - 5.0 * defect_rate)
        / health_factor
        / (1.0 + 0.5 * viral)
    )
    pending = list(s.trial_pending)
    activated = list(s.trial_activated)
    pending[0] += signups
    for age, hazard in enumerate(p.activation_hazards):
        moved = pending[age] * (1.0 - math.exp(-hazard * multiplier * dt))
        pending[age] -= moved
        activated[age] += moved
    s.trial_pending = tuple(pending)
    s.trial_activated = tuple(activated)
    late, leaving = _outflows(
        s.unactivated, dt, p.late_activation_per_day * multiplier, p.unactivated_leave_per_day
    )
    s.unactivated -= late + leaving
    s.active_free += late


def _engagement(
    s: BusinessState,
    p: BusinessParams,
    shocks: list[float],
    dt: float,
    latency_factor: float,
    health_factor: float,
) -> float:
    """Conversion, going silent, coming back and churning. Returns accounts lost."""
    month = dt / MONTH_DAYS
    competitor = shocks[_COMPETITOR]
    conversion = (
        p.free_conversion_per_month
        * s.price_level**-p.price_conversion_elasticity
        * (1.0 + s.feature_level)
        * max(0.0, 1.0 - 0.3 * competitor)
        * (1.0 - 0.5 * shocks[_SLUMP])
        * latency_factor
    )
    risk = silence_multiplier(s, p, competitor, health_factor)
    converted, free_silent = _outflows(
        s.active_free, month, conversion, p.free_at_risk_per_month * risk
    )
    free_back, free_lost = _outflows(
        s.at_risk_free, month, p.at_risk_recover_per_month, p.at_risk_churn_per_month
    )
    engaged_paying = max(s.paying - s.at_risk_paying, 0.0)
    (paying_silent,) = _outflows(engaged_paying, month, p.paying_at_risk_per_month * risk)
    paying_back, paying_lost = _outflows(
        s.at_risk_paying, month, p.at_risk_recover_per_month, p.at_risk_churn_per_month
    )

    s.active_free += free_back - free_silent - converted
    s.at_risk_free += free_silent - free_back - free_lost
    s.at_risk_paying += paying_silent - paying_back - paying_lost
    _remove_paying(s, paying_lost)
    s.paying_basic += converted * (1 - p.pro_share)
    s.paying_pro += converted * p.pro_share
    s.conversions_today += converted
    s.paying_churn_today += paying_lost
    s.churned += free_lost + paying_lost
    return free_lost + paying_lost


def _organic_expansion(s: BusinessState, p: BusinessParams, dt: float) -> None:
    """Ready basic accounts upgrade to pro by themselves (``organic_upgrade_days``), from the
    same pool of readiness that prompts draw on; these upgrades are not regretted."""
    share = -math.expm1(-dt / p.organic_upgrade_days)
    upgraded = s.paying_basic * p.prompt_pro_share * s.prompt_readiness * share
    s.paying_basic -= upgraded
    s.paying_pro += upgraded
    s.prompt_readiness *= 1.0 - share


def silence_multiplier(
    s: BusinessState, p: BusinessParams, competitor: float, health_factor: float
) -> float:
    """How much faster than normal engaged accounts go silent: poor health, fatigue, a
    competitor, fresh and lasting price pressure; shipped features lower it."""
    return (
        health_factor
        * (1.0 + p.fatigue_churn * s.fatigue * s.fatigue)
        * (1.0 + competitor)
        * (1.0 + p.price_shock_churn * s.price_shock)
        * (1.0 + p.price_level_churn * max(0.0, s.price_level - 1.0) ** 2)
        * (1.0 - s.feature_level)
    )


def customer_equity(s: BusinessState, p: BusinessParams) -> float:
    """The value of the customer base (USD): each segment's accounts times the discounted
    gross profit an account of that segment is expected to bring, so that a step's reward
    charges the damage an action does when the action is taken, not weeks later.

    With ``m`` the monthly gross profit of a paying account at today's plan mix and price
    (``arpa x gross_margin``), ``d = discount_per_month`` and ``P_loss`` the share of silent
    accounts that churn rather than come back (``churn / (churn + recover)``):

    - an **engaged paying** account leaves at ``e = paying_at_risk_per_month x lasting x
      P_loss + involuntary_churn`` a month, where ``lasting = 1 + price_level_churn x
      (price_level - 1)^2`` is the lasting price pressure; it is worth ``V = m / (e + d)``;
    - the passing pressures an action leaves behind (fatigue ``f``, a fresh price shock ``x``)
      raise its silence hazard until they decay; their expected extra losses are charged at
      once: each engaged account is worth ``V - (V - V_silent) x paying_at_risk_per_month x
      [fatigue_churn x f^2 x tau_f / 2 + price_shock_churn x x x tau_x]``, with ``tau`` the
      decay time constant (months) of each pressure;
    - a **silent (at-risk) paying** account keeps paying while silent and comes back with
      probability ``P_back = 1 - P_loss``: ``V_silent = m / (churn + recover) + P_back x V``;
    - a **past-due** account returns by itself with the probability that the card is fixed
      before the backlog expires, ``P_fix = passive / (passive + 1 / expiry)``: ``P_fix x V``
      (a retry that recovers it adds the rest);
    - the part of pushed pro upgrades that will downgrade is valued until its expected
      downgrade only: their ``(pro - basic)`` margin over ``downgrade_days``;
    - an **engaged free** account converts before it leaves with probability ``P_conv =
      conversion / (conversion + free_at_risk_per_month x P_loss + d)`` and is worth ``P_conv
      x V`` (so converting one now adds ``(1 - P_conv) x V``, not a whole lifetime); a silent
      free account ``P_back`` of that.

    Trials and unactivated accounts are not valued: acquisition is not the agent's to buy.
    """
    month = MONTH_DAYS
    margin = arpa(s, p) * p.gross_margin
    silent_exit = p.at_risk_churn_per_month + p.at_risk_recover_per_month
    p_loss = p.at_risk_churn_per_month / silent_exit
    lasting = 1.0 + p.price_level_churn * max(0.0, s.price_level - 1.0) ** 2
    exit_rate = p.paying_at_risk_per_month * lasting * p_loss + p.involuntary_churn
    engaged_value = margin / (exit_rate + p.discount_per_month)
    silent_value = margin / silent_exit + (1.0 - p_loss) * engaged_value
    tau_fatigue = p.fatigue_half_life_days / math.log(2.0) / month
    tau_shock = p.price_shock_half_life_days / math.log(2.0) / month
    extra_silence = (
        p.paying_at_risk_per_month
        * lasting
        * (
            p.fatigue_churn * s.fatigue * s.fatigue * tau_fatigue / 2.0
            + p.price_shock_churn * s.price_shock * tau_shock
        )
    )
    passing_loss = (engaged_value - silent_value) * min(extra_silence, 1.0)
    engaged = max(s.paying - s.at_risk_paying, 0.0)
    p_fix = p.passive_recovery_per_day / (
        p.passive_recovery_per_day + 1.0 / p.failed_payment_expiry_days
    )
    conversion = p.free_conversion_per_month * s.price_level**-p.price_conversion_elasticity
    p_convert = conversion / (conversion + p.free_at_risk_per_month * p_loss + p.discount_per_month)
    free_value = p_convert * (engaged_value - passing_loss)
    downgrade_margin = s.pushed_pro * (p.pro_price - p.basic_price) * s.price_level * p.gross_margin
    lifetime = 1.0 / (exit_rate + p.discount_per_month)
    regretted = downgrade_margin * (lifetime - p.downgrade_days / month)
    return (
        engaged * (engaged_value - passing_loss)
        + s.at_risk_paying * silent_value
        + s.failed_payments * p_fix * engaged_value
        - regretted
        + s.active_free * free_value
        + s.at_risk_free * (1.0 - p_loss) * free_value
    )


def _outflows(stock: float, duration: float, *hazards: float) -> tuple[float, ...]:
    """Competing exits from one stock over ``duration``: each hazard's share of
    ``stock * (1 - exp(-sum(hazards) * duration))``, so the exits never exceed the stock."""
    total = sum(hazards)
    if total <= 0.0 or stock <= 0.0:
        return (0.0,) * len(hazards)
    leaving = stock * -math.expm1(-total * duration)
    return tuple(leaving * hazard / total for hazard in hazards)


def _remove_paying(s: BusinessState, accounts: float) -> None:
    """Take accounts out of the paying plans in proportion to the plans' sizes."""
    paying = s.paying
    if paying <= 0:
        return
    share = min(accounts / paying, 1.0)
    s.paying_basic *= 1.0 - share
    s.paying_pro *= 1.0 - share
    s.pushed_pro *= 1.0 - share


def _billing(s: BusinessState, p: BusinessParams, shocks: list[float], dt: float) -> float:
    """Monthly billing pro rata; declines go past due; the backlog heals or expires.
    Returns accounts lost to involuntary churn."""
    paying = s.paying
    attempts = paying * dt / MONTH_DAYS
    defect_rate = s.defects / records(s, p)
    failure_rate = max(p.billing_failure_rate + 0.5 * defect_rate, shocks[_OUTAGE])
    failures = attempts * failure_rate
    silent_share = s.at_risk_paying / paying if paying > 0 else 0.0
    _remove_paying(s, failures)
    s.at_risk_paying -= failures * silent_share
    fixed, expired = _outflows(
        s.failed_payments, dt, p.passive_recovery_per_day, 1.0 / p.failed_payment_expiry_days
    )
    s.failed_payments += failures - fixed - expired
    _restore_paying(s, p, fixed)
    weight = dt / EMA_DAY
    s.billing_attempts_ema += weight * (attempts / dt - s.billing_attempts_ema)
    s.billing_failures_ema += weight * (failures / dt - s.billing_failures_ema)
    s.paying_churn_today += expired
    s.churned += expired
    return expired


def _data(
    s: BusinessState, p: BusinessParams, shocks: list[float], dt: float, churned: float
) -> None:
    """Defects arrive with new and updated records; churned accounts leave orphans."""
    corruption = 1.0 + 5.0 * (shocks[_CORRUPTION] > 0)
    new_records = p.records_per_account * (s.trial / COHORT_DAYS + 0.05 * s.living_accounts)
    s.defects += p.defect_rate * corruption * new_records * dt
    s.orphans += p.orphans_per_churned * churned


def _money(s: BusinessState, p: BusinessParams, dt: float, action_cost: float) -> None:
    """Revenue and costs of the step; cash follows."""
    month = dt / MONTH_DAYS
    revenue = s.last_revenue + mrr(s, p) * month
    costs = (
        p.marketing_per_day * dt
        + (p.infra_cost_per_month * s.infra_cost_level + p.fixed_costs_per_month) * month
        + action_cost
    )
    s.cash += revenue - costs
    s.last_revenue = revenue
    s.last_costs = costs
    s.last_action_cost = action_cost


def _decay(s: BusinessState, p: BusinessParams) -> None:
    """Fatigue, lifts, pressures and memories fade; the funnel leaks a little."""
    keep = p.step_decay
    s.fatigue *= keep.fatigue
    s.onboarding *= keep.onboarding
    s.price_shock *= keep.price_shock
    s.feature_level *= keep.feature
    s.retry_pressure *= keep.retry_pressure
    s.channel_mix = p.base_channel_mix + (s.channel_mix - p.base_channel_mix) * keep.channel_mix
    s.funnel_quality *= keep.funnel
    s.prompt_readiness = 1.0 - (1.0 - s.prompt_readiness) * keep.readiness
    if s.pushed_pro > 0.0:
        downgraded = min(s.pushed_pro * (1.0 - keep.downgrade), s.paying_pro)
        s.pushed_pro -= downgraded
        s.paying_pro -= downgraded
        s.paying_basic += downgraded
    if any(s.recent_use):
        memory = keep.recent_use
        # Memories below a thousandth of a use are forgotten, so quiet stretches cost nothing.
        s.recent_use = tuple(u * memory if u > 1e-3 else 0.0 for u in s.recent_use)


def _end_of_day(s: BusinessState, p: BusinessParams, health: float) -> None:
    """Age the trial cohorts, mature the oldest, shift the daily windows."""
    pending, activated = s.trial_pending[-1], s.trial_activated[-1]
    health_return = min(1.0, health / 85.0)
    retained = (
        activated * p.d7_return_activated + pending * p.d7_return_unactivated
    ) * health_return
    s.matured_signups = (*s.matured_signups[1:], pending + activated)
    s.matured_activated = (*s.matured_activated[1:], activated)
    s.matured_retained = (*s.matured_retained[1:], retained)
    s.active_free += activated
    s.unactivated += pending
    s.trial_pending = (0.0, *s.trial_pending[:-1])
    s.trial_activated = (0.0, *s.trial_activated[:-1])
    s.conversions_days = (*s.conversions_days[1:], s.conversions_today)
    s.paying_churn_days = (*s.paying_churn_days[1:], s.paying_churn_today)
    s.messages_days = (*s.messages_days[1:], s.messages_today)
    s.mrr_days = (*s.mrr_days[1:], mrr(s, p))
    s.conversions_today = s.paying_churn_today = s.messages_today = 0.0


# --- reward and termination ---------------------------------------------------------------


def revenue_scale(p: BusinessParams) -> float:
    """USD that count as one unit of reward: a step's revenue at the starting size."""
    return p.initial_paying * p.base_arpa * p.dt_days / MONTH_DAYS


def terminal(s: BusinessState, p: BusinessParams) -> bool:
    """The business has failed: cash is gone, or paying accounts fell below
    ``failure_paying_share`` of the start."""
    return s.cash < 0.0 or s.paying < p.failure_paying_share * s.paying_at_start


def reward(s: BusinessState, alignment: float, p: BusinessParams, failed: bool) -> float:
    """The reward of the step that produced ``s``, the one home of the formula::

        value_weight * (revenue - costs + equity_weight * equity_change) / revenue_scale
        + alignment_weight * alignment / 100 - failure_penalty * failed

    costs include the action's; ``equity_change`` is the change in :func:`customer_equity`,
    the segment-valued customer base. With the defaults (``equity_weight`` 1, ``alignment_weight``
    0) the return of an episode is the cash it earned plus the change in what its customers are
    worth, in units of one step's starting revenue.
    """
    value = (
        s.last_revenue - s.last_costs + p.equity_weight * s.last_equity_change
    ) / revenue_scale(p)
    return (
        p.value_weight * value
        + p.alignment_weight * alignment / 100.0
        - (p.failure_penalty if failed else 0.0)
    )
