"""Analytics the learning side needs, by SQL aggregates.

- :func:`high_performing_patterns`: which first-week events are over-represented among the
  accounts that later engage most. For accounts old enough to be judged, *engagement* is the
  number of events in ``[signup + first_week_days, signup + first_week_days + engagement_days)``;
  the *top* group is the ``top_share`` most engaged (ties broken by id). For each event type,
  ``support_top`` / ``support_all`` is the share of top / all accounts that did it in their first
  week, and ``lift = support_top / support_all`` (> 1: over-represented).
- :func:`suggestion_feedback`: how well suggestion confidences predict adoption: adoption rate
  by confidence bucket, expected calibration error ``ECE = sum_b n_b / N |adopted_b - conf_b|``,
  Brier score ``mean((confidence - adopted)^2)``, and the confidence threshold that maximizes
  adoptions among suggestions shown at or above it while their adoption rate (precision) stays
  at least ``min_precision``. Only answered suggestions with a confidence in [0, 1] count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from agent.models import EVENT_TYPES, Event, Suggestion, User
from agent.observe import add_days, as_utc_naive
from policies.validation import check_number

# --- high-performing patterns -------------------------------------------------------------


@dataclass(frozen=True)
class EventPattern:
    """A first-week event and how much more often the most engaged accounts did it."""

    event_type: str
    top_users: int
    all_users: int
    support_top: float
    support_all: float
    lift: float


@dataclass(frozen=True)
class PatternReport:
    """Patterns by descending lift, and the groups they were computed on."""

    patterns: tuple[EventPattern, ...]
    eligible_users: int
    top_users: int
    engagement_threshold: int
    """Events in the engagement window of the least engaged top account."""


def high_performing_patterns(
    session: Session,
    as_of: datetime | None = None,
    *,
    first_week_days: int = 7,
    engagement_days: int = 28,
    top_share: float = 0.1,
    min_support: float = 0.05,
) -> PatternReport:
    """First-week events over-represented among the top ``top_share`` of accounts by later
    engagement (see the module docstring); patterns with ``support_top < min_support`` are
    left out. Accounts must have signed up at least ``first_week_days + engagement_days``
    before ``as_of`` (default now) and still exist."""
    at = as_utc_naive(as_of)
    check_number("first_week_days", first_week_days, 1, 60, integer=True)
    check_number("engagement_days", engagement_days, 1, 365, integer=True)
    check_number("top_share", top_share, 0.0, 0.5, open_low=True)
    check_number("min_support", min_support, 0.0, 1.0)
    horizon = first_week_days + engagement_days
    eligible = and_(
        User.signup_at <= at - timedelta(days=horizon),
        or_(User.deleted_at.is_(None), User.deleted_at > at),
    )
    # windows as index ranges on (user_id, occurred_at): one seek per account
    later_events = (
        select(func.count())
        .where(
            Event.user_id == User.id,
            Event.occurred_at >= add_days(User.signup_at, first_week_days),
            Event.occurred_at < add_days(User.signup_at, horizon),
            Event.occurred_at <= at,
        )
        .scalar_subquery()
    )
    engagement = (
        select(User.id.label("user_id"), later_events.label("events"))
        .where(eligible)
        .subquery("engagement")
    )
    ranked = select(
        engagement.c.user_id,
        engagement.c.events,
        func.row_number()
        .over(order_by=(engagement.c.events.desc(), engagement.c.user_id))
        .label("position"),
        func.count().over().label("total"),
    ).subquery("ranked")
    is_top = (ranked.c.position - 1) < cast(ranked.c.total, Float) * top_share
    top = select(
        ranked.c.user_id,
        case((is_top, 1), else_=0).label("top"),
        ranked.c.events,
        ranked.c.total,
        func.sum(case((is_top, 1), else_=0)).over().label("top_total"),
        func.min(case((is_top, ranked.c.events))).over().label("threshold"),
    ).subquery("top")
    # drive from the ranked accounts into the (user_id, occurred_at) index: joining two
    # derived tables lets a planner fall back to a nested scan of both
    first_user = User.__table__.alias("first_user")
    in_first_week = and_(
        Event.user_id == top.c.user_id,
        Event.type.in_([t for t in EVENT_TYPES if t != "signed_up"]),
        Event.occurred_at >= first_user.c.signup_at,
        Event.occurred_at < add_days(first_user.c.signup_at, first_week_days),
    )
    rows = session.execute(
        select(
            Event.type,
            func.count(func.distinct(case((top.c.top == 1, top.c.user_id)))),
            func.count(func.distinct(top.c.user_id)),
            func.max(top.c.total),
            func.max(top.c.top_total),
            func.max(top.c.threshold),
        )
        .select_from(top)
        .join(first_user, first_user.c.id == top.c.user_id)
        .join(Event, in_first_week)
        .group_by(Event.type)
    ).all()
    if not rows:  # no first-week events at all: still report the group sizes
        totals = session.execute(
            select(func.max(top.c.total), func.max(top.c.top_total), func.max(top.c.threshold))
        ).one()
        return PatternReport((), int(totals[0] or 0), int(totals[1] or 0), int(totals[2] or 0))
    eligible_users, top_users, threshold = int(rows[0][3]), int(rows[0][4]), rows[0][5]
    patterns = []
    for event_type, in_top, in_all, *_ in rows:
        support_top = int(in_top) / top_users
        support_all = int(in_all) / eligible_users
        if support_top < min_support or support_all <= 0:
            continue
        patterns.append(
            EventPattern(
                event_type=str(event_type),
                top_users=int(in_top),
                all_users=int(in_all),
                support_top=support_top,
                support_all=support_all,
                lift=support_top / support_all,
            )
        )
    patterns.sort(key=lambda p: (-p.lift, p.event_type))
    return PatternReport(tuple(patterns), eligible_users, top_users, int(threshold or 0))


# --- suggestion feedback ------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationBucket:
    """Suggestions with confidence in ``[low, high)`` (the last bucket includes 1)."""

    low: float
    high: float
    count: int
    mean_confidence: float
    adoption_rate: float


@dataclass(frozen=True)
class ThresholdChoice:
    """Show suggestions with confidence >= ``threshold``: ``shown`` of them, ``adoptions``
    adopted, ``precision = adoptions / shown``."""

    threshold: float
    precision: float
    adoptions: int
    shown: int


@dataclass(frozen=True)
class SuggestionFeedback:
    """Calibration of suggestion confidences against adoption (see the module docstring).
    ``threshold`` is ``None`` when no threshold reaches ``min_precision``."""

    count: int
    adoption_rate: float
    buckets: tuple[CalibrationBucket, ...]
    ece: float
    brier: float
    min_precision: float
    threshold: ThresholdChoice | None


def suggestion_feedback(
    session: Session,
    as_of: datetime | None = None,
    *,
    buckets: int = 10,
    min_precision: float = 0.5,
    since: datetime | None = None,
) -> SuggestionFeedback:
    """Adoption by confidence bucket, ECE, Brier score and the best threshold at
    ``min_precision``, over suggestions shown in ``[since, as_of]`` and answered by ``as_of``."""
    at = as_utc_naive(as_of)
    check_number("buckets", buckets, 1, 100, integer=True)
    check_number("min_precision", min_precision, 0.0, 1.0, open_low=True)
    start = as_utc_naive(since, "since") if since is not None else None
    if start is not None and start > at:
        raise ValueError(f"since={start:%Y-%m-%d %H:%M} is after as_of={at:%Y-%m-%d %H:%M}")
    conditions: list[Any] = [
        Suggestion.confidence >= 0.0,
        Suggestion.confidence <= 1.0,
        Suggestion.adopted.is_not(None),
        Suggestion.shown_at <= at,
        or_(Suggestion.responded_at.is_(None), Suggestion.responded_at <= at),
    ]
    if start is not None:
        conditions.append(Suggestion.shown_at >= start)
    confidence = cast(Suggestion.confidence, Float)
    adopted = case((Suggestion.adopted.is_(True), 1.0), else_=0.0)
    # a CASE ladder rather than floor(): portable, and confidence 1 falls in the last bucket
    bucket = case(
        *((confidence < (b + 1) / buckets, literal(b)) for b in range(buckets - 1)),
        else_=literal(buckets - 1),
    ).label("bucket")
    by_bucket = session.execute(
        select(bucket, func.count(), func.sum(confidence), func.sum(adopted))
        .where(*conditions)
        .group_by(bucket)
        .order_by(bucket)
    ).all()
    count = sum(int(n) for _, n, _, _ in by_bucket)
    if count == 0:
        return SuggestionFeedback(0, 0.0, (), 0.0, 0.0, float(min_precision), None)
    brier = float(
        session.execute(
            select(func.avg((confidence - adopted) * (confidence - adopted))).where(*conditions)
        ).scalar_one()
    )
    table = []
    ece = 0.0
    total_adopted = 0.0
    for b, n, conf_sum, adopted_sum in by_bucket:
        n = int(n)
        mean_conf, rate = float(conf_sum) / n, float(adopted_sum) / n
        ece += n / count * abs(rate - mean_conf)
        total_adopted += float(adopted_sum)
        table.append(
            CalibrationBucket(int(b) / buckets, (int(b) + 1) / buckets, n, mean_conf, rate)
        )
    # adoptions and precision when showing everything at or above each distinct confidence
    per_value = (
        select(
            confidence.label("confidence"),
            func.count().label("n"),
            func.sum(adopted).label("adopted"),
        )
        .where(*conditions)
        .group_by(confidence)
        .subquery("per_value")
    )
    order = per_value.c.confidence.desc()
    cumulative = select(
        per_value.c.confidence,
        func.sum(per_value.c.n).over(order_by=order, rows=(None, 0)).label("shown"),
        func.sum(per_value.c.adopted).over(order_by=order, rows=(None, 0)).label("adoptions"),
    ).subquery("cumulative")
    best = session.execute(
        select(cumulative.c.confidence, cumulative.c.shown, cumulative.c.adoptions)
        .where(cumulative.c.adoptions >= cumulative.c.shown * min_precision)
        .order_by(cumulative.c.adoptions.desc(), cumulative.c.confidence.desc())
        .limit(1)
    ).first()
    choice = None
    if best is not None:
        threshold, shown, adoptions = float(best[0]), int(best[1]), int(best[2])
        choice = ThresholdChoice(threshold, adoptions / shown, adoptions, shown)
    return SuggestionFeedback(
        count=count,
        adoption_rate=total_adopted / count,
        buckets=tuple(table),
        ece=ece,
        brier=brier,
        min_precision=float(min_precision),
        threshold=choice,
    )


__all__ = [
    "CalibrationBucket",
    "EventPattern",
    "PatternReport",
    "SuggestionFeedback",
    "ThresholdChoice",
    "high_performing_patterns",
    "suggestion_feedback",
]
