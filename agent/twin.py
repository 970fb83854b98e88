"""The closed loop: the simulator and the agent run together on one database.

:func:`run_closed_loop` seeds a business (:func:`agent.seed.seed`), then for each simulated day:

1. the agent runs ``cycles_per_day`` full cycles (default the deployment cadence, one per
   4-hour environment step) in live mode at that day's hours: it observes
   by SQL, decides, passes the guardrails and acts through the actuators (mode ``autopilot``:
   the given policy or the registry's champion, falling back to rules; ``rules``; ``none``:
   no agent at all);
2. the simulator reads the actuators' effects back from the database as actions on its state:
   Outbox messages and jobs (``retention_campaign``, ``payment_retry``), Archive rows
   (``orphan_cleanup``), field repairs (``data_fix``) and Settings changes (the optimization and
   decision actions), and steps its dynamics for the day with them (one action per 4-hour
   step, noop for the rest);
3. the simulator writes the day into the database: new signups, day-7 returns, closed
   accounts (past-due, silent paying and silent free ones, as the simulator lost them; what
   they leave behind becomes orphans), conversions and plan changes, the prompts' messages,
   a day of activity for the engaged share of free and of paying accounts (the accounts the
   campaign messaged are the first to come back when the simulator's engagement rises), the
   day's charges with their failures and the past-due backlog brought to the simulator's
   (retried charges recover first), new defects (corrupted event types, repairable at the
   simulator's ``data_fix_share``) and the monitoring samples of each step (error rate,
   latency, failed jobs). Each is sized by the simulator's state, so what observation reads
   is what the simulator holds (``benchmarks/twin_agreement.py`` measures it KPI by KPI).

**The approval path.** Decisions the guardrails hold wait for a human. ``approver_delay_hours``
models that human: ``None`` (the default) is nobody, so a held decision never executes; a
number ``d`` in ``[0, 48)`` (:data:`agent.orchestrator.APPROVAL_TTL`) is an operator who
approves every held decision once it has waited ``d`` hours. The operator looks at the queue
before each cycle and once at :data:`OPERATOR_END_OF_DAY`; an approval is executed through
:func:`agent.approvals.approve`, so it passes the same re-check as a human's (a refused one
stays unexecuted). :class:`LoopResult` counts, per source (``policy``, ``self_healing``), how
many non-``noop`` decisions executed, found nothing to do, were held and were blocked
(:data:`OUTCOMES`), and what the operator's answers led to (``approved``, ``refused``,
``expired``).

The day's rows are sampled by this module's small writer, sized by the simulator's state
(:mod:`agent.seed` materializes a whole history at once and has no per-day entry point). The
result holds the simulator's true KPIs day by day and the business value (the environment's
cumulative reward), so the three modes can be compared on the same seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from agent import seed as seeding
from agent.approvals import ApprovalError, approve
from agent.db import make_engine, upgrade
from agent.guardrails import Verdict
from agent.models import (
    EVENT_TYPES,
    Approval,
    Archive,
    BillingEvent,
    Event,
    Execution,
    Outbox,
    Setting,
    Subscription,
    UsageMetric,
    User,
    Workflow,
)
from agent.observe import (
    COHORT_WINDOW,
    MARKETING_METRIC,
    SILENT_DAYS,
    TRIAL_DAYS,
    active_at,
    unresolved_failures,
)
from agent.orchestrator import (
    APPROVAL_TTL,
    NOTHING_TO_DO,
    CycleRunning,
    DecisionOutcome,
    resolve_policy,
    run_full_cycle,
)
from environment.actions import ACTION_NAMES, CYCLE_HOURS, NOOP, action_index
from environment.dynamics import true_kpis
from environment.kpis import KPI_NAMES
from environment.params import BusinessParams
from environment.state import MONTH_DAYS, WEEK_DAYS
from policies.base import Policy

Mode = Literal["autopilot", "rules", "none"]
MODES: tuple[str, ...] = ("autopilot", "rules", "none")
TRAJECTORY_KPIS = (
    "mrr",
    "activation_rate",
    "d7_retention",
    "ltv_cac",
    "health_score",
    "alignment_score",
    "at_risk_share",
    "billing_failure_rate",
    "orphaned_records",
)
START = datetime(2025, 1, 1)
OUTCOMES: tuple[str, ...] = ("executed", NOTHING_TO_DO, "needs_approval", "blocked")
"""What became of a decision: :class:`agent.guardrails.Verdict` values, except that a decision
the guardrails passed but whose actuator found no row to act on is ``nothing_to_do``, not
``executed`` (it changed nothing)."""
OPERATOR = "twin-operator"
"""The name the modelled operator approves under (audited like any approver)."""
OPERATOR_END_OF_DAY = timedelta(hours=23, minutes=30)
"""The operator's last look at the queue each day (after the day's cycles)."""
MAX_APPROVER_DELAY_HOURS = APPROVAL_TTL.total_seconds() / 3600
"""An operator slower than this never answers: held decisions expire first."""

PROMPT_AUDIENCES: dict[str, Callable[[datetime], ColumnElement[bool]]] = {
    "onboarding_boost": lambda at: or_(
        User.activated_at.is_(None), User.signup_at > at - timedelta(days=WEEK_DAYS)
    ),
    "upgrade_prompt": lambda at: and_(
        User.activated_at.is_not(None),
        ~User.id.in_(
            select(Subscription.user_id).where(
                Subscription.ended_at.is_(None), Subscription.plan == "pro"
            )
        ),
    ),
}
"""Whom each prompt setting messages (the simulator's audiences: trials and unactivated
accounts; free and basic accounts)."""
STEP = timedelta(hours=CYCLE_HOURS)
"""One environment step of simulated time."""

# The day writer's own magnitudes (assumptions: the simulator has no clock within a day):
ACTIVATION_DELAY = timedelta(hours=2)
"""A trial that activates does so a couple of hours after signing up."""
DAY7 = timedelta(days=7)
"""The day-7 return window opens this long after signup (observation's ``d7_retention``); a
return is written at its opening, so it lies inside the window and inside the day."""
CHURN_TIME = timedelta(hours=12)
"""Accounts that churn close at midday."""
CAMPAIGN_MEMORY = timedelta(days=2)
"""Accounts messaged by a retention campaign this recently come back first."""
RECOVERY_TIME = timedelta(hours=6)
"""A past-due charge that recovers does so in the morning."""
DEFECT_WINDOW = timedelta(days=7)
"""New defects corrupt events of the last week (a bad release or client rewrites recent
data)."""
HAND_REPAIRED_TYPE = "logged_in"
"""What a corrupt event type no rule can repair becomes when the twin has people fix it (the
original is lost; the commonest type)."""
UNREPAIRABLE_EVENT_TYPE = "wf_run_v0"
"""The twin's unrepairable defect: a type no safe rewrite makes known."""


@dataclass
class LoopResult:
    """What a closed loop did: the simulator's true KPIs per day (``trajectory``), the final
    KPIs, the business value (cumulative reward), executions per action and timing."""

    mode: str
    days: int
    seed: int
    policy: str
    business_value: float
    final_kpis: dict[str, float]
    trajectory: list[dict[str, float]] = field(default_factory=list)
    executions: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per source, the non-``noop`` decisions by guardrail outcome (:data:`OUTCOMES`)."""
    approvals: dict[str, int] = field(default_factory=dict)
    """The operator's answers: ``approved`` (executed), ``refused``, ``expired``."""
    approver_delay_hours: float | None = None
    cycles: int = 0
    policy_note: str = ""
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        """One line of the comparison table."""
        return {
            "mode": self.mode,
            "policy": self.policy,
            "days": self.days,
            "business_value": round(self.business_value, 2),
            **{k: round(self.final_kpis.get(k, float("nan")), 4) for k in TRAJECTORY_KPIS},
            "executions": sum(self.executions.values()),
            **{
                f"policy_{outcome}": self.decisions.get("policy", {}).get(outcome, 0)
                for outcome in OUTCOMES
            },
            "approved": self.approvals.get("approved", 0),
            "seconds": round(self.seconds, 1),
        }


def _effects_as_actions(engine: Engine, since: datetime, until: datetime) -> list[int]:
    """The agent's effects written in [since, until), read back from the effect tables, as
    catalogue actions (one per effect kind)."""
    actions: list[int] = []
    with engine.connect() as connection:
        topics = connection.execute(
            select(Outbox.topic)
            .where(
                Outbox.execution_id.is_not(None),
                Outbox.created_at >= since,
                Outbox.created_at < until,
            )
            .group_by(Outbox.topic)
        ).scalars()
        actions += [action_index(t) for t in topics if t in ACTION_NAMES]
        archived = connection.execute(
            select(func.count())
            .select_from(Archive)
            .where(
                Archive.execution_id.is_not(None),
                Archive.archived_at >= since,
                Archive.archived_at < until,
            )
        ).scalar_one()
        if archived:
            actions.append(action_index("orphan_cleanup"))
        changed = connection.execute(
            select(Setting.set_by).where(
                Setting.execution_id.is_not(None),
                Setting.effective_at >= since,
                Setting.effective_at < until,
            )
        ).scalars()
        actions += [action_index(s.split(":", 1)[1]) for s in changed if s.startswith("agent:")]
        fixes = connection.execute(
            select(func.count())
            .select_from(Execution)
            .where(
                Execution.action == "data_fix",
                Execution.status == "executed",
                Execution.started_at >= since,
                Execution.started_at < until,
            )
        ).scalar_one()
        if fixes:
            actions.append(action_index("data_fix"))
    return actions


@dataclass(frozen=True)
class _Day:
    """One simulated day being written: the open connection, its bounds, the simulator's
    states at its start and end, and the living accounts' condition at its end."""

    connection: Connection
    start: datetime
    end: datetime
    before: Any
    after: Any
    rng: np.random.Generator
    kpis: Mapping[str, float]
    """The simulator's true KPIs at the day's end (the rates the day's rows are drawn at)."""

    @property
    def alive(self) -> ColumnElement[bool]:
        return and_(
            User.signup_at <= self.end,
            or_(User.deleted_at.is_(None), User.deleted_at > self.end),
        )

    def times(self, k: int) -> list[datetime]:
        """``k`` uniform random times within the day."""
        return [self.start + timedelta(seconds=float(s)) for s in self.rng.random(k) * 86_399]


def _ids(user_ids: Iterable[int | None]) -> set[int]:
    """The user ids among ``user_ids`` (rows without a user left out)."""
    return {int(u) for u in user_ids if u is not None}


def _in_good_standing(day: _Day, column: Any) -> list[Any]:
    """(id, user id, ``column``) of the subscriptions active at the day's start without an
    unresolved failed charge, by id."""
    unresolved = unresolved_failures(day.start)
    return list(
        day.connection.execute(
            select(Subscription.id, Subscription.user_id, column)
            .outerjoin(unresolved, unresolved.c.subscription_id == Subscription.id)
            .where(active_at(day.start), unresolved.c.subscription_id.is_(None))
            .order_by(Subscription.id)
        ).all()
    )


def _outside_day7(at: datetime, signup: datetime, day: _Day) -> datetime | None:
    """``at``, moved out of the account's day-7 window ``[signup + 7 d, signup + 8 d)`` while
    staying within ``day`` (after the window if it closes today, else just before it); ``None``
    when the window covers the whole day."""
    opens, closes = signup + DAY7, signup + DAY7 + timedelta(days=1)
    if not opens <= at < closes:
        return at
    if closes < day.end:
        return closes
    return max(day.start, opens - timedelta(seconds=1)) if opens > day.start else None


class _DayWriter:
    """Writes one simulated day into the database, sized by the simulator's state."""

    def __init__(self, engine: Engine, rng: np.random.Generator, params: BusinessParams) -> None:
        self.engine = engine
        self.rng = rng
        self.params = params
        self.engaged: set[int] = set()

    def _sample(self, items: list[int], k: int) -> list[int]:
        """``k`` of ``items`` without replacement, from this writer's generator (the database's
        RANDOM() would make a seeded run irreproducible)."""
        if k <= 0 or not items:
            return []
        picked = self.rng.choice(len(items), size=min(k, len(items)), replace=False)
        return [items[int(i)] for i in sorted(picked)]

    def _count(self, expected: float) -> int:
        return seeding.stochastic_round(self.rng, expected)

    def write(
        self, day_start: datetime, before: Any, after: Any, steps: Sequence[Any] = ()
    ) -> None:
        """Write one simulated day (``before`` -> ``after``, the simulator's states; ``steps``:
        its state after each step) into the database, in one transaction: one step per
        table, in a fixed order (the random stream, and so the rows, depend on it)."""
        end = day_start + timedelta(days=1)
        with self.engine.begin() as connection:
            kpis = true_kpis(after, self.params)
            day = _Day(connection, day_start, end, before, after, self.rng, kpis)
            self._write_signups(day)
            self._write_unactivated(day)
            self._write_day7_returns(day)
            self._write_churn(day)
            self._write_subscriptions(day)
            self._write_prompts(day)
            self._write_engagement(day)
            self._write_billing(day)
            self._write_repairs(day)
            self._write_defects(day)
            self._write_health(day, steps)

    def _write_health(self, day: _Day, steps: Sequence[Any]) -> None:
        """Monitoring: the simulator's error rate, latency and failed jobs at the end of each
        step, and the day's marketing spend, as :mod:`agent.seed` records them, so the
        observed health follows the simulator's (scaling, incidents) as it does in training
        and CAC keeps its base."""
        rows = [
            {"name": name, "recorded_at": day.start + (k + 1) * STEP, "value": value}
            for k, state in enumerate(steps)
            for name, value in seeding.health_metrics(state, self.params)
        ]
        # the day's marketing spend, as the seed records it (the base of observed CAC)
        spend = {"recorded_at": day.end, "value": float(self.params.marketing_per_day)}
        rows.append({"name": MARKETING_METRIC, **spend})
        if rows:
            day.connection.execute(insert(UsageMetric), rows)

    def _write_signups(self, day: _Day) -> None:
        """Signups: the simulator's new trial cohort, each activating at the simulator's
        ``signup_to_activation`` (the share observation reads: activated within 7 days)."""
        rng = self.rng
        signups = self._count(day.after.trial_pending[1] + day.after.trial_activated[1])
        activated_share = day.kpis["signup_to_activation"]
        times = day.times(signups)
        if signups:
            rows = [
                {
                    "email": f"twin{day.start:%j}{i}.{rng.integers(10**9)}@example.com",
                    "signup_at": t,
                    "activated_at": t + ACTIVATION_DELAY
                    if rng.random() < activated_share
                    else None,
                    "acquisition_channel": "broad",
                }
                for i, t in enumerate(times)
            ]
            day.connection.execute(insert(User), rows)

    def _write_unactivated(self, day: _Day) -> None:
        """Accounts past their first week that never activated follow the simulator's count,
        as :mod:`agent.seed` keeps them: of the twin's excess, the simulator's leavers (its
        ``unactivated_leave_per_day``) close, only accounts out of the measured cohorts
        (older than :data:`agent.observe.COHORT_WINDOW`), their few records deleted with them
        (the simulator counts no orphans for them); the rest activate late, today. Without
        this no unactivated account ever left, and observed activation fell a point a week
        behind the simulator's."""
        members = day.connection.execute(
            select(User.id, User.signup_at)
            .where(day.alive, User.activated_at.is_(None))
            .where(User.signup_at <= day.start - timedelta(days=TRIAL_DAYS))
            .order_by(User.id)
        ).all()
        excess = len(members) - self._count(day.after.unactivated)
        if excess <= 0:
            return
        mean = 0.5 * (day.before.unactivated + day.after.unactivated)
        settled_before = day.start - timedelta(days=COHORT_WINDOW[1])
        settled = [int(u) for u, signup in members if signup <= settled_before]
        gone = self._sample(
            settled, min(excess, self._count(mean * self.params.unactivated_leave_per_day))
        )
        leaving = set(gone)
        late = self._sample(
            [int(u) for u, _ in members if int(u) not in leaving], excess - len(gone)
        )
        at = day.start + CHURN_TIME
        if gone:
            day.connection.execute(delete(Event).where(Event.user_id.in_(gone)))
            day.connection.execute(update(User).where(User.id.in_(gone)).values(deleted_at=at))
        if late:
            day.connection.execute(update(User).where(User.id.in_(late)).values(activated_at=at))

    def _write_day7_returns(self, day: _Day) -> None:
        """Day-7 returns: of the alive users whose seventh day after signup falls today, the
        simulator's ``d7_retention`` share comes back (an event on that day), as observation
        measures it; without them the observed day-7 retention fell to zero once the seeded
        cohorts had aged out."""
        rng = self.rng
        cohort = day.connection.execute(
            select(User.id, User.signup_at).where(
                User.signup_at >= day.start - DAY7,
                User.signup_at < day.end - DAY7,
                or_(User.deleted_at.is_(None), User.deleted_at > day.end),
            )
        ).all()
        back = [
            {"user_id": int(u), "type": "logged_in", "occurred_at": signup + DAY7}
            for u, signup in cohort
            if rng.random() < day.kpis["d7_retention"]
        ]
        if back:
            day.connection.execute(insert(Event), back)

    def _write_churn(self, day: _Day) -> None:
        """Churn: the simulator's lost accounts close, as :mod:`agent.seed` closes them. Its
        paying losses (:func:`agent.seed.paying_losses`): involuntary ones are past-due
        accounts (their subscription ends ``payment_failed``, the failed charge ``expired``),
        voluntary ones silent paying accounts (``canceled``); the rest of its churn are silent
        free accounts. Silent means not engaged yesterday; when too few are, any account of
        the kind closes. What a closed account leaves behind becomes orphans
        (:meth:`_leave_orphans`)."""
        involuntary, voluntary = seeding.paying_losses(day.before, day.after, self.params)
        free_lost = day.after.churned - day.before.churned - involuntary - voluntary
        unresolved = unresolved_failures(day.start)
        past_due = dict(
            day.connection.execute(
                select(Subscription.user_id, Subscription.id)
                .join(unresolved, unresolved.c.subscription_id == Subscription.id)
                .where(active_at(day.start))
                .order_by(Subscription.id)
            ).all()
        )
        paying = dict(
            day.connection.execute(
                select(Subscription.user_id, Subscription.id)
                .where(active_at(day.start), Subscription.user_id.not_in(past_due))
                .order_by(Subscription.id)
            ).all()
        )
        free = sorted(
            day.connection.execute(
                select(User.id).where(
                    day.alive,
                    User.activated_at.is_not(None),
                    User.signup_at <= day.start - timedelta(days=TRIAL_DAYS),
                    User.id.not_in(select(Subscription.user_id).where(active_at(day.start))),
                )
            ).scalars()
        )
        at = day.start + CHURN_TIME
        closed: list[int] = []
        for accounts, expected, reason in (
            (past_due, involuntary, "payment_failed"),
            (paying, voluntary, "canceled"),
        ):
            users = self._silent_first(sorted(accounts), self._count(expected))
            subs = [accounts[u] for u in users]
            if subs:
                day.connection.execute(
                    update(Subscription)
                    .where(Subscription.id.in_(subs))
                    .values(ended_at=at, end_reason=reason, status="canceled")
                )
                day.connection.execute(
                    update(BillingEvent)
                    .where(BillingEvent.subscription_id.in_(subs))
                    .where(BillingEvent.status == "failed", BillingEvent.resolved_at.is_(None))
                    .values(
                        resolved_at=at, resolution="expired" if past_due is accounts else "canceled"
                    )
                )
            closed += users
        closed += self._silent_first(free, self._count(free_lost))
        if closed:
            day.connection.execute(update(User).where(User.id.in_(closed)).values(deleted_at=at))
            self.engaged.difference_update(closed)
            self._leave_orphans(day, closed)

    def _silent_first(self, accounts: list[int], k: int) -> list[int]:
        """``k`` of ``accounts`` at random, those not engaged first."""
        silent = [u for u in accounts if u not in self.engaged]
        picked = self._sample(silent, k)
        return picked + self._sample([u for u in accounts if u in self.engaged], k - len(picked))

    def _leave_orphans(self, day: _Day, closed: list[int]) -> None:
        """Closing accounts deletes their records but leaves the simulator's
        ``orphans_per_churned`` of them behind (their workflows, then events at random), so
        the observed orphans grow as the simulator's do; without this every event of a closed
        account stayed, and orphans grew several times faster than in training."""
        keep = self._count(self.params.orphans_per_churned * len(closed))
        workflows = day.connection.execute(
            select(func.count()).where(Workflow.user_id.in_(closed))
        ).scalar_one()
        events = sorted(
            day.connection.execute(select(Event.id).where(Event.user_id.in_(closed))).scalars()
        )
        left = set(self._sample(events, keep - int(workflows)))
        gone = [e for e in events if e not in left]
        if gone:
            day.connection.execute(delete(Event).where(Event.id.in_(gone)))

    def _write_subscriptions(self, day: _Day) -> None:
        """Conversions and plan changes, as the simulator made them: its day's conversions
        become paid subscriptions of free accounts (engaged ones first), on the pro plan at
        ``pro_share``; then as many basic subscriptions move to pro (an upgrade prompt, a
        natural upgrade) or pro to basic (a pushed upgrade wearing off) as bring the twin's
        pro share of paying accounts to the simulator's (the old subscription ends
        ``upgraded`` or ``downgraded``, the new one starts ``upgrade`` or ``downgrade``), so
        observed MRR and ARPA follow the plans as they do in training."""
        rng, p = self.rng, self.params
        free = day.connection.execute(
            select(User.id)
            .where(day.alive, User.activated_at.is_not(None))
            .where(
                User.id.not_in(select(Subscription.user_id).where(Subscription.ended_at.is_(None)))
            )
            .order_by(User.id)
        ).scalars()
        free_ids = [int(u) for u in free]
        engaged = [u for u in free_ids if u in self.engaged]
        k = self._count(day.after.conversions_days[-1])
        converting = self._sample(engaged, k)
        converting += self._sample(
            [u for u in free_ids if u not in self.engaged], k - len(converting)
        )
        plans = rng.random(len(converting)) < p.pro_share
        self._subscribe(day, converting, plans.tolist(), day.times(len(converting)), "conversion")
        self._change_plans(day)

    def _subscribe(
        self, day: _Day, users: list[int], pro: list[bool], times: list[datetime], reason: str
    ) -> None:
        p = self.params
        if users:
            day.connection.execute(
                insert(Subscription),
                [
                    {
                        "user_id": u, "plan": "pro" if is_pro else "basic",
                        "list_price": p.pro_price if is_pro else p.basic_price,
                        "status": "active", "started_at": t, "start_reason": reason,
                    }
                    for u, is_pro, t in zip(users, pro, times, strict=True)
                ],
            )  # fmt: skip

    def _change_plans(self, day: _Day) -> None:
        """Move subscriptions between plans until the twin's pro share of paying accounts is
        the simulator's (see :meth:`_write_subscriptions`)."""
        a = day.after
        good = _in_good_standing(day, Subscription.plan)
        pro = [(s, u) for s, u, plan in good if plan == "pro"]
        basic = [(s, u) for s, u, plan in good if plan != "pro"]
        excess = len(pro) - round(len(good) * a.paying_pro / max(a.paying, 1.0))
        upgrade = excess < 0
        moving = basic if upgrade else pro
        moved = [moving[i] for i in self._sample(list(range(len(moving))), abs(excess))]
        if not moved:
            return
        at = day.start + CHURN_TIME
        day.connection.execute(
            update(Subscription)
            .where(Subscription.id.in_([s for s, _ in moved]))
            .values(
                ended_at=at, end_reason="upgraded" if upgrade else "downgraded", status="canceled"
            )
        )
        users = [u for _, u in moved]
        reason = "upgrade" if upgrade else "downgrade"
        self._subscribe(day, users, [upgrade] * len(users), [at] * len(users), reason)

    def _write_prompts(self, day: _Day) -> None:
        """The product's messages behind the prompt settings: on a day an ``onboarding_boost``
        or ``upgrade_prompt`` executed, every account it addresses gets a message, as the
        simulator counts them (trials and unactivated accounts; free and basic accounts), so
        observed message pressure carries the prompts as it does in training."""
        started = day.connection.execute(
            select(Execution.action, Execution.started_at).where(
                Execution.action.in_(PROMPT_AUDIENCES),
                Execution.status == "executed",
                Execution.started_at >= day.start,
                Execution.started_at < day.end,
            )
        ).all()
        for action, at in started:
            audience = day.connection.execute(
                select(User.id).where(day.alive, PROMPT_AUDIENCES[action](day.start))
            ).scalars()
            rows = [
                {
                    "created_at": at, "kind": "message", "topic": action, "user_id": int(u),
                    "payload": {"setting": action}, "status": "sent", "sent_at": at,
                }
                for u in audience
            ]  # fmt: skip
            if rows:
                day.connection.execute(insert(Outbox), rows)

    def _write_engagement(self, day: _Day) -> None:
        """Engagement: the simulator's engaged share of past-trial activated accounts is active
        today, free and paying apart (engaged free among free; paying in good standing less
        the silent ones among paying); the rest stay silent, so observation's at-risk share
        reads the simulator's whatever the twin's account counts. When engagement rises,
        accounts come back in this order: those a retention campaign messaged, the newly
        matured (the simulator's new accounts are engaged), those seen within the silent window
        (not yet at risk), the rest. Trials are not counted (the simulator keeps them apart),
        past-due accounts neither, and an account on its seventh day is seen then only through
        its day-7 return (:meth:`_write_day7_returns`), so the observed day-7 retention stays
        the simulator's."""
        matured = and_(
            day.alive,
            User.activated_at.is_not(None),
            User.signup_at <= day.end - timedelta(days=TRIAL_DAYS),
        )
        signups = dict(day.connection.execute(select(User.id, User.signup_at).where(matured)).all())
        unresolved = unresolved_failures(day.end)
        subscribed = select(Subscription.user_id).where(active_at(day.end))
        past_due = select(Subscription.user_id).join(
            unresolved, unresolved.c.subscription_id == Subscription.id
        )
        paying = set(
            day.connection.execute(
                select(User.id).where(matured, User.id.in_(subscribed), ~User.id.in_(past_due))
            ).scalars()
        )
        free = set(signups) - paying - set(day.connection.execute(past_due).scalars())
        seen = _ids(
            day.connection.execute(
                select(Event.user_id)
                .where(Event.occurred_at > day.start - timedelta(days=SILENT_DAYS))
                .where(Event.occurred_at < day.start)
                .group_by(Event.user_id)
            ).scalars()
        )
        messaged = _ids(
            day.connection.execute(
                select(Outbox.user_id).where(
                    Outbox.topic == "retention_campaign",
                    Outbox.created_at >= day.start - CAMPAIGN_MEMORY,
                    Outbox.created_at < day.end,
                )
            ).scalars()
        )
        new = {u for u, t in signups.items() if t > day.start - DAY7 - timedelta(days=1)}
        order = (messaged, new, seen)
        self.engaged &= paying | free
        a = day.after
        for group, engaged_share in (
            (free, a.active_free / max(a.active_free + a.at_risk_free, 1.0)),
            (paying, 1.0 - a.at_risk_paying / max(a.paying, 1.0)),
        ):
            self._engage(group, round(len(group) * engaged_share), order)
        if self.engaged:
            users = sorted(self.engaged)
            times = [
                _outside_day7(t, signups[u], day)
                for u, t in zip(users, day.times(len(users)), strict=True)
            ]
            rows = [
                {"user_id": u, "type": "logged_in", "occurred_at": t}
                for u, t in zip(users, times, strict=True)
                if t is not None
            ]
            if rows:
                day.connection.execute(insert(Event), rows)

    def _engage(self, group: set[int], target: int, order: Sequence[set[int]]) -> None:
        """Make ``target`` of ``group`` engaged: drop engaged ones at random, or add the rest
        by ``order`` (earlier sets first, at random within each)."""
        engaged = self.engaged & group
        if len(engaged) > target:
            drop = self.rng.choice(sorted(engaged), size=len(engaged) - target, replace=False)
            self.engaged.difference_update(int(i) for i in drop)
            return
        pool: list[int] = []
        left = group - engaged
        for preferred in (*order, left):
            tier = sorted(left & preferred)
            pool += [tier[int(i)] for i in self.rng.permutation(len(tier))]
            left -= preferred
        self.engaged.update(pool[: target - len(engaged)])

    def _write_billing(self, day: _Day) -> None:
        """Billing, as the simulator bills: a thirtieth of the subscriptions in good standing
        is charged today, each charge failing at the simulator's ``billing_failure_rate`` (so
        the observed rate is failed over all charges, as in training); then the past-due
        backlog is brought to the simulator's (its ``failed_payments``, after the day's
        expiries in :meth:`_write_churn`): the excess recovers, charges a retry job asked for
        first (the simulator's ``payment_retry`` recovered them), then customers fixing their
        card; a shortfall fails more of today's charges."""
        rng = self.rng
        good = _in_good_standing(day, Subscription.list_price)
        due = [
            good[i]
            for i in self._sample(list(range(len(good))), self._count(len(good) / MONTH_DAYS))
        ]
        failed = (rng.random(len(due)) < day.kpis["billing_failure_rate"]).tolist()
        backlog = (
            day.connection.execute(
                select(BillingEvent.id)
                .join(Subscription, Subscription.id == BillingEvent.subscription_id)
                .where(
                    BillingEvent.kind == "charge", BillingEvent.status == "failed",
                    BillingEvent.resolved_at.is_(None), active_at(day.start),
                )
                .order_by(BillingEvent.id)
            )
            .scalars()
            .all()
        )  # fmt: skip
        excess = len(backlog) + sum(failed) - self._count(day.after.failed_payments)
        if excess < 0:  # fail more of today's charges
            passing = [i for i, f in enumerate(failed) if not f]
            for i in self._sample(passing, -excess):
                failed[i] = True
        elif excess > len(backlog):  # the backlog cannot shrink that far: fewer fail today
            failing = [i for i, f in enumerate(failed) if f]
            for i in self._sample(failing, excess - len(backlog)):
                failed[i] = False
        if due:
            day.connection.execute(
                insert(BillingEvent),
                [
                    {
                        "subscription_id": sub, "user_id": u, "kind": "charge",
                        "status": "failed" if f else "succeeded", "amount": float(price),
                        "occurred_at": t, "failure_code": "card_declined" if f else None,
                    }
                    for (sub, u, price), f, t in zip(due, failed, day.times(len(due)), strict=True)
                ],
            )  # fmt: skip
        self._recover(day, list(backlog), min(max(excess, 0), len(backlog)))

    def _recover(self, day: _Day, backlog: list[int], k: int) -> None:
        """Recover ``k`` of the failed charges in ``backlog``: those a retry job asked for
        yesterday first, the rest at random."""
        retried = {
            int(payload["billing_event_id"])
            for payload in day.connection.execute(
                select(Outbox.payload).where(
                    Outbox.topic == "payment_retry",
                    Outbox.created_at >= day.start - timedelta(days=1),
                    Outbox.created_at < day.start,
                )
            ).scalars()
        }
        first = [b for b in backlog if b in retried]
        chosen = self._sample(first, k)
        chosen += self._sample([b for b in backlog if b not in retried], k - len(chosen))
        if chosen:
            day.connection.execute(
                update(BillingEvent)
                .where(BillingEvent.id.in_(chosen))
                .values(resolved_at=day.start + RECOVERY_TIME, resolution="recovered")
            )

    def _write_repairs(self, day: _Day) -> None:
        """The rest of the simulator's ``data_fix``. The simulator repairs ``data_fix_share``
        of *all* its defects; the twin's actuator repairs only what a safe rule can (padded
        and upper-case event types, emails). So on a day a ``data_fix`` executed, as many of
        the remaining corrupt event types are rewritten to a known type (people fixing what
        no rule can) as leave ``1 - data_fix_share`` of the event defects the fix found.
        Without this the unrepairable defects piled up fix after fix, and the observed issue
        rate reached twice the simulator's."""
        undos = day.connection.execute(
            select(Execution.undo).where(
                Execution.action == "data_fix",
                Execution.status == "executed",
                Execution.started_at >= day.start,
                Execution.started_at < day.end,
            )
        ).scalars()
        repaired = sum(
            len(change.get("new", {}))
            for undo in undos
            if undo
            for change in undo.get("fields", [])
            if change.get("table") == "events"
        )
        if not repaired:
            return
        corrupt = sorted(
            day.connection.execute(
                select(Event.id).where(or_(Event.type.is_(None), Event.type.not_in(EVENT_TYPES)))
            ).scalars()
        )
        keep = self._count((1.0 - self.params.data_fix_share) * (repaired + len(corrupt)))
        fixed = self._sample(corrupt, len(corrupt) - keep)
        if fixed:
            day.connection.execute(
                update(Event).where(Event.id.in_(fixed)).values(type=HAND_REPAIRED_TYPE)
            )

    def _write_defects(self, day: _Day) -> None:
        """Defects: as many of the day's events as the simulator's defect count grew by are
        corrupted, one defect per record as :mod:`agent.seed` materializes them: a
        :data:`agent.seed.REPAIRABLE_SHARE` of them repairable event types (what ``data_fix``
        normalizes, as it repairs that share of the simulator's defects), the rest types no
        rewrite can make known."""
        rng = self.rng
        defects = self._count(max(day.after.defects - day.before.defects, 0.0))
        if not defects:
            return
        events = day.connection.execute(
            select(Event.id, Event.type).where(
                Event.occurred_at >= day.start - DEFECT_WINDOW,
                Event.occurred_at < day.end,
                Event.type.in_(EVENT_TYPES),
            )
        ).all()
        picked = rng.permutation(len(events))[:defects]
        repairable = int(rng.binomial(len(picked), seeding.REPAIRABLE_SHARE))
        updates = [
            {
                "b_id": int(events[i][0]),
                "b_type": seeding.unnormalized_event_type(str(events[i][1]))
                if n < repairable
                else UNREPAIRABLE_EVENT_TYPE,
            }
            for n, i in enumerate(picked.tolist())
        ]
        if updates:
            table: Table = Event.__table__  # type: ignore[assignment]
            day.connection.execute(
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values(type=bindparam("b_type")),
                updates,
            )


def _check_delay(approver_delay_hours: float | None) -> None:
    if approver_delay_hours is None:
        return
    delay = approver_delay_hours
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise ValueError(f"approver_delay_hours={delay!r} must be a number of hours or None")
    if not 0 <= delay < MAX_APPROVER_DELAY_HOURS:
        raise ValueError(
            f"approver_delay_hours={delay} is outside [0, {MAX_APPROVER_DELAY_HOURS:g}) "
            "(None: nobody approves)"
        )


def _operator_answers(
    engine: Engine, now: datetime, delay: timedelta, executed: dict[str, int]
) -> dict[str, int]:
    """The operator's visit at ``now``: approve every pending approval that has waited
    ``delay``, oldest first; count the answers and add the executions to ``executed``."""
    answers: dict[str, int] = {}
    with Session(engine) as session:
        due = session.execute(
            select(Approval.id)
            .where(Approval.status == "pending", Approval.requested_at <= now - delay)
            .order_by(Approval.requested_at, Approval.id)
        ).scalars()
        for approval_id in list(due):
            try:
                view = approve(session, approval_id, by=OPERATOR, now=now)
            except ApprovalError:
                session.rollback()
                answers["expired"] = answers.get("expired", 0) + 1
                continue
            session.commit()
            outcome = "approved" if view.status == "approved" else view.status
            answers[outcome] = answers.get(outcome, 0) + 1
            if view.status == "approved" and view.execution_id is not None:
                executed[view.action] = executed.get(view.action, 0) + 1
    return answers


DEPLOYMENT_CYCLES_PER_DAY = round(24 / CYCLE_HOURS)
"""The twin's default cadence: the deployment's, one cycle per environment step (6 a day)."""


def _outcome(decision: DecisionOutcome) -> str:
    """The decision's entry of :data:`OUTCOMES`."""
    verdict = Verdict(decision.verdict).value
    if verdict == Verdict.EXECUTED and decision.execution_id is None:
        return NOTHING_TO_DO
    return verdict


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def run_closed_loop(
    db_url: str,
    *,
    days: int = 90,
    seed: int = 0,
    mode: Mode = "autopilot",
    policy: Policy | str | None = None,
    users: int = 2000,
    cycles_per_day: int = DEPLOYMENT_CYCLES_PER_DAY,
    scenario: str = "steady",
    approver_delay_hours: float | None = None,
    trajectory_kpis: Sequence[str] = TRAJECTORY_KPIS,
) -> LoopResult:
    """Run the simulator and the agent together for ``days`` days on a fresh database at
    ``db_url`` (see the module docstring). ``mode``: ``autopilot`` (``policy``, default the
    champion else rules), ``rules`` or ``none`` (no agent). ``approver_delay_hours``: the
    modelled operator (module docstring; ``None``: nobody approves). ``trajectory_kpis``: the
    simulator's KPIs recorded per day (any of :data:`environment.kpis.KPI_NAMES`)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {list(MODES)}")
    if not 1 <= days <= 365:
        raise ValueError(f"days={days} is outside [1, 365]")
    unknown = sorted(set(trajectory_kpis) - set(KPI_NAMES))
    if unknown:
        raise ValueError(f"unknown trajectory KPIs {unknown}; allowed: {list(KPI_NAMES)}")
    if not 1 <= cycles_per_day <= 6:
        raise ValueError(f"cycles_per_day={cycles_per_day} is outside [1, 6]")
    _check_delay(approver_delay_hours)
    operator = None if approver_delay_hours is None else timedelta(hours=approver_delay_hours)
    began = time.perf_counter()
    engine = make_engine(db_url)
    upgrade(engine)
    seeded = seed_business(engine, users=users, seed=seed, scenario=scenario)
    import gymnasium

    import environment

    env = gymnasium.make(environment.ENV_ID, scenario=scenario, params=seeded.params)
    env.reset(seed=seed)
    sim: Any = env.unwrapped
    sim.set_state(seeded.state)
    steps = seeded.params.steps_per_day
    chosen: Policy | None = None
    note = ""
    if mode != "none":  # resolved once: the champion is not fetched again every cycle
        chosen, note = resolve_policy("rules" if mode == "rules" else policy)
    writer = _DayWriter(engine, np.random.default_rng(seed + 1), seeded.params)
    value, trajectory, cycles = 0.0, [], 0
    policy_name = "none"
    executed: dict[str, int] = {}
    outcomes: dict[str, dict[str, int]] = {}
    answers: dict[str, int] = {}
    try:
        for day in range(days):
            day_start = seeded.as_of + timedelta(days=day)
            if mode != "none":
                for k in range(cycles_per_day):
                    at = day_start + timedelta(hours=1 + k * 24 // cycles_per_day)
                    if operator is not None:
                        _add(answers, _operator_answers(engine, at, operator, executed))
                    try:
                        result = run_full_cycle(engine, dry_run=False, policy=chosen, as_of=at)
                    except CycleRunning:
                        continue
                    cycles += 1
                    policy_name = result.policy_name
                    for d in result.decisions:
                        if d.execution_id is not None:
                            executed[d.action] = executed.get(d.action, 0) + 1
                        if d.action != ACTION_NAMES[NOOP]:
                            _add(outcomes.setdefault(d.source, {}), {_outcome(d): 1})
                if operator is not None:
                    visit = day_start + OPERATOR_END_OF_DAY
                    _add(answers, _operator_answers(engine, visit, operator, executed))
            actions = _effects_as_actions(engine, day_start, day_start + timedelta(days=1))
            before = sim.get_state()
            info: dict[str, Any] = {}
            states = []
            for step in range(steps):
                action = actions[step] if step < len(actions) else NOOP
                _, reward, terminated, _, info = sim.step(action)
                value += float(reward)
                states.append(sim.get_state())
                if terminated:
                    break
            trajectory.append(
                {"day": float(day + 1), **{k: float(info["true_kpis"][k]) for k in trajectory_kpis}}
            )
            writer.write(day_start, before, states[-1], states)
            if terminated:
                break
    finally:
        engine.dispose()
    return LoopResult(
        mode=mode,
        days=len(trajectory),
        seed=seed,
        policy=policy_name,
        business_value=value,
        final_kpis=trajectory[-1] if trajectory else {},
        trajectory=trajectory,
        executions=executed,
        decisions=outcomes,
        approvals=answers,
        approver_delay_hours=approver_delay_hours,
        cycles=cycles,
        policy_note=note,
        seconds=time.perf_counter() - began,
    )


def seed_business(engine: Engine, *, users: int, seed: int, scenario: str) -> seeding.SeedResult:
    """The starting business: two weeks of history ending at :data:`START`."""
    config = seeding.SeedConfig(users=users, days=14, scenario=scenario, seed=seed, end=START)
    return seeding.seed(engine, config)
