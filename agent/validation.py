"""The one definition of a valid product row, shared by observation and the actuators.

A *rule* names a table, a column and a defect kind, and gives the SQL condition that is true
for a row with that defect at a time ``A`` (``as_of``). :func:`agent.observe.observe` counts
the rows each rule matches (the defects of the report, with sample row ids) and leaves
defective values out of the aggregates; every actuator selects only rows for which
:func:`valid` holds, so the engine never acts on a row its own observation flags.

Kinds and what they mean:

=========================== ===================================================================
kind                        a row has it when
=========================== ===================================================================
``null_email``              ``users.email`` is NULL
``malformed_email``         the email is not ``local@domain.tld`` with exactly one ``@``, or it
                            contains a character of :data:`FORBIDDEN_EMAIL_CHARS`
``duplicate_user``          a well-formed email that an earlier user already has (lower case)
``activation_before_signup`` ``activated_at < signup_at``
``future_timestamp``        the row's own time (signup, creation, occurrence...) is after ``A``
``invalid_timestamp``       a time column holds something that is not a timestamp (SQLite
                            stores whatever it is given: ``'not-a-date'``, a number)
``unknown_event_type``      an event type outside :data:`agent.models.EVENT_TYPES`
``unknown_workflow_status`` a workflow status outside :data:`agent.models.WORKFLOW_STATUSES`
``missing_workflow_name``   ``workflows.name`` is NULL
``invalid_confidence``      a suggestion confidence that is NULL, not a number or outside [0, 1]
``negative_amount``         a billing amount below 0
``invalid_amount``          a billing amount that is NULL or not a number, or a charge of 0
``unknown_billing_value``   a billing kind or status outside the known values
``invalid_price``           a subscription ``list_price`` that is not a number > 0 and at most
                            :data:`MAX_LIST_PRICE`
``invalid_reference``       a ``user_id`` or ``subscription_id`` that is not an integer (SQLite)
``out_of_range``            a metric sample outside its physical range
                            (:data:`METRIC_RANGES`) or not a number
``invalid_setting``         a ``settings`` value the observation reads that is not JSON or not
                            a non-negative number (skipped for the latest valid one)
=========================== ===================================================================

PostgreSQL enforces the column types, so ``invalid_timestamp`` and the "not a number" parts
never match there; SQLite does not, and there they are checked with ``typeof`` and
``julianday``. Every condition is portable SQL (no regular expressions), so observation stays
in aggregates on both backends.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, false, func, not_, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from agent.models import (
    BILLING_KINDS,
    BILLING_STATUSES,
    EVENT_TYPES,
    WORKFLOW_STATUSES,
    BillingEvent,
    Event,
    Subscription,
    Suggestion,
    UsageMetric,
    User,
    Workflow,
)

FORBIDDEN_EMAIL_CHARS: tuple[str, ...] = (
    " ", "\t", "\n", "\r", ";", ",", "<", ">", "(", ")", "[", "]", "\\", '"', "'", ":",
)  # fmt: skip
"""Characters no deliverable address of ours contains (RFC 5322 allows some only quoted)."""
EMAIL_PATTERN = "%_@_%._%"
"""SQL LIKE shape of an email: something, ``@``, something, ``.``, something."""
MAX_LIST_PRICE = 100_000.0
"""A monthly list price above this (USD) is a typo, not a plan."""
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "error_rate": (0.0, 1.0),
    "failed_job_rate": (0.0, 1.0),
    "p95_latency_ms": (0.0, 600_000.0),
    "marketing_spend_usd": (0.0, 1e9),
}
"""Physical range of each metric the observation reads: a rate is a share, a latency is at
most ten minutes (a request timeout), a day's spend at most a billion USD."""
MAX_SAMPLE_IDS = 5
"""Row ids listed per defect in an observation's report."""


# --- portable type checks (SQLite stores any value in any column) -------------------------


_TIME_FLOOR = "0001-01-01"
_TIME_CEILING = "9999-12-31 23:59:59.999999"


class _not_timestamp(FunctionElement[bool]):
    type = Boolean()
    inherit_cache = True


