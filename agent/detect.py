"""Issue detection: name what is wrong, how badly, how many records, which ones, and the
action of the catalogue that would address it.

``detect(session, snapshot)`` reads the counts of a :class:`~agent.observe.KpiSnapshot` and
adds one small ``LIMIT`` query per issue for a sample of affected ids, so it costs little
beyond the observation. Issues come sorted by severity, then by count.

Kinds (``Issue.kind``) and their actions:

================== ===================================================== =====================
kind               detected when                                         action
================== ===================================================== =====================
system_health      ``health_score`` below the floor (its target, 80)     the dominant penalty:
                                                                         ``scale_infra``
                                                                         (errors, latency),
                                                                         ``data_fix`` (failed
                                                                         jobs),
                                                                         ``orphan_cleanup``
                                                                         (bloat)
data_quality       any defect kind has rows (``Issue.detail`` names it)  ``data_fix``
orphaned_records   workflows or events whose user is gone                ``orphan_cleanup``
failed_payments    past-due subscriptions (unresolved failed charges)    ``payment_retry``
users_at_risk      activated accounts silent for 14 days                 ``retention_campaign``
kpi_below_target   activation, retention, conversion, LTV:CAC below      see :data:`KPI_ACTIONS`
                   target, or MRR shrinking (an optimization
                   opportunity, with the gap to target)
================== ===================================================== =====================

Severity is relative to the KPI's target where it has one (see each ``_severity_*``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select
from sqlalchemy.orm import Session, aliased

from agent import validation
from agent.models import (
    BillingEvent,
    Event,
    Subscription,
    User,
    Workflow,
)
from agent.observe import (
    EMAIL_PATTERN,
    SILENT_DAYS,
    TRIAL_DAYS,
    KpiSnapshot,
)
from environment.actions import ACTION_NAMES
from environment.kpis import PAYMENT_BANDS, SPEC_BY_NAME

MAX_SAMPLE = 1000
SAMPLE_ORDER = (
    "events",
    "users",
    "workflows",
    "suggestions",
    "billing_events",
    "subscriptions",
    "usage_metrics",
)
"""Where a defect kind that several tables can have is sampled first (the largest first)."""
KPI_ACTIONS: dict[str, str] = {
    "activation_rate": "onboarding_boost",
    "d7_retention": "onboarding_boost",
    "signup_to_activation": "funnel_fix",
    "conversion_rate": "upgrade_prompt",
    "ltv_cac": "shift_marketing",
    "mrr_growth": "upgrade_prompt",
}
"""Optimization opportunities: KPI -> the action that addresses a shortfall."""
OUTAGE_FAILURE_RATE = PAYMENT_BANDS.outage_failure_rate
"""A billing failure rate this high means a processor outage, not a backlog to retry."""


class Severity(StrEnum):
    """How urgent an issue is, most urgent first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True)
