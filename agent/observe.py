"""KPI observation by SQL: every KPI of :mod:`environment.kpis`, from aggregates only.

``observe(session, as_of)`` runs a dozen aggregate queries (no row is loaded into Python) on
SQLite and PostgreSQL alike and returns a :class:`KpiSnapshot` whose ``kpis`` have the names and
natural units of the simulator's ``info["kpis"]``; ``snapshot.encode()`` is the observation
vector the environment would give for them.

How the product tables map onto the KPI definitions (``A`` is ``as_of``; a window ``(A - w, A]``
excludes its start and includes its end; rows dated after ``A`` belong to no window and count as
defects):

- **Accounts.** A user is *alive* if it signed up at or before ``A`` and is not deleted by
  ``A``. Alive accounts fall into exactly one segment, in this order: *paying* (a subscription
  active at ``A`` with no unresolved failed charge; *at risk* if silent, else *engaged*),
  *past due* (an active subscription whose failed charge is unresolved at ``A``), *trial*
  (signed up in ``(A - 7 d, A]``; *activated* or *pending*), *unactivated*, *at-risk free*
  (activated, silent), *active free* (activated, seen within 14 days). *Silent* means no event
  in ``(A - 14 d, A]``: the last event is from before ``A - 14 d``, or there is none.
- ``activation_rate`` = (trial activated + active free + engaged paying) / (those + trial
  pending + unactivated).
- ``d7_retention`` / ``signup_to_activation``: the cohort of alive users who signed up in
  ``(A - 15 d, A - 8 d]`` (ages 8 to 14 whole days, so every day-7 window has ended); the share
  with an event in ``[signup + 7 d, signup + 8 d)``, resp. with ``activated_at < signup + 7 d``.
- ``conversion_rate`` = subscriptions started by a conversion in ``(A - 30 d, A]`` / active free
  accounts. ``cac`` = marketing spend (``usage_metrics`` ``marketing_spend_usd``) over the same
  window / those conversions (at least 1).
- ``churn_rate`` = subscriptions ended by cancellation or failed payment in ``(A - 30 d, A]`` /
  paying accounts. ``mrr`` = ``price_level`` setting x the list prices of subscriptions in good
  standing; ``mrr_growth`` compares it with the same sum at ``A - 30 d`` (the subscriptions,
  billing failures and price in force then). ``arpa`` = MRR / paying accounts (0 without any).
  ``ltv_cac`` = ARPA x ``gross_margin`` setting / max(churn, 0.005) / max(CAC, 1 USD).
- ``billing_failure_rate``: failed / all scheduled charges in ``(A - 1 d, A]`` (retries are
  not new attempts); ``failed_payment_backlog`` = past-due accounts / paying accounts.
- ``at_risk_share`` = (at-risk free + at-risk paying) / (those + active free + engaged paying).
- ``message_pressure`` = outbox messages created in ``(A - 7 d, A]`` / active accounts (the
  denominator of ``activation_rate``).
- **Records** are the rows of ``users``, ``workflows``, ``events``, ``suggestions`` and
  ``billing_events``. ``data_quality_issue_rate`` = defective records / records, a record
  being defective if it breaks any rule of :mod:`agent.validation` (one definition shared with
  the actuators) or is a duplicate user; a record counts once however many rules it breaks,
  so the rate is at most 1. ``subscriptions``, ``usage_metrics`` and the settings read are
  checked by the same rules and reported, but are not records. Every defect is in
  ``snapshot.defect_report`` (table, column, kind, rows, sample ids); a defective value is
  left out of the aggregate that would read it (a user whose times are not timestamps is no
  account, a bad list price adds nothing to MRR, an out-of-range metric sample is skipped for
  the latest valid one, a bad setting for the latest valid value).
  ``orphaned_records`` = workflows and events whose ``user_id`` is NULL, unknown, or a user
  deleted by ``A``.
- ``health_score`` combines the latest ``error_rate``, ``p95_latency_ms`` and
  ``failed_job_rate`` metrics at or before ``A`` with the data bloat orphans / records, as
  :func:`health_score` documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    text,
)
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import FunctionElement

from agent import validation
from agent.db import check_schema
from agent.models import (
    EVENT_TYPES,
    BillingEvent,
    Event,
    Outbox,
    Setting,
    Subscription,
    UsageMetric,
    User,
    Workflow,
)
from environment.dynamics import health_score
from environment.kpis import KPI_NAMES, alignment_score, check_kpis, encode
from environment.params import BusinessParams
from environment.state import MONTH_DAYS, WEEK_DAYS

TRIAL_DAYS = 7
SILENT_DAYS = 14
COHORT_WINDOW = (8, 15)
"""Matured cohorts: ``signup_at`` in ``(A - 15 d, A - 8 d]``, ages 8 to 14 whole days."""
CHURN_REASONS = ("canceled", "payment_failed")
HEALTH_METRICS = ("error_rate", "p95_latency_ms", "failed_job_rate")
MARKETING_METRIC = "marketing_spend_usd"
EMAIL_PATTERN = validation.EMAIL_PATTERN
_DEFAULTS = BusinessParams()
SETTING_DEFAULTS: dict[str, float] = {
    "price_level": 1.0,
    "gross_margin": _DEFAULTS.gross_margin,
    "base_latency_ms": _DEFAULTS.base_latency_ms,
}
"""Settings the observation reads, with the value assumed when a database has none."""
SEGMENTS: tuple[str, ...] = (
    "paying_engaged",
    "paying_at_risk",
    "past_due",
    "trial_activated",
    "trial_pending",
    "unactivated",
    "at_risk_free",
    "active_free",
)
DEFECT_KINDS = validation.DEFECT_KINDS


# --- portable SQL helpers -----------------------------------------------------------------


class days_between(FunctionElement[float]):
    """``later - earlier`` in (fractional) days, for two timestamp expressions."""

    type = Float()
    inherit_cache = True


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(julianday({later}) - julianday({earlier}))"


@compiles(days_between)
def _days_between_default(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return (
        f"(EXTRACT(EPOCH FROM ({compiler.process(later, **kw)} - "
        f"{compiler.process(earlier, **kw)})) / 86400.0)"
    )


class add_days(FunctionElement[datetime]):
    """``timestamp + days`` for a timestamp expression and a constant number of days.

    On SQLite the result has millisecond precision (``strftime('%f')``), so comparisons with it
    are exact to the millisecond: fine for analytics windows; KPI windows use
    :class:`days_between` or bounds computed in Python instead.
    """

    type = DateTime()
    inherit_cache = True


@compiles(add_days, "sqlite")
def _add_days_sqlite(element: add_days, compiler: Any, **kw: Any) -> str:
    timestamp, days = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"strftime('%Y-%m-%d %H:%M:%f', {timestamp}, ({days}) || ' days')"


@compiles(add_days)
def _add_days_default(element: add_days, compiler: Any, **kw: Any) -> str:
    timestamp, days = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({timestamp} + ({days}) * INTERVAL '1 day')"


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _alive(as_of: datetime) -> ColumnElement[bool]:
    """Signed up by ``as_of`` and not deleted by then; a user whose times are not timestamps
    is a defect, not an account."""
    return and_(
        User.signup_at <= as_of,
        or_(User.deleted_at.is_(None), User.deleted_at > as_of),
        not_(validation.not_timestamp(User.signup_at)),
        not_(validation.not_timestamp(User.deleted_at)),
        not_(validation.not_timestamp(User.activated_at)),
    )


def _in_window(column: Any, as_of: datetime, days: float) -> ColumnElement[bool]:
    return and_(column > as_of - timedelta(days=days), column <= as_of)


def unresolved_failures(at: datetime) -> Any:
    """Subscriptions with a failed charge unresolved at ``at`` (one scan of the charges, not
    a correlated probe per subscription)."""
    return (
        select(BillingEvent.subscription_id.label("subscription_id"))
        .where(
            BillingEvent.kind == "charge",
            BillingEvent.status == "failed",
            BillingEvent.occurred_at <= at,
            or_(BillingEvent.resolved_at.is_(None), BillingEvent.resolved_at > at),
        )
        .group_by(BillingEvent.subscription_id)
        .subquery("unresolved")
    )


def active_at(at: datetime) -> ColumnElement[bool]:
    return and_(
        Subscription.started_at <= at,
        or_(Subscription.ended_at.is_(None), Subscription.ended_at > at),
    )


# --- the snapshot -------------------------------------------------------------------------


@dataclass(frozen=True)
class KpiSnapshot:
    """Every KPI at ``as_of`` plus the counts behind them.

    - ``kpis``: every name of :data:`environment.kpis.KPI_NAMES`, natural units.
    - ``counts``: the aggregates the KPIs were computed from (segment sizes, window counts,
      records, MRR 30 days ago...), for issue detection and for explaining a number.
    - ``defects``: defective records by kind (:data:`DEFECT_KINDS`).
    - ``warnings``: what the observation had to assume (a missing metric or setting).
    - ``defect_report``: per table, column and kind, how many rows and a sample of their ids.
    - ``data_since``: the time of the earliest event (None without events): with
      ``as_of`` and the counts ``accounts``, ``events_7d``, ``events_30d`` it is the
      evidence :func:`evidence_shortfalls` judges.
    """

    as_of: datetime
    kpis: dict[str, float]
    counts: dict[str, float]
    defects: dict[str, int]
    warnings: tuple[str, ...] = field(default=())
    defect_report: tuple[DefectReport, ...] = field(default=())
    data_since: datetime | None = None

    def encode(self, cycles_since: Mapping[str, int] | None = None) -> NDArray[np.float32]:
        """The environment's observation vector: these KPIs and the recent actions
        (``cycles_since``: per action, cycles since it last executed, as
        :func:`agent.recent_actions.cycles_since_last` reads them; none: "long ago"), float32,
        shape (N_OBS,)."""
        return encode(self.kpis, cycles_since)


def as_utc_naive(as_of: datetime | None, name: str = "as_of") -> datetime:
    """``as_of`` as a naive UTC datetime (naive input is taken as UTC; ``None`` is now)."""
    if as_of is None:
        return datetime.now(UTC).replace(tzinfo=None)
    if not isinstance(as_of, datetime):
        raise ValueError(f"{name} must be a datetime, got {as_of!r}")
    if as_of.tzinfo is not None:
        return as_of.astimezone(UTC).replace(tzinfo=None)
    return as_of


# --- the queries --------------------------------------------------------------------------


def _standing(at: datetime) -> Any:
    """Per user with a subscription active at ``at``: in good standing (1/0), past due (1/0)."""
    unresolved = unresolved_failures(at)
    past_due = unresolved.c.subscription_id.is_not(None)
    return (
        select(
            Subscription.user_id.label("user_id"),
            func.max(case((past_due, 0), else_=1)).label("good"),
            func.max(case((past_due, 1), else_=0)).label("past_due"),
        )
        .select_from(Subscription)
        .outerjoin(unresolved, unresolved.c.subscription_id == Subscription.id)
        .where(active_at(at))
        .group_by(Subscription.user_id)
        .subquery("standing")
    )


def segment_query(as_of: datetime) -> Select[Any]:
    """``SELECT segment, count(*)`` over alive users (see the module docstring)."""
    standing = _standing(as_of)
    activated = and_(User.activated_at.is_not(None), User.activated_at <= as_of)
    # one index seek per user on (user_id, occurred_at), not a scan of every event
    silent = not_(
        exists().where(
            Event.user_id == User.id,
            Event.occurred_at > as_of - timedelta(days=SILENT_DAYS),
            Event.occurred_at <= as_of,
        )
    )
    in_trial = User.signup_at > as_of - timedelta(days=TRIAL_DAYS)
    segment = case(
        (and_(standing.c.good == 1, silent), "paying_at_risk"),
        (standing.c.good == 1, "paying_engaged"),
        (standing.c.past_due == 1, "past_due"),
        (and_(in_trial, activated), "trial_activated"),
        (in_trial, "trial_pending"),
        (not_(activated), "unactivated"),
        (silent, "at_risk_free"),
        else_="active_free",
    ).label("segment")
    return (
        select(segment, func.count().label("n"))
        .select_from(User)
        .outerjoin(standing, standing.c.user_id == User.id)
        .where(_alive(as_of))
        .group_by(segment)
    )


def _cohort_query(as_of: datetime) -> Select[int, int, int]:
    newest, oldest = COHORT_WINDOW
    retained = exists().where(
        Event.user_id == User.id,
        Event.occurred_at >= User.signup_at,
        days_between(Event.occurred_at, User.signup_at) >= 7.0,
        days_between(Event.occurred_at, User.signup_at) < 8.0,
        Event.occurred_at <= as_of,
    )
    activated_in_week = and_(
        User.activated_at.is_not(None),
        User.activated_at <= as_of,
        days_between(User.activated_at, User.signup_at) < 7.0,
    )
    return select(
        func.count().label("matured"),
        _count_if(activated_in_week).label("matured_activated"),
        _count_if(retained).label("matured_retained"),
    ).where(
        User.signup_at > as_of - timedelta(days=oldest),
        User.signup_at <= as_of - timedelta(days=newest),
        _alive(as_of),
    )


def _mrr_query(at: datetime) -> Select[float, int]:
    """Sum of list prices of subscriptions in good standing at ``at`` (before the price
    level) and how many there are."""
    unresolved = unresolved_failures(at)
    return (
        select(func.coalesce(func.sum(Subscription.list_price), 0.0), func.count())
        .select_from(Subscription)
        .outerjoin(unresolved, unresolved.c.subscription_id == Subscription.id)
        .where(
            active_at(at),
            unresolved.c.subscription_id.is_(None),
            not_(validation.conditions("subscriptions", at)["invalid_price"]),
        )
    )


SETTING_SCAN = 20
"""Values of a setting looked at, newest first, to find the latest valid one."""


def _setting_value(
    session: Session,
    key: str,
    at: datetime,
    warnings: list[str],
    report: list[DefectReport] | None = None,
) -> float:
    """The latest value of ``key`` at or before ``at`` that is a non-negative number. Values
    that are not JSON or not such a number are skipped, reported and warned about; without a
    valid one the default of :data:`SETTING_DEFAULTS` is assumed."""
    rows = session.execute(
        select(Setting.id, cast(Setting.value, String))
        .where(Setting.key == key, Setting.effective_at <= at)
        .order_by(Setting.effective_at.desc())
        .limit(SETTING_SCAN)
    ).all()
    default = SETTING_DEFAULTS[key]
    for row_id, raw in rows:
        number = validation.number_or_none(validation.json_or_none(raw), 0.0)
        if number is not None:
            return number
        warnings.append(
            f"setting {key!r} row {row_id} holds {raw!r}, not a non-negative number; skipped"
        )
        if report is not None:
            report.append(DefectReport("settings", "value", "invalid_setting", 1, (row_id,)))
    warnings.append(f"setting {key!r} has no valid value at {at:%Y-%m-%d %H:%M}; assumed {default}")
    return default


def _metric_outside(name: str) -> ColumnElement[bool]:
    low, high = validation.METRIC_RANGES[name]
    return or_(
        validation.outside(UsageMetric.value, low, high),
        validation.not_timestamp(UsageMetric.recorded_at),
    )


def _latest_metric(session: Session, name: str, as_of: datetime) -> tuple[float, datetime] | None:
    """The latest sample of ``name`` at or before ``as_of`` inside its physical range."""
    row = session.execute(
        select(UsageMetric.value, UsageMetric.recorded_at)
        .where(
            UsageMetric.name == name,
            UsageMetric.recorded_at <= as_of,
            UsageMetric.user_id.is_(None),
            not_(_metric_outside(name)),
        )
        .order_by(UsageMetric.recorded_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return float(row[0]), row[1]


def _orphans_query(column_user_id: Any, as_of: datetime) -> Select[Any]:
    """Rows of the table of ``column_user_id`` whose user is NULL, unknown, or deleted by
    ``as_of``; grouped by user first so the scan runs over the user_id index only."""
    per_user = (
        select(column_user_id.label("user_id"), func.count().label("n"))
        .group_by(column_user_id)
        .subquery("per_user")
    )
    gone = or_(User.id.is_(None), and_(User.deleted_at.is_not(None), User.deleted_at <= as_of))
    return (
        select(func.coalesce(func.sum(per_user.c.n), 0))
        .select_from(per_user)
        .outerjoin(User, User.id == per_user.c.user_id)
        .where(gone)
    )


def user_defect_conditions(as_of: datetime) -> dict[str, ColumnElement[bool]]:
    """Per-row defects of ``users`` by kind (duplicates are counted separately)."""
    return validation.conditions("users", as_of)


def workflow_defect_conditions(as_of: datetime) -> dict[str, ColumnElement[bool]]:
    return validation.conditions("workflows", as_of)


def suggestion_defect_conditions(as_of: datetime) -> dict[str, ColumnElement[bool]]:
    return validation.conditions("suggestions", as_of)


def billing_defect_conditions(as_of: datetime) -> dict[str, ColumnElement[bool]]:
    return validation.conditions("billing_events", as_of)


@dataclass(frozen=True, slots=True)
class DefectReport:
    """Rows of ``table`` whose ``column`` has defect ``kind``, with up to
    :data:`agent.validation.MAX_SAMPLE_IDS` of their ids."""

    table: str
    column: str
    kind: str
    rows: int
    sample_ids: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "kind": self.kind,
            "rows": self.rows,
            "sample_ids": list(self.sample_ids),
        }


@dataclass
class _Defects:
    """What the defect scans found: records (rows of the record tables), defective records
    (each counted once), rows per kind, and the per-column report."""

    records: int = 0
    defective: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEFECT_KINDS, 0))
    report: list[DefectReport] = field(default_factory=list)


def _sample_ids(session: Session, table: str, condition: ColumnElement[bool]) -> tuple[int, ...]:
    model = validation.MODELS[table]
    # no ORDER BY: it would make SQLite walk the primary key instead of the filter's index
    ids = session.execute(
        select(model.id).where(condition).limit(validation.MAX_SAMPLE_IDS)
    ).scalars()
    return tuple(sorted(int(i) for i in ids))


def _rule_flags(table: str, at: datetime) -> Any:
    """Subquery: one row per row of ``table`` with a 0/1 flag per rule (``r0``, ``r1``...),
    each rule evaluated once per row. ``OFFSET 0`` keeps it a subquery (SQLite and PostgreSQL
    would otherwise inline the flags into every aggregate, evaluating each rule twice: once
    for its own count and once for "any defect")."""
    model = validation.MODELS[table]
    flags = [
        case((func.coalesce(rule.condition(at), false()), 1), else_=0).label(f"r{i}")
        for i, rule in enumerate(validation.RULES[table])
    ]
    return select(*flags).select_from(model).offset(0).subquery(f"{table}_flags")


def _scan_table(session: Session, table: str, at: datetime, found: _Defects) -> None:
    """One aggregate pass over ``table`` (:func:`_rule_flags`): its rows, its defective rows
    (a duplicate user is one of them unless it already had another defect) and the rows of
    each rule."""
    rules = validation.RULES[table]
    any_defect = validation.defect(table, at)
    flags = _rule_flags(table, at)
    columns = [flags.c[f"r{i}"] for i in range(len(rules))]
    flagged = sum(columns[1:], columns[0])
    query: Any = select(
        func.count(),
        *(func.coalesce(func.sum(c), 0) for c in columns),
        _count_if(flagged > 0),
    ).select_from(flags)
    row = session.execute(query).one()
    rows, per_rule = int(row[0]), [int(n) for n in row[1 : 1 + len(rules)]]
    if table in validation.RECORD_TABLES:
        found.records += rows
        found.defective += int(row[1 + len(rules)])
    for rule, n in zip(rules, per_rule, strict=True):
        found.by_kind[rule.kind] = found.by_kind.get(rule.kind, 0) + n
        if n:
            ids = _sample_ids(session, table, rule.condition(at))
            found.report.append(DefectReport(table, rule.column, rule.kind, n, ids))
    if table == "users":
        duplicates, already_defective, ids = _duplicates(session, any_defect)
        found.defective += duplicates - already_defective
        found.by_kind["duplicate_user"] += duplicates
        if duplicates:
            found.report.append(DefectReport(table, "email", "duplicate_user", duplicates, ids))


def _duplicates(
    session: Session, any_defect: ColumnElement[bool]
) -> tuple[int, int, tuple[int, ...]]:
    """(duplicate users, those of them with another defect, up to
    :data:`agent.validation.MAX_SAMPLE_IDS` of their ids): a record counts once. One query,
    driven from the few duplicate groups through the ``lower(email)`` index; the counts are
    window aggregates over the whole join, so the sample needs no second pass."""
    firsts = validation.duplicate_firsts()
    rows = session.execute(
        select(User.id, func.count().over(), func.sum(case((any_defect, 1), else_=0)).over())
        .select_from(firsts)
        .join(User, func.lower(User.email) == firsts.c.email)
        .where(User.id != firsts.c.first_id)
        .order_by(User.id)  # the lowest ids: a sort of the few duplicates only
        .limit(validation.MAX_SAMPLE_IDS)
    ).all()
    if not rows:
        return 0, 0, ()
    return int(rows[0][1]), int(rows[0][2]), tuple(sorted(int(row[0]) for row in rows))


_EVENT_TIMES_OUT_OF_ORDER = text(
    "(events.occurred_at < '0001-01-01' OR events.occurred_at > '9999-12-31 23:59:59.999999')"
)
_EVENT_USERS_OUT_OF_ORDER = text(
    "(events.user_id >= '' OR events.user_id > 9223372036854775807 "
    "OR events.user_id < -9223372036854775808)"
)
"""SQLite: the events whose time (resp. user id) sorts outside its type's range, exactly the
rows of :func:`agent.validation.not_timestamp` (``not_integer``), written as plain ranges so
the ``occurred_at`` (``(user_id, occurred_at)``) index answers them without a scan (one query
each: an OR across the two indexes makes SQLite scan)."""


def _count_where(session: Session, condition: Any) -> int:
    """Events matching ``condition``, counted over an index alone (nothing else selected)."""
    return int(
        session.execute(select(func.count()).select_from(Event).where(condition)).scalar_one()
    )


def _scan_events(session: Session, at: datetime, found: _Defects) -> None:
    """Events by type over the type index, future-dated ones over the time index, and values
    that are not timestamps or user ids (SQLite only) in one more pass."""
    by_type = dict(session.execute(select(Event.type, func.count()).group_by(Event.type)).all())
    total = sum(by_type.values())
    unknown = sum(n for kind, n in by_type.items() if kind not in EVENT_TYPES)
    known = Event.type.in_(EVENT_TYPES)
    unknown_type = or_(Event.type.is_(None), not_(known))
    future, future_unknown = session.execute(
        select(func.count(), _count_if(unknown_type)).where(Event.occurred_at > at)
    ).one()
    invalid_time = validation.not_timestamp(Event.occurred_at)
    invalid_ref = validation.not_integer(Event.user_id)
    invalid = invalid_refs = invalid_only = 0
    if session.get_bind().dialect.name == "sqlite":  # typed columns elsewhere: nothing to find
        otherwise_clean = and_(known, not_(Event.occurred_at > at))
        invalid = _count_where(session, _EVENT_TIMES_OUT_OF_ORDER)
        invalid_refs = _count_where(session, _EVENT_USERS_OUT_OF_ORDER)
        time_only = ref_only = 0
        if invalid:  # rare: only then read the columns the index does not cover
            time_only = session.execute(
                select(_count_if(otherwise_clean)).where(_EVENT_TIMES_OUT_OF_ORDER)
            ).scalar_one()
        if invalid_refs:
            ref_only = session.execute(
                select(_count_if(and_(otherwise_clean, not_(invalid_time)))).where(
                    _EVENT_USERS_OUT_OF_ORDER
                )
            ).scalar_one()
        invalid_only = int(time_only) + int(ref_only)
    found.records += total
    found.defective += unknown + int(future) - int(future_unknown) + int(invalid_only)
    counts = {
        ("type", "unknown_event_type"): (unknown, unknown_type),
        ("occurred_at", "future_timestamp"): (int(future), Event.occurred_at > at),
        ("occurred_at", "invalid_timestamp"): (int(invalid), invalid_time),
        ("user_id", "invalid_reference"): (int(invalid_refs), invalid_ref),
    }
    for (column, kind), (n, condition) in counts.items():
        found.by_kind[kind] += n
        if n:
            ids = _sample_ids(session, "events", condition)
            found.report.append(DefectReport("events", column, kind, n, ids))


def _scan_defects(session: Session, at: datetime) -> _Defects:
    found = _Defects()
    for table in validation.RULES:
        if table == "events":
            _scan_events(session, at, found)
        else:
            _scan_table(session, table, at, found)
    return found


# --- observe ------------------------------------------------------------------------------


def observe(session: Session, as_of: datetime | None = None) -> KpiSnapshot:
    """Every KPI at ``as_of`` (default: now, UTC) by SQL aggregates; see the module docstring.

    Garbage rows never raise: they are counted in ``snapshot.defects`` and in
    ``data_quality_issue_rate``. A database without the schema raises
    :class:`agent.db.SchemaMissing` / :class:`agent.db.SchemaOutdated` naming the fix.
    """
    at = as_utc_naive(as_of)
    try:
        return _observe(session, at)
    except (OperationalError, ProgrammingError):
        session.rollback()
        check_schema(session.get_bind().engine)  # raises the helpful error if that is the cause
        raise


def _observe(session: Session, at: datetime) -> KpiSnapshot:
    warnings: list[str] = []
    segments = dict.fromkeys(SEGMENTS, 0)
    for name, n in session.execute(segment_query(at)).all():
        segments[name] = int(n)
    matured, matured_activated, matured_retained = (
        int(v) for v in session.execute(_cohort_query(at)).one()
    )
    conversions = int(
        session.execute(
            select(func.count()).where(
                Subscription.start_reason == "conversion",
                _in_window(Subscription.started_at, at, MONTH_DAYS),
            )
        ).scalar_one()
    )
    churned = int(
        session.execute(
            select(func.count()).where(
                Subscription.end_reason.in_(CHURN_REASONS),
                _in_window(Subscription.ended_at, at, MONTH_DAYS),
            )
        ).scalar_one()
    )
    attempts, failures = (
        int(v)
        for v in session.execute(
            select(func.count(), _count_if(BillingEvent.status == "failed")).where(
                BillingEvent.kind == "charge", _in_window(BillingEvent.occurred_at, at, 1)
            )
        ).one()
    )
    messages = int(
        session.execute(
            select(func.count()).where(
                Outbox.kind == "message", _in_window(Outbox.created_at, at, WEEK_DAYS)
            )
        ).scalar_one()
    )
    spend = float(
        session.execute(
            select(func.coalesce(func.sum(cast(UsageMetric.value, Float)), 0.0)).where(
                UsageMetric.name == MARKETING_METRIC,
                UsageMetric.user_id.is_(None),
                _in_window(UsageMetric.recorded_at, at, MONTH_DAYS),
                not_(_metric_outside(MARKETING_METRIC)),
            )
        ).scalar_one()
    )
    month_ago = at - timedelta(days=MONTH_DAYS)
    list_now, _ = session.execute(_mrr_query(at)).one()
    list_then, _ = session.execute(_mrr_query(month_ago)).one()
    setting_defects: list[DefectReport] = []
    price_now = _setting_value(session, "price_level", at, warnings, setting_defects)
    price_then = _setting_value(session, "price_level", month_ago, [])
    gross_margin = _setting_value(session, "gross_margin", at, warnings, setting_defects)
    base_latency = _setting_value(session, "base_latency_ms", at, warnings, setting_defects)

    # --- records, defects, orphans
    found = _scan_defects(session, at)
    found.report.extend(setting_defects)
    found.by_kind["invalid_setting"] += len(setting_defects)
    records, defective, defects = found.records, found.defective, found.by_kind
    orphan_events = int(session.execute(_orphans_query(Event.user_id, at)).scalar_one())
    orphan_workflows = int(session.execute(_orphans_query(Workflow.user_id, at)).scalar_one())
    orphans = orphan_events + orphan_workflows

    # --- health
    health_inputs: dict[str, float] = {}
    nominal = {"error_rate": 0.0, "p95_latency_ms": base_latency, "failed_job_rate": 0.0}
    for name in HEALTH_METRICS:
        latest = _latest_metric(session, name, at)
        if latest is None:
            warnings.append(f"no {name} metric at or before {at:%Y-%m-%d %H:%M}; assumed nominal")
            health_inputs[name] = nominal[name]
            continue
        value, recorded_at = latest
        health_inputs[name] = value
        if at - recorded_at > timedelta(days=1):
            warnings.append(
                f"latest {name} metric is stale (recorded {recorded_at:%Y-%m-%d %H:%M})"
            )
    bloat = orphans / records if records else 0.0

    s = segments
    activated = s["trial_activated"] + s["active_free"] + s["paying_engaged"]
    active = activated + s["trial_pending"] + s["unactivated"]
    paying = s["paying_engaged"] + s["paying_at_risk"]
    at_risk = s["at_risk_free"] + s["paying_at_risk"]
    mrr = price_now * float(list_now)
    mrr_then = price_then * float(list_then)
    churn_rate = churned / max(paying, 1)
    cac = spend / max(conversions, 1)
    arpa = mrr / paying if paying else 0.0
    kpis: dict[str, float] = {
        "activation_rate": activated / max(active, 1),
        "d7_retention": matured_retained / max(matured, 1),
        "signup_to_activation": matured_activated / max(matured, 1),
        "conversion_rate": conversions / max(s["active_free"], 1),
        "ltv_cac": arpa * gross_margin / max(churn_rate, 0.005) / max(cac, 1.0),
        "health_score": health_score(
            health_inputs["error_rate"],
            health_inputs["p95_latency_ms"],
            health_inputs["failed_job_rate"],
            bloat,
            base_latency,
        ),
        "alignment_score": 0.0,
        "data_quality_issue_rate": defective / records if records else 0.0,
        "orphaned_records": float(orphans),
        "billing_failure_rate": failures / attempts if attempts else 0.0,
        "failed_payment_backlog": s["past_due"] / max(paying, 1),
        "at_risk_share": at_risk / max(at_risk + s["active_free"] + s["paying_engaged"], 1),
        "message_pressure": messages / max(active, 1),
        "mrr": mrr,
        "mrr_growth": mrr / max(mrr_then, 1.0) - 1.0 if mrr or mrr_then else 0.0,
        "churn_rate": churn_rate,
        "cac": cac,
        "arpa": arpa,
    }
    kpis["alignment_score"] = alignment_score(kpis)
    check_kpis(kpis)
    assert tuple(kpis) == KPI_NAMES
    counts: dict[str, float] = {
        **{f"segment_{name}": float(n) for name, n in segments.items()},
        "activated": float(activated),
        "active": float(active),
        "paying": float(paying),
        "at_risk": float(at_risk),
        "matured": float(matured),
        "matured_activated": float(matured_activated),
        "matured_retained": float(matured_retained),
        "conversions_30d": float(conversions),
        "churned_30d": float(churned),
        "billing_attempts_1d": float(attempts),
        "billing_failures_1d": float(failures),
        "messages_7d": float(messages),
        "marketing_spend_30d": spend,
        "mrr_30d_ago": mrr_then,
        "price_level": price_now,
        "records": float(records),
        "defective_records": float(defective),
        "orphaned_events": float(orphan_events),
        "orphaned_workflows": float(orphan_workflows),
        "bloat": bloat,
        **health_inputs,
        "base_latency_ms": base_latency,
    }
    counts.update(_activity(session, at))
    counts["accounts"] = float(sum(segments.values()))
    return KpiSnapshot(
        at,
        kpis,
        counts,
        defects,
        tuple(warnings),
        tuple(found.report),
        _data_since(session),
    )


# --- evidence for live mode ---------------------------------------------------------------

MIN_ACCOUNTS = 50
"""Alive accounts a live decision needs: below this a share moves by 2 points per account."""
MIN_EVENTS_30D = 500
"""Events in the trailing 30 days a live decision needs (10 per account of the minimum)."""
MIN_EVENTS_7D = 50
"""Events in the trailing 7 days: without recent activity the KPIs describe the past."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far ``as_of`` may be ahead of the wall clock (clock drift between hosts)."""
_EPOCH = datetime(1970, 1, 1)