@compiles(_not_timestamp, "sqlite")
def _not_timestamp_sqlite(element: _not_timestamp, compiler: Any, **kw: Any) -> str:
    # by sort order: numbers sort before every text and blobs after it, words after digits;
    # no per-row parsing (julianday would triple a scan); NULL is not a defect (IS 1)
    (column,) = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(({column} < '{_TIME_FLOOR}' OR {column} > '{_TIME_CEILING}') IS 1)"


@compiles(_not_timestamp)
def _not_timestamp_default(element: _not_timestamp, compiler: Any, **kw: Any) -> str:
    return "(1 = 0)"  # a typed column holds timestamps only


class _not_number(FunctionElement[bool]):
    type = Boolean()
    inherit_cache = True


@compiles(_not_number, "sqlite")
def _not_number_sqlite(element: _not_number, compiler: Any, **kw: Any) -> str:
    (column,) = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({column} IS NOT NULL AND typeof({column}) NOT IN ('integer', 'real'))"


@compiles(_not_number)
def _not_number_default(element: _not_number, compiler: Any, **kw: Any) -> str:
    return "(1 = 0)"


class _not_integer(FunctionElement[bool]):
    type = Boolean()
    inherit_cache = True


@compiles(_not_integer, "sqlite")
def _not_integer_sqlite(element: _not_integer, compiler: Any, **kw: Any) -> str:
    # by sort order too: text and blobs sort after every number, and a number beyond 64 bits
    # is a REAL (a fraction inside that range still converts to an id, harmlessly)
    (column,) = (compiler.process(clause, **kw) for clause in element.clauses)
    bounds = f"{column} > 9223372036854775807 OR {column} < -9223372036854775808"
    return f"(({column} >= '' OR {bounds}) IS 1)"


@compiles(_not_integer)
def _not_integer_default(element: _not_integer, compiler: Any, **kw: Any) -> str:
    return "(1 = 0)"


def not_integer(column: Any) -> ColumnElement[bool]:
    """True where a non-NULL value of ``column`` is not an integer (a reference that points
    nowhere: ``1e308`` or ``'abc'`` in a ``user_id``)."""
    return _not_integer(column)


def not_timestamp(column: Any) -> ColumnElement[bool]:
    """True where a non-NULL value of ``column`` does not sort as a timestamp between years
    1 and 9999 (a number, a word, a blob). A string of digits that sorts like a date but is
    none (``'2025-13-45'``) passes here; an actuator that loads such a row skips and flags it
    (see :func:`agent.actuators.load_rows`)."""
    return _not_timestamp(column)


def not_number(column: Any) -> ColumnElement[bool]:
    """True where a non-NULL value of ``column`` is not a number."""
    return _not_number(column)


def outside(column: Any, low: float, high: float) -> ColumnElement[bool]:
    """NULL, not a number, or outside ``[low, high]`` (NaN and infinities included: on
    PostgreSQL NaN is greater than every number, on SQLite it is stored as NULL)."""
    return or_(column.is_(None), not_number(column), column < low, column > high)


# --- emails: one rule in SQL and in Python ------------------------------------------------


class _has_forbidden_char(FunctionElement[bool]):
    type = Boolean()
    inherit_cache = True


@compiles(_has_forbidden_char)
def _has_forbidden_char_default(element: _has_forbidden_char, compiler: Any, **kw: Any) -> str:
    (column,) = list(element.clauses)
    return str(
        compiler.process(
            or_(*(column.contains(char, autoescape=True) for char in FORBIDDEN_EMAIL_CHARS)), **kw
        )
    )


def malformed_email(column: Any) -> ColumnElement[bool]:
    """A non-NULL email that :func:`email_is_valid` rejects, in SQL."""
    return and_(
        column.is_not(None),
        or_(column.not_like(EMAIL_PATTERN), column.like("%@%@%"), _has_forbidden_char(column)),
    )


def email_is_valid(email: str) -> bool:
    """``local@domain.tld``: one ``@``, a non-empty local part, a dot inside the domain, and
    no character of :data:`FORBIDDEN_EMAIL_CHARS` (the Python twin of :func:`malformed_email`)."""
    if any(char in email for char in FORBIDDEN_EMAIL_CHARS) or email.count("@") != 1:
        return False
    local, domain = email.split("@")
    return bool(local) and any(domain[i] == "." for i in range(1, len(domain) - 1))