class Issue:
    """One detected problem.

    - ``kind`` / ``detail``: what (``data_quality`` / ``null_email``...).
    - ``count``: affected records (accounts short of target for ``kpi_below_target``).
    - ``sample_ids``: up to ``sample_size`` ids of affected rows of ``sample_table``.
    - ``action``: the catalogue action that addresses it.
    - ``kpi`` / ``value`` / ``target`` / ``gap``: the KPI behind it, if any; ``gap`` is the
      shortfall in the KPI's unit (positive when the target is missed).
    """

    kind: str
    detail: str
    severity: Severity
    count: int
    action: str
    message: str
    sample_ids: tuple[int, ...] = ()
    sample_table: str | None = None
    kpi: str | None = None
    value: float | None = None
    target: float | None = None
    gap: float | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTION_NAMES:
            raise ValueError(f"unknown action {self.action!r}; allowed: {list(ACTION_NAMES)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for ``cycles.issues`` and the API)."""
        out = asdict(self)
        out["severity"] = self.severity.value
        out["sample_ids"] = list(self.sample_ids)
        return out


def _ids(
    session: Session, column: Any, condition: ColumnElement[bool], limit: int
) -> tuple[int, ...]:
    if limit == 0:
        return ()
    # no ORDER BY: it would make SQLite walk the primary key instead of the filter's index
    rows = session.execute(select(column).where(condition).limit(limit)).scalars()
    return tuple(sorted(int(i) for i in rows))


def alive(as_of: Any) -> ColumnElement[bool]:
    """Accounts that exist at ``as_of``: signed up, not (yet) deleted."""
    return and_(User.signup_at <= as_of, or_(User.deleted_at.is_(None), User.deleted_at > as_of))


def at_risk(as_of: Any) -> ColumnElement[bool]:
    """Activated accounts past their trial with no event in the last ``SILENT_DAYS`` days:
    the users at risk that detection counts and a retention campaign targets."""
    return and_(
        alive(as_of),
        User.activated_at <= as_of,
        User.signup_at <= as_of - timedelta(days=TRIAL_DAYS),
        not_(
            exists().where(
                Event.user_id == User.id,
                Event.occurred_at > as_of - timedelta(days=SILENT_DAYS),
                Event.occurred_at <= as_of,
            )
        ),
    )


# --- the detectors ------------------------------------------------------------------------


def _health(snapshot: KpiSnapshot, floor: float) -> list[Issue]:
    score = snapshot.kpis["health_score"]
    if score >= floor:
        return []
    c = snapshot.counts
    excess = max(c["p95_latency_ms"] - c["base_latency_ms"], 0.0)
    penalties = {
        "errors": 35.0 * c["error_rate"] / (c["error_rate"] + 0.02),
        "latency": 25.0 * excess / (excess + 400.0),
        "failed_jobs": 20.0 * c["failed_job_rate"] / (c["failed_job_rate"] + 0.05),
        "bloat": 20.0 * c["bloat"] / (c["bloat"] + 0.02),
    }
    worst = max(penalties, key=lambda k: penalties[k])
    action = {"errors": "scale_infra", "latency": "scale_infra", "failed_jobs": "data_fix"}.get(
        worst, "orphan_cleanup"
    )
    severity = Severity.CRITICAL if score < 50 else Severity.HIGH if score < 65 else Severity.MEDIUM
    return [
        Issue(
            kind="system_health",
            detail=worst,
            severity=severity,
            count=1,
            action=action,
            message=(
                f"health score {score:.1f} below {floor:.0f}; largest penalty {worst} "
                f"({penalties[worst]:.1f} points: error rate {c['error_rate']:.2%}, p95 "
                f"{c['p95_latency_ms']:.0f} ms, failed jobs {c['failed_job_rate']:.2%}, bloat "
                f"{c['bloat']:.2%})"
            ),
            kpi="health_score",
            value=score,
            target=floor,
            gap=floor - score,
        )
    ]


def _defect_samples(
    session: Session, snapshot: KpiSnapshot, kind: str, k: int
) -> tuple[tuple[int, ...], str]:
    at = snapshot.as_of
    if kind == "duplicate_user":
        earlier = aliased(User)
        condition = and_(
            User.email.like(EMAIL_PATTERN),
            User.email.not_like("% %"),
            exists().where(
                func.lower(earlier.email) == func.lower(User.email), earlier.id < User.id
            ),
        )
        return _ids(session, User.id, condition, k), "users"
    if kind == "invalid_setting":
        ids = tuple(i for d in snapshot.defect_report if d.kind == kind for i in d.sample_ids)[:k]
        return ids, "settings"
    found = ""
    for table in SAMPLE_ORDER:
        conditions = validation.conditions(table, at)
        if kind in conditions:
            ids = _ids(session, validation.MODELS[table].id, conditions[kind], k)
            if ids:
                return ids, table
            found = found or table
    if found:
        return (), found
    raise ValueError(f"unknown defect kind {kind!r}")  # pragma: no cover - DEFECT_KINDS is closed


def _data_quality(session: Session, snapshot: KpiSnapshot, k: int) -> list[Issue]:
    rate = snapshot.kpis["data_quality_issue_rate"]
    target = SPEC_BY_NAME["data_quality_issue_rate"].target or 0.02
    severity = (
        Severity.HIGH if rate >= 2 * target else Severity.MEDIUM if rate >= target else Severity.LOW
    )
    issues = []
    for kind, count in snapshot.defects.items():
        if count <= 0:
            continue
        ids, table = _defect_samples(session, snapshot, kind, k)
        issues.append(
            Issue(
                kind="data_quality",
                detail=kind,
                severity=severity,
                count=count,
                action="data_fix",
                message=f"{count} records with {kind.replace('_', ' ')} "
                f"(all defects: {rate:.2%} of records, target at most {target:.0%})",
                sample_ids=ids,
                sample_table=table,
                kpi="data_quality_issue_rate",
                value=rate,
                target=target,
                gap=rate - target,
            )
        )
    return issues


def _orphans(session: Session, snapshot: KpiSnapshot, k: int) -> list[Issue]:
    c = snapshot.counts
    count = int(snapshot.kpis["orphaned_records"])
    if count <= 0:
        return []
    at = snapshot.as_of
    bloat = c["bloat"]
    severity = (
        Severity.HIGH if bloat >= 0.02 else Severity.MEDIUM if bloat >= 0.005 else Severity.LOW
    )
    ids: tuple[int, ...] = ()
    table = "events" if c["orphaned_events"] else "workflows"
    column, user_id = (
        (Event.id, Event.user_id) if table == "events" else (Workflow.id, Workflow.user_id)
    )
    if k:
        gone = or_(
            user_id.is_(None),
            not_(exists().where(User.id == user_id)),
            exists().where(User.id == user_id, User.deleted_at <= at),
        )
        ids = _ids(session, column, gone, k)
    return [
        Issue(
            kind="orphaned_records",
            detail=table,
            severity=severity,
            count=count,
            action="orphan_cleanup",
            message=f"{int(c['orphaned_events'])} events and {int(c['orphaned_workflows'])} "
            f"workflows belong to no living user ({bloat:.2%} of records)",
            sample_ids=ids,
            sample_table=table,
            kpi="orphaned_records",
            value=float(count),
        )
    ]


def _failed_payments(session: Session, snapshot: KpiSnapshot, k: int) -> list[Issue]:
    c = snapshot.counts
    count = int(c["segment_past_due"])
    if count <= 0:
        return []
    backlog = snapshot.kpis["failed_payment_backlog"]
    failure_rate = snapshot.kpis["billing_failure_rate"]
    severity = (
        Severity.HIGH
        if backlog >= PAYMENT_BANDS.backlog_high
        else Severity.MEDIUM
        if backlog >= PAYMENT_BANDS.backlog_medium
        else Severity.LOW
    )
    message = f"{count} past-due subscriptions await a retry ({backlog:.2%} of paying accounts)"
    if failure_rate >= OUTAGE_FAILURE_RATE:
        severity = Severity.CRITICAL
        message += (
            f"; {failure_rate:.0%} of today's charges failed, which looks like a processor "
            "outage: retries now mostly fail too, retry once it is over"
        )
    at = snapshot.as_of
    unresolved = exists().where(
        BillingEvent.subscription_id == Subscription.id,
        BillingEvent.kind == "charge",
        BillingEvent.status == "failed",
        BillingEvent.occurred_at <= at,
        or_(BillingEvent.resolved_at.is_(None), BillingEvent.resolved_at > at),
    )
    active = and_(
        Subscription.started_at <= at,
        or_(Subscription.ended_at.is_(None), Subscription.ended_at > at),
    )
    return [
        Issue(
            kind="failed_payments",
            detail="past_due",
            severity=severity,
            count=count,
            action="payment_retry",
            message=message,
            sample_ids=_ids(session, Subscription.id, and_(active, unresolved), k),
            sample_table="subscriptions",
            kpi="failed_payment_backlog",
            value=backlog,
        )
    ]


def _at_risk(session: Session, snapshot: KpiSnapshot, k: int) -> list[Issue]:
    count = int(snapshot.counts["at_risk"])
    if count <= 0:
        return []
    share = snapshot.kpis["at_risk_share"]
    target = SPEC_BY_NAME["at_risk_share"].target or 0.15
    severity = (
        Severity.HIGH
        if share >= 1.5 * target
        else Severity.MEDIUM
        if share >= target
        else Severity.LOW
    )
    at = snapshot.as_of
    silent = at_risk(at)
    return [
        Issue(
            kind="users_at_risk",
            detail="silent_14_days",
            severity=severity,
            count=count,
            action="retention_campaign",
            message=f"{count} activated accounts silent for {SILENT_DAYS} days "
            f"({share:.1%} of engaged and at-risk accounts, target at most {target:.0%})",
            sample_ids=_ids(session, User.id, silent, k),
            sample_table="users",
            kpi="at_risk_share",
            value=share,
            target=target,
            gap=share - target,
        )
    ]


def _shortfall_base(snapshot: KpiSnapshot, kpi: str) -> float:
    """The number of accounts a KPI is a share of (0 when it is not a share of accounts)."""
    c = snapshot.counts
    return {
        "activation_rate": c["active"],
        "d7_retention": c["matured"],
        "signup_to_activation": c["matured"],
        "conversion_rate": c["segment_active_free"],
    }.get(kpi, 0.0)


def _kpis_below_target(session: Session, snapshot: KpiSnapshot, k: int) -> list[Issue]:
    issues = []
    at = snapshot.as_of
    for kpi, action in KPI_ACTIONS.items():
        value = snapshot.kpis[kpi]
        target = 0.0 if kpi == "mrr_growth" else SPEC_BY_NAME[kpi].target
        if target is None or value >= target:
            continue
        gap = target - value
        if kpi == "mrr_growth":
            attainment = 1.0 - min(-value / 0.05, 1.0)  # -5% a month counts as fully missed
        else:
            attainment = SPEC_BY_NAME[kpi].attainment(value)
        severity = (
            Severity.HIGH
            if attainment < 0.5
            else Severity.MEDIUM
            if attainment < 0.8
            else Severity.LOW
        )
        count = math.ceil(gap * _shortfall_base(snapshot, kpi) - 1e-9)
        ids: tuple[int, ...] = ()
        table = None
        if kpi == "activation_rate":  # unactivated accounts past their trial
            table = "users"
            ids = _ids(
                session,
                User.id,
                and_(
                    alive(at),
                    or_(User.activated_at.is_(None), User.activated_at > at),
                    User.signup_at <= at - timedelta(days=TRIAL_DAYS),
                ),
                k,
            )
        issues.append(
            Issue(
                kind="kpi_below_target",
                detail=kpi,
                severity=severity,
                count=max(count, 0),
                action=action,
                message=f"{kpi} {value:.4g} below target {target:.4g} (gap {gap:.4g})",
                sample_ids=ids,
                sample_table=table,
                kpi=kpi,
                value=value,
                target=target,
                gap=gap,
            )
        )
    return issues


def detect(
    session: Session,
    snapshot: KpiSnapshot,
    *,
    sample_size: int = 5,
    health_floor: float | None = None,
) -> list[Issue]:
    """Every issue at ``snapshot.as_of``, most severe first.

    ``sample_size``: ids sampled per issue, in [0, 1000]. ``health_floor``: the health score
    below which health is an issue (default: the KPI's target, 80).
    """
    if not isinstance(snapshot, KpiSnapshot):
        raise ValueError(
            f"snapshot must be a KpiSnapshot from observe(), got {type(snapshot).__name__}"
        )
    if (
        isinstance(sample_size, bool)
        or not isinstance(sample_size, int)
        or not 0 <= sample_size <= MAX_SAMPLE
    ):
        raise ValueError(
            f"sample_size must be an integer in [0, {MAX_SAMPLE}], got {sample_size!r}"
        )
    floor = SPEC_BY_NAME["health_score"].target if health_floor is None else health_floor
    if floor is None or not (isinstance(floor, int | float) and 0.0 <= floor <= 100.0):
        raise ValueError(f"health_floor must be a number in [0, 100], got {health_floor!r}")
    issues = [
        *_health(snapshot, float(floor)),
        *_data_quality(session, snapshot, sample_size),
        *_orphans(session, snapshot, sample_size),
        *_failed_payments(session, snapshot, sample_size),
        *_at_risk(session, snapshot, sample_size),
        *_kpis_below_target(session, snapshot, sample_size),
    ]
    return sorted(issues, key=lambda issue: (issue.severity.rank, -issue.count))


def format_issues(issues: list[Issue]) -> str:
    """A plain-text table of issues for the command line."""
    if not issues:
        return "no issues"
    lines = [f"{'severity':9} {'kind':17} {'detail':24} {'count':>8}  {'action':18} sample"]
    for issue in issues:
        sample = ",".join(map(str, issue.sample_ids)) or "-"
        if issue.sample_table:
            sample = f"{issue.sample_table}:{sample}"
        lines.append(
            f"{issue.severity.value:9} {issue.kind:17} {issue.detail:24} {issue.count:>8}  "
            f"{issue.action:18} {sample}"
        )
        lines.append(f"{'':9} {issue.message}")
    return "\n".join(lines)


__all__ = ["KPI_ACTIONS", "Issue", "Severity", "detect", "format_issues"]