def _activity(session: Session, at: datetime) -> dict[str, float]:
    """Events in the trailing 7 and 30 days (over the time index)."""
    week, month = session.execute(
        select(_count_if(Event.occurred_at > at - timedelta(days=WEEK_DAYS)), func.count()).where(
            _in_window(Event.occurred_at, at, MONTH_DAYS)
        )
    ).one()
    return {"events_7d": float(week), "events_30d": float(month)}


def _data_since(session: Session) -> datetime | None:
    """The earliest event time from 1970 on (an index seek; earlier values are garbage)."""
    first = session.execute(
        select(func.min(Event.occurred_at)).where(Event.occurred_at >= _EPOCH)
    ).scalar_one_or_none()
    return first if isinstance(first, datetime) else None


def evidence_shortfalls(snapshot: KpiSnapshot, now: datetime | None = None) -> tuple[str, ...]:
    """Why ``snapshot`` is not enough evidence to act on live (empty: it is).

    Live mode needs at least :data:`MIN_ACCOUNTS` alive accounts, :data:`MIN_EVENTS_30D`
    events in the trailing 30 days and :data:`MIN_EVENTS_7D` in the trailing 7, and an
    ``as_of`` inside the data's time range (not before the first event) and not in the future
    (``now``, default the wall clock, plus :data:`CLOCK_SKEW`). Each shortfall is one reason
    naming the figure and the minimum; the cycle holds every decision with them.
    """
    moment = as_utc_naive(now)
    c = snapshot.counts
    reasons: list[str] = []
    if snapshot.as_of > moment + CLOCK_SKEW:
        reasons.append(f"insufficient data: as-of {snapshot.as_of:%Y-%m-%d %H:%M} is in the future")
    if snapshot.data_since is None:
        reasons.append("insufficient data: the database has no events")
    elif snapshot.as_of < snapshot.data_since:
        reasons.append(
            f"insufficient data: as-of {snapshot.as_of:%Y-%m-%d %H:%M} is before the first "
            f"event ({snapshot.data_since:%Y-%m-%d %H:%M})"
        )
    for key, minimum, what in (
        ("accounts", MIN_ACCOUNTS, "alive accounts"),
        ("events_30d", MIN_EVENTS_30D, "events in 30 days"),
        ("events_7d", MIN_EVENTS_7D, "events in 7 days"),
    ):
        if c.get(key, 0.0) < minimum:
            reasons.append(f"insufficient data: {int(c.get(key, 0.0))} {what} (minimum {minimum})")
    return tuple(reasons)


def evidence_weight(snapshot: KpiSnapshot) -> float:
    """How much data the KPIs rest on, in [0, 1]: the smallest of accounts, 30-day and 7-day
    events as a share of their minimum (1 once every minimum is met). A cycle may scale a
    policy's confidence by it."""
    c = snapshot.counts
    shares = (
        c.get("accounts", 0.0) / MIN_ACCOUNTS,
        c.get("events_30d", 0.0) / MIN_EVENTS_30D,
        c.get("events_7d", 0.0) / MIN_EVENTS_7D,
    )
    return float(min(1.0, *shares))


__all__ = [
    "DEFECT_KINDS",
    "SEGMENTS",
    "DefectReport",
    "KpiSnapshot",
    "days_between",
    "evidence_shortfalls",
    "evidence_weight",
    "health_score",
    "observe",
]