# --- the rules ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """A defect ``kind`` of ``table.column``; ``condition(as_of)`` is true for defective rows."""

    table: str
    column: str
    kind: str
    condition: Callable[[datetime], ColumnElement[bool]]


def _not_timestamp_rule(column: Any) -> Callable[[datetime], ColumnElement[bool]]:
    def condition(at: datetime) -> ColumnElement[bool]:
        return not_timestamp(column)

    return condition


def _timestamps(table: str, model: Any, columns: tuple[str, ...]) -> tuple[Rule, ...]:
    return tuple(
        Rule(table, name, "invalid_timestamp", _not_timestamp_rule(getattr(model, name)))
        for name in columns
    )


def _not_integer_rule(column: Any) -> Callable[[datetime], ColumnElement[bool]]:
    def condition(at: datetime) -> ColumnElement[bool]:
        return not_integer(column)

    return condition


def _references(table: str, model: Any, columns: tuple[str, ...]) -> tuple[Rule, ...]:
    return tuple(
        Rule(table, name, "invalid_reference", _not_integer_rule(getattr(model, name)))
        for name in columns
    )


def _future(table: str, column: Any) -> Rule:
    return Rule(table, column.key, "future_timestamp", lambda at: column > at)


def _metric_out_of_range() -> ColumnElement[bool]:
    return or_(
        *(
            and_(UsageMetric.name == name, outside(UsageMetric.value, low, high))
            for name, (low, high) in METRIC_RANGES.items()
        )
    )


RULES: dict[str, tuple[Rule, ...]] = {
    "users": (
        Rule("users", "email", "null_email", lambda at: User.email.is_(None)),
        Rule("users", "email", "malformed_email", lambda at: malformed_email(User.email)),
        _future("users", User.signup_at),
        Rule(
            "users",
            "activated_at",
            "activation_before_signup",
            lambda at: User.activated_at < User.signup_at,
        ),
        *_timestamps("users", User, ("signup_at", "activated_at", "deleted_at")),
    ),
    "workflows": (
        Rule("workflows", "name", "missing_workflow_name", lambda at: Workflow.name.is_(None)),
        Rule(
            "workflows",
            "status",
            "unknown_workflow_status",
            lambda at: or_(Workflow.status.is_(None), Workflow.status.not_in(WORKFLOW_STATUSES)),
        ),
        _future("workflows", Workflow.created_at),
        *_timestamps("workflows", Workflow, ("created_at", "last_run_at")),
        *_references("workflows", Workflow, ("user_id",)),
    ),
    "events": (
        Rule(
            "events",
            "type",
            "unknown_event_type",
            lambda at: or_(Event.type.is_(None), Event.type.not_in(EVENT_TYPES)),
        ),
        _future("events", Event.occurred_at),
        *_timestamps("events", Event, ("occurred_at",)),
        *_references("events", Event, ("user_id",)),
    ),
    "suggestions": (
        Rule(
            "suggestions",
            "confidence",
            "invalid_confidence",
            lambda at: outside(Suggestion.confidence, 0.0, 1.0),
        ),
        _future("suggestions", Suggestion.shown_at),
        *_timestamps("suggestions", Suggestion, ("shown_at", "responded_at")),
        *_references("suggestions", Suggestion, ("user_id",)),
    ),
    "billing_events": (
        Rule(
            "billing_events",
            "amount",
            "negative_amount",
            lambda at: and_(not_(not_number(BillingEvent.amount)), BillingEvent.amount < 0),
        ),
        Rule(
            "billing_events",
            "amount",
            "invalid_amount",
            lambda at: or_(
                BillingEvent.amount.is_(None),
                not_number(BillingEvent.amount),
                and_(BillingEvent.kind == "charge", BillingEvent.amount == 0),
            ),
        ),
        Rule(
            "billing_events",
            "kind",
            "unknown_billing_value",
            lambda at: or_(
                BillingEvent.kind.is_(None),
                BillingEvent.status.is_(None),
                BillingEvent.kind.not_in(BILLING_KINDS),
                BillingEvent.status.not_in(BILLING_STATUSES),
            ),
        ),
        _future("billing_events", BillingEvent.occurred_at),
        *_timestamps("billing_events", BillingEvent, ("occurred_at", "resolved_at")),
        *_references("billing_events", BillingEvent, ("user_id", "subscription_id")),
    ),
    "subscriptions": (
        Rule(
            "subscriptions",
            "list_price",
            "invalid_price",
            lambda at: or_(
                outside(Subscription.list_price, 0.0, MAX_LIST_PRICE),
                Subscription.list_price <= 0,
            ),
        ),
        *_timestamps("subscriptions", Subscription, ("started_at", "ended_at")),
        *_references("subscriptions", Subscription, ("user_id",)),
    ),
    "usage_metrics": (
        Rule("usage_metrics", "value", "out_of_range", lambda at: _metric_out_of_range()),
        *_timestamps("usage_metrics", UsageMetric, ("recorded_at",)),
        *_references("usage_metrics", UsageMetric, ("user_id",)),
    ),
}
"""Every rule, per product table (``table`` is the key)."""
MODELS: dict[str, Any] = {
    "users": User,
    "workflows": Workflow,
    "events": Event,
    "suggestions": Suggestion,
    "billing_events": BillingEvent,
    "subscriptions": Subscription,
    "usage_metrics": UsageMetric,
}
RECORD_TABLES: tuple[str, ...] = ("users", "workflows", "events", "suggestions", "billing_events")
"""The tables whose rows are *records* of ``data_quality_issue_rate``."""
DEFECT_KINDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            "null_email",
            "malformed_email",
            "duplicate_user",
            *(rule.kind for rules in RULES.values() for rule in rules),
            "invalid_setting",
        ]
    )
)
"""Every defect kind, in report order."""


