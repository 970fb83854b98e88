"""The simulator's parameters: one frozen, validated dataclass.

Magnitudes come from ``shared/data/saas_benchmarks.md`` where it has a figure (the source is
named beside the field); where it says "not found", the field says "assumption" and why the
value is plausible. Rates are per day unless the name says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, NamedTuple


class StepDecay(NamedTuple):
    """How much of each decaying quantity survives one step."""

    fatigue: float
    onboarding: float
    price_shock: float
    feature: float
    retry_pressure: float
    channel_mix: float
    recent_use: float
    funnel: float
    readiness: float
    downgrade: float


def _bounded(default: float, low: float, high: float = math.inf) -> Any:
    """A dataclass field whose value must lie in ``[low, high]``."""
    return field(default=default, metadata={"range": (low, high)})


@dataclass(frozen=True)
class BusinessParams:
    """Parameters of the simulated business. Any field can be overridden at ``make`` time:
    ``gymnasium.make("autopilot/SaaSOps-v0", params={"fixed_costs_per_month": 2e5})``.
    """

    # --- time -------------------------------------------------------------------------------
    steps_per_day: int = _bounded(6, 1, 96)
    """Environment steps per simulated day (6: one autonomous cycle every 4 hours)."""

    # --- acquisition and activation -----------------------------------------------------------
    visitors_per_day: float = _bounded(5_000.0, 1.0)
    """Site visitors per day at the base marketing spend (assumption: a small B2B product)."""
    visit_to_signup: float = _bounded(0.03, 0.0, 1.0)
    """Visitor-to-signup rate (assumption; the sheet has no figure)."""
    activation_within_7d: float = _bounded(0.375, 0.01, 0.99)
    """Share of signups activating within 7 days: 37.5% B2B average (Userpilot 2024)."""
    activation_age_decay: float = _bounded(0.7, 0.05, 1.0)
    """Activation hazard shrinks by this factor per day of account age: time to first value is
    front-loaded (median ~36 h, Userpilot 2025)."""
    d7_return_activated: float = _bounded(0.6, 0.0, 1.0)
    """P(seen on day 7 | activated): assumption, so that a cohort's D7 is about 25%."""
    d7_return_unactivated: float = _bounded(0.05, 0.0, 1.0)
    """P(seen on day 7 | not activated): Amplitude sees 98% of new users gone in 2 weeks."""
    unactivated_leave_per_day: float = _bounded(1 / 120, 0.0, 1.0)
    """Unactivated accounts keep logging in now and then for four months on average
    (assumption; it puts the activation rate near the seed's 40% target)."""
    late_activation_per_day: float = _bounded(0.002, 0.0, 1.0)
    """Unactivated accounts that activate late, per day (assumption)."""

    # --- engagement and conversion (per month) ------------------------------------------------
    free_conversion_per_month: float = _bounded(0.05, 0.0, 1.0)
    """Free-to-paid conversion: median 4-8% (Redpoint ~2019; Growth Unhinged 2026)."""
    free_at_risk_per_month: float = _bounded(0.15, 0.0, 5.0)
    """Free activated accounts going silent per month (assumption)."""
    paying_at_risk_per_month: float = _bounded(0.06, 0.0, 5.0)
    """Paying accounts going silent per month; with the recovery and churn below this gives
    ~4% voluntary churn a month (Recurly: B2B 3.95% voluntary)."""
    at_risk_recover_per_month: float = _bounded(0.15, 0.0, 5.0)
    """At-risk accounts coming back unprompted per month (assumption)."""
    at_risk_churn_per_month: float = _bounded(0.35, 0.0, 5.0)
    """At-risk accounts lost per month (assumption, calibrated to the voluntary churn above)."""
    basic_price: float = _bounded(49.0, 0.0)
    """Basic plan, USD per month (assumption)."""
    pro_price: float = _bounded(149.0, 0.0)
    """Pro plan, USD per month (assumption)."""
    pro_share: float = _bounded(0.25, 0.0, 1.0)
    """Share of new paying customers on the pro plan (assumption; ARPA ~ $74)."""
    gross_margin: float = _bounded(0.79, 0.0, 1.0)
    """Subscription gross margin: 79% median (Pacific Crest 2013)."""

    # --- billing ------------------------------------------------------------------------------
    billing_failure_rate: float = _bounded(0.06, 0.0, 1.0)
    """Share of billing attempts declined: 5-14% in B2B (Recurly)."""
    passive_recovery_per_day: float = _bounded(0.03, 0.0, 1.0)
    """Failed payments customers fix themselves, per day (assumption)."""
    failed_payment_expiry_days: float = _bounded(14.0, 0.5)
    """Mean days before an unrecovered failed payment cancels the subscription: Stripe's
    default policy retries for 2 weeks."""
    retry_recovery: float = _bounded(0.35, 0.0, 1.0)
    """Share of the backlog one retry round recovers: Smart Retries recover ~57% in 8 tries
    (2nd source); recovery happens mostly 2-12 days after the decline (Recurly)."""
    retry_fee: float = _bounded(0.40, 0.0)
    """USD per retried payment, the network's excess-retry fee included ($0.10, Visa 2022)."""
    excessive_retries: float = _bounded(2.5, 0.1)
    """Retry rounds in the last ~2 days beyond which card networks flag the merchant and
    customers are annoyed (Visa: at most 15 reattempts in 30 days; Mastercard: >10 a day)."""
    excess_retry_churn: float = _bounded(0.08, 0.0, 1.0)
    """Share of the backlog cancelled per retry round beyond ``excessive_retries``."""

    # --- data ---------------------------------------------------------------------------------
    records_per_account: float = _bounded(40.0, 1.0)
    """Workflows and events stored per account (assumption)."""
    defect_rate: float = _bounded(0.004, 0.0, 1.0)
    """Share of new records that are defective (assumption: B2B contact data decays ~2.1% a
    month, MarketingSherpa; only processing-breaking defects are counted here)."""
    orphans_per_churned: float = _bounded(6.0, 0.0)
    """Records left behind per churned account (assumption)."""
    data_fix_share: float = _bounded(0.7, 0.0, 1.0)
    """Share of defects one data fix repairs; the rest are unfixable by rules."""
    orphan_cleanup_share: float = _bounded(0.9, 0.0, 1.0)
    """Share of orphans one cleanup archives."""

    # --- infrastructure -----------------------------------------------------------------------
    initial_utilization: float = _bounded(0.6, 0.01, 0.95)
    """Load / capacity at the start."""
    base_latency_ms: float = _bounded(180.0, 1.0)
    """p95 latency at low utilization (assumption)."""
    base_error_rate: float = _bounded(0.002, 0.0, 1.0)
    """Request error rate in good health (assumption)."""
    incident_recovery_per_day: float = _bounded(0.6, 0.0, 24.0)
    """Rate at which incident severity decays unaided (assumption: ~1 day half-life)."""
    latency_conversion_per_100ms: float = _bounded(0.024, 0.0, 1.0)
    """Conversion lost per 100 ms of extra latency: 2.4% desktop (Akamai 2017)."""
    infra_cost_per_month: float = _bounded(25_000.0, 0.0)
    """Hosting cost per month at the starting capacity (assumption; inside the 21% COGS)."""
    capacity_step: float = _bounded(0.25, 0.0, 10.0)
    """Capacity (and its cost) added by one ``scale_infra`` (assumption, range 0.1-0.5: one
    more node in a pool of a few)."""

    # --- money --------------------------------------------------------------------------------
    marketing_per_day: float = _bounded(3_000.0, 0.0)
    """Marketing spend per day (gives CAC ~ $350 and LTV:CAC ~ 4, Skok's >= 3)."""
    fixed_costs_per_month: float = _bounded(220_000.0, 0.0)
    """Payroll and overhead (assumption: the business runs close to breakeven)."""
    initial_cash: float = _bounded(1_500_000.0, 0.0)
    """Cash at the start; the business fails when cash runs out."""
    initial_paying: float = _bounded(5_000.0, 1.0)
    """Paying accounts at the start (the rest of the funnel starts at its steady state)."""

    # --- action effects -----------------------------------------------------------------------
    action_cost_scale: float = _bounded(1.0, 0.0)
    """Multiplies every action's one-off catalogue cost: a business scaled to another size
    (``agent.seed.scaled_params``) pays proportionally for engineering and campaigns."""
    campaign_cost_per_message: float = _bounded(0.05, 0.0)
    """USD per win-back message (assumption)."""
    win_back_rate: float = _bounded(0.03, 0.0, 1.0)
    """At-risk accounts won back by one fresh campaign. Assumption, plausible range 1-5%: the
    sheet has no SaaS reactivation rate; Return Path's ~12% is a win-back *read* rate, and a
    reactivation needs a read, a click (2.9% of recipients per campaign, Mailchimp 2019) and a
    return, so the rate sits well below the read rate."""
    campaign_fatigue: float = _bounded(0.4, 0.0)
    """Fatigue added by a retention campaign. Assumption, plausible range 0.2-0.6: with
    ``fatigue_churn`` one campaign is harmless and a weekly barrage is not; the sheet's figures
    are shares of unsubscribe *reasons* (26% "too many emails", MarketingSherpa 2017) and a
    0.25% unsubscribe rate per campaign (Mailchimp 2019), not a churn magnitude."""
    prompt_fatigue: float = _bounded(0.3, 0.0)
    """Fatigue added by an upgrade prompt (assumption, range 0.1-0.5: an in-product prompt
    annoys less than an email campaign)."""
    fatigue_half_life_days: float = _bounded(4.0, 0.01)
    """Days for fatigue to halve."""
    fatigue_churn: float = _bounded(1.2, 0.0)
    """At-risk hazard multiplier is ``1 + fatigue_churn * fatigue**2``: harmless once,
    damaging when repeated."""
    prompt_conversion: float = _bounded(0.015, 0.0, 1.0)
    """Share of free activated accounts an unfatigued prompt to a fully ready audience
    converts (assumption, range 0.5-3%; the sheet has vendor claims only)."""
    prompt_pro_share: float = _bounded(0.02, 0.0, 1.0)
    """Share of basic accounts an unfatigued prompt to a fully ready audience moves to pro
    (assumption, range 1-5%). With ``prompt_refill_days`` it bounds the expansion prompts can
    add: about ``prompt_pro_share * 365 / prompt_refill_days`` of basic accounts a year (12%,
    +$100 each, ~9% of MRR), inside the 0-10% expansion that a net revenue retention of 100%
    (ACV < $12k) to 110% with a gross retention of 90-93% implies (SaaS Capital 2023)."""
    prompt_refill_days: float = _bounded(60.0, 1.0)
    """Days for the audience's readiness to upgrade to refill (time constant): a prompt
    converts the ready share of accounts and leaves the rest for later (assumption, range
    30-120 days: upgrade intent comes with growing usage, over months)."""
    organic_upgrade_days: float = _bounded(45.0, 1.0)
    """Mean days for an account that is ready to upgrade to move to pro by itself, with no
    prompt (assumption, range 30-90 days: most SaaS expansion is self-serve, as usage grows).
    With ``prompt_refill_days`` the readiness settles near ``45 / (45 + 60)``, about 43% of
    its maximum, and organic expansion moves about 7% of basic accounts a year: a prompt pulls
    forward upgrades that would mostly have come anyway."""
    pushed_downgrade_share: float = _bounded(0.2, 0.0, 1.0)
    """Share of prompted upgrades that downgrade again within about a month (assumption,
    range 10-30%: a pushed upgrade is bought before the need)."""
    downgrade_days: float = _bounded(30.0, 1.0)
    """Mean days until a regretted, prompted upgrade downgrades (assumption: one billing
    cycle)."""
    onboarding_lift: float = _bounded(0.6, 0.0, 10.0)
    """Activation hazard multiplier gained by one onboarding boost (saturating). Assumption,
    range 0.2-1.0: guided onboarding moves a cohort's activation by a few points, of the order
    of the sheet's vertical spread (24-55%, Userpilot 2024), not beyond it."""
    onboarding_half_life_days: float = _bounded(3.0, 0.01)
    """Days for an onboarding lift to halve."""
    onboarding_late_activation: float = _bounded(0.01, 0.0, 1.0)
    """Share of unactivated accounts an onboarding boost activates."""
    funnel_gap_closed: float = _bounded(0.5, 0.0, 1.0)
    """Share of the funnel leak one fix closes (diminishing by construction). Assumption,
    range 0.2-0.6: one engineering fix removes the biggest leak, not all of them."""
    initial_funnel_quality: float = _bounded(0.8, 0.01, 1.0)
    """Funnel quality at the start: multiplies signups and activation."""
    funnel_decay_per_day: float = _bounded(0.002, 0.0, 1.0)
    """Funnel quality lost per day as the product changes (assumption)."""
    price_step: float = _bounded(0.10, 0.0, 1.0)
    """Relative list-price change of one price action."""
    price_conversion_elasticity: float = _bounded(1.5, 0.0)
    """Conversion scales as ``price_level ** -elasticity``."""
    willingness_to_pay_median: float = _bounded(4.6, 0.01)
    """Median willingness to pay of paying accounts, relative to the starting price
    (assumption; lognormal across accounts)."""
    willingness_to_pay_spread: float = _bounded(0.6, 0.01)
    """Lognormal sigma of willingness to pay: with the median above, a +60% raise makes 3.3%
    of the base cancel at once, the figure of its source (Netflix 2011 lost 3.3% in a quarter
    to +60%), and one +10% step about 0.25%; the extra churn over the following weeks comes
    from ``price_shock_churn``. Revenue ``price x share still
    willing`` falls towards zero as the price grows, so no price run can make revenue
    unbounded."""
    price_shock_churn: float = _bounded(3.0, 0.0)
    """At-risk hazard multiplier per unit of fresh price shock: a raise is felt over weeks
    (Netflix 2011: +60% cost 3.3% of subscribers in a quarter)."""
    price_shock_half_life_days: float = _bounded(10.0, 0.01)
    """Days for the churn response to a price change to halve."""
    price_level_churn: float = _bounded(4.0, 0.0)
    """Lasting at-risk hazard multiplier ``1 + k * (price_level - 1)**2`` above the starting
    price (assumption: the business is priced near its optimum: valued with the customer base,
    one step up pays over a quarter and two or more do not; the sheet has no SaaS figure)."""
    marketing_mix_step: float = _bounded(0.3, 0.0, 1.0)
    """Share of the remaining broad spend one shift moves to targeted channels (assumption,
    range 0.1-0.5)."""
    targeted_reach_loss: float = _bounded(0.35, 0.0, 1.0)
    """Visitors lost at a fully targeted mix (assumption, range 0.2-0.5)."""
    targeted_intent_gain: float = _bounded(0.8, 0.0)
    """Activation gained at a fully targeted mix (assumption, range 0.3-1.0: product-led
    activation runs below sales-led, Userpilot 2024)."""
    base_channel_mix: float = _bounded(0.2, 0.0, 1.0)
    """Targeted share the mix drifts back to as campaigns end."""
    mix_half_life_days: float = _bounded(20.0, 0.01)
    """Days for a marketing shift to fade halfway."""
    feature_boost: float = _bounded(0.3, 0.0, 1.0)
    """Conversion gain and at-risk hazard reduction of a shipped feature (assumption, range
    0.1-0.4: a roadmap feature moves retention by points, not by multiples)."""
    feature_half_life_days: float = _bounded(60.0, 0.01)
    """Days for a shipped feature's effect to halve."""
    release_bug_probability: float = _bounded(0.25, 0.0, 1.0)
    """Chance a release corrupts data (assumption)."""
    release_bug_defects: float = _bounded(0.02, 0.0, 1.0)
    """Share of records a buggy release corrupts."""
    max_features_in_flight: int = _bounded(2, 0, 100)
    """Features the team can build at once; a third is refused by ``ship_feature``'s cost
    being spent on nothing (assumption: one squad per feature, two squads)."""
    repeat_half_life_days: float = _bounded(2.0, 0.01)
    """Days for the diminishing-returns memory of each action to halve."""

    # --- reward -------------------------------------------------------------------------------
    value_weight: float = _bounded(1.0, 0.0)
    """Weight of the business value term."""
    equity_weight: float = _bounded(1.0, 0.0)
    """Share of a change in the value of the customer base (``dynamics.customer_equity``:
    segment-valued, discounted gross profit) that counts beside the cash of the step. At 1 the
    return is an operator's: cash earned plus the change in what the customer base is worth."""
    discount_per_month: float = _bounded(0.01, 0.0, 1.0)
    """Discount rate of future gross profit in the customer base's value (assumption: a cost
    of capital of about 12% a year; range 0.5-2% a month)."""
    involuntary_churn: float = _bounded(0.0138, 0.0, 1.0)
    """Involuntary churn per month assumed in customer equity: 1.38% (Recurly)."""
    alignment_weight: float = _bounded(0.0, 0.0)
    """Weight of the KPI-target alignment term. 0 by default: alignment is reported
    (``info["kpis"]["alignment_score"]``), not paid, because a near-constant bonus for KPIs
    that are usually on target compresses every comparison and pays for actions that do not
    earn money. Set it to study target-chasing objectives."""
    failure_penalty: float = _bounded(100.0, 0.0)
    """Reward subtracted in the step the business fails."""
    failure_paying_share: float = _bounded(0.25, 0.0, 1.0)
    """The business fails when paying accounts fall below this share of the start."""

    def __post_init__(self) -> None:
        for f in fields(self):
            low, high = f.metadata["range"]
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"parameter {f.name}={value!r} must be a number")
            if f.type == "int" and not isinstance(value, int):
                raise ValueError(f"parameter {f.name}={value!r} must be an integer")
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"parameter {f.name}={value!r} is outside [{low}, {high}]")

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None) -> BusinessParams:
        """Defaults with ``overrides`` applied; an unknown name raises ``ValueError``."""
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; allowed: {sorted(known)}")
        return cls(**overrides)

    # --- derived quantities -------------------------------------------------------------------
    @property
    def dt_days(self) -> float:
        """Length of one step in days."""
        return 1.0 / self.steps_per_day

    @cached_property
    def activation_hazards(self) -> tuple[float, ...]:
        """Activation hazard per day for account ages 0..6 days, front-loaded by
        ``activation_age_decay`` and scaled so 7 days reach ``activation_within_7d``."""
        shape = [self.activation_age_decay**age for age in range(7)]
        total = -math.log(1.0 - self.activation_within_7d)
        return tuple(total * s / sum(shape) for s in shape)

    @cached_property
    def step_decay(self) -> StepDecay:
        """Per-step retention factors of every decaying quantity (``0.5 ** (dt / half-life)``)."""

        def keep(half_life_days: float) -> float:
            return 0.5 ** (self.dt_days / half_life_days)

        return StepDecay(
            fatigue=keep(self.fatigue_half_life_days),
            onboarding=keep(self.onboarding_half_life_days),
            price_shock=keep(self.price_shock_half_life_days),
            feature=keep(self.feature_half_life_days),
            retry_pressure=keep(1.0),
            channel_mix=keep(self.mix_half_life_days),
            recent_use=keep(self.repeat_half_life_days),
            funnel=1.0 - self.funnel_decay_per_day * self.dt_days,
            readiness=math.exp(-self.dt_days / self.prompt_refill_days),
            downgrade=math.exp(-self.dt_days / self.downgrade_days),
        )

    @property
    def base_arpa(self) -> float:
        """ARPA at list prices and the default plan mix (USD per month)."""
        return (1 - self.pro_share) * self.basic_price + self.pro_share * self.pro_price