def defect(table: str, as_of: datetime) -> ColumnElement[bool]:
    """True for a row of ``table`` with any defect at ``as_of`` (duplicates aside). A rule
    whose SQL is NULL (a NULL compared, e.g. no ``activated_at``) does not match: rules that
    treat NULL as a defect say so with ``IS NULL``."""
    return or_(*(func.coalesce(rule.condition(as_of), false()) for rule in RULES[table]))


def valid(table: str, as_of: datetime) -> ColumnElement[bool]:
    """True for a row of ``table`` that passes every rule at ``as_of``: the only rows an
    actuator may act on."""
    return not_(defect(table, as_of))


def conditions(table: str, as_of: datetime) -> dict[str, ColumnElement[bool]]:
    """Per defect kind of ``table``, the condition (rules of one kind joined by OR)."""
    out: dict[str, list[ColumnElement[bool]]] = {}
    for rule in RULES[table]:
        out.setdefault(rule.kind, []).append(rule.condition(as_of))
    return {kind: or_(*parts) for kind, parts in out.items()}


def duplicate_firsts() -> Any:
    """Subquery: per lower-cased well-formed email held by several users, the first user id.

    Well-formedness is checked once per group, on the group's key, not on every row: lower
    case changes no character :func:`malformed_email` looks at (``@``, ``.``, the forbidden
    characters), so the members of a group are all well-formed or all not, and the grouping
    reads the ``lower(email)`` index alone."""
    email = func.lower(User.email)
    return (
        select(email.label("email"), func.min(User.id).label("first_id"))
        .group_by(email)
        .having(and_(func.count() > 1, not_(malformed_email(email))))
        .subquery("duplicate_firsts")
    )


def json_or_none(raw: str | None) -> Any:
    """The JSON value encoded by ``raw`` (a column read as text), or None when it is not JSON."""
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return None


def number_or_none(value: Any, low: float = -math.inf, high: float = math.inf) -> float | None:
    """``value`` as a finite float in ``[low, high]``, or None (the Python twin of
    :func:`outside`, for values read one at a time such as settings)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and low <= number <= high else None


__all__ = [
    "DEFECT_KINDS",
    "FORBIDDEN_EMAIL_CHARS",
    "METRIC_RANGES",
    "RULES",
    "Rule",
    "conditions",
    "defect",
    "email_is_valid",
    "malformed_email",
    "number_or_none",
    "valid",
]
