"""Actuators: the real effects of the catalogue's actions on the database.

Two steps per action:

- :func:`plan` counts, by SQL, what an execution would touch (``rows``) out of how many it
  could (``population``, the base of the guardrails' blast-radius share). It reads only: a dry
  run stops here.
- :func:`execute` applies the effect in the caller's transaction together with the
  :class:`~agent.models.Execution` row (and its undo record) and the audit entry, and flushes;
  the caller commits once (or rolls back, and then none of the three exists). The execution's
  ``idempotency_key`` (``cycle|action|target``) is unique in the database, so a second
  execution of the same action on the same target in the same cycle returns the first one
  instead of acting again, even when two processes race.

Effects per action:

==================== ============================================================ ==========
action               effect                                                       undo
==================== ============================================================ ==========
retention_campaign   one Outbox message per at-risk account (activated, silent     delete the
                     :data:`~agent.observe.SILENT_DAYS` days) not messaged by a    messages
                     campaign within :data:`RETENTION_COOLDOWN_DAYS`
payment_retry        one Outbox retry job per unresolved failed charge with fewer  delete the
                     than :data:`MAX_RETRY_ATTEMPTS` retry jobs so far              jobs
orphan_cleanup       workflows and events whose user is gone move, whole, to       rows back
                     ``archive`` (nothing is hard-deleted)                         from archive
data_fix             malformed emails and unknown event types that become valid    old values
                     once surrounding whitespace is trimmed and case folded are    written back
                     normalized (:data:`REPAIRS`, old values kept); the unfixable
                     ones are flagged in the execution's effect and in one Outbox
                     review job per field
optimization and     a new Setting row (the table is its own history), see         delete that
decision actions     :data:`SETTING_ACTIONS`                                       row
==================== ============================================================ ==========
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent import audit, validation
from agent.detect import alive, at_risk
from agent.models import (
    EVENT_TYPES,
    Archive,
    BillingEvent,
    Event,
    Execution,
    Outbox,
    Setting,
    Subscription,
    User,
    Workflow,
)
from agent.observe import (
    SETTING_DEFAULTS,
    SETTING_SCAN,
    SILENT_DAYS,
    as_utc_naive,
)
from environment.actions import ACTION_NAMES
from environment.params import BusinessParams

RETENTION_COOLDOWN_DAYS = 14
"""An account gets at most one win-back message in this many days."""
MAX_RETRY_ATTEMPTS = 3
"""Retry jobs per failed charge, at most."""
MAX_FLAGGED_IDS = 1000
"""Ids of unfixable rows listed in an execution's effect, at most."""
REVIEW_TOPIC = "data_review"
FIXABLE_DEFECTS = frozenset({"malformed_email", "unknown_event_type"})
"""Defect kinds of :mod:`agent.observe` that ``data_fix`` repairs where a safe normalization
exists (:data:`REPAIRS`; the others are only detected)."""

PRICE_STEP = BusinessParams().price_step
"""A price change moves the price level by this share, as in the simulator (10%)."""

SETTING_ACTIONS: dict[str, tuple[str, Callable[[float], float]]] = {
    "onboarding_boost": ("onboarding_boost", lambda old: 1.0),
    "funnel_fix": ("funnel_fix", lambda old: 1.0),
    "upgrade_prompt": ("upgrade_prompt", lambda old: 1.0),
    "price_increase": ("price_level", lambda old: round(old * (1.0 + PRICE_STEP), 6)),
    "price_decrease": ("price_level", lambda old: round(old * (1.0 - PRICE_STEP), 6)),
    "scale_infra": ("infra_capacity", lambda old: old + 1.0),
    "shift_marketing": ("marketing_shifts", lambda old: old + 1.0),
    "ship_feature": ("features_shipped", lambda old: old + 1.0),
}
"""Optimization and decision actions: action -> (setting key, new value from the old one)."""
SETTING_BASELINES: dict[str, float] = {
    "onboarding_boost": 0.0,
    "funnel_fix": 0.0,
    "upgrade_prompt": 0.0,
    "infra_capacity": 1.0,
    "marketing_shifts": 0.0,
    "features_shipped": 0.0,
    **SETTING_DEFAULTS,
}
"""The value of a setting that has never been set."""
ROW_ACTIONS = ("retention_campaign", "payment_retry", "orphan_cleanup", "data_fix")
ACTUATED = frozenset((*ROW_ACTIONS, *SETTING_ACTIONS))
MAX_SCOPED_ROWS = 10_000
"""Rows whose ids an approval's plan lists (:func:`target_ids`); a larger plan is approved by
its count and refused if the count moved."""


class ActuatorError(RuntimeError):
    """An execution or undo that cannot proceed; the message says why."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one execution of ``action`` would do at ``at``.

    - ``target``: what it acts on (a segment, a table, a setting key); part of the
      idempotency key.
    - ``rows``: rows or accounts it would touch; ``population``: how many it could touch.
    - ``details``: JSON-ready specifics (counts per kind, the setting's old and new value).
    """

    action: str
    target: str
    at: datetime
    rows: int
    population: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "rows": self.rows,
            "population": self.population,
            **self.details,
        }


@dataclass(frozen=True, slots=True)
class ExecutionOutcome:
    """The execution row of an action and whether this call created it (``False``: the
    idempotency key already had one, nothing was done again)."""

    execution: Execution
    created: bool


def idempotency_key(cycle_id: int | None, action: str, target: str, at: datetime) -> str:
    """``cycle|action|target``; outside a cycle, the time stands for the cycle (``@time``)."""
    cycle = str(cycle_id) if cycle_id is not None else f"@{at.isoformat()}"
    return f"{cycle}|{action}|{target}"


def _check_action(action: str) -> None:
    if action not in ACTUATED:
        raise ValueError(
            f"action {action!r} has no actuator; allowed: {sorted(ACTUATED)} "
            f"(catalogue: {list(ACTION_NAMES)})"
        )


# --- selections, shared by plan (counts) and execute (rows) -------------------------------


def _recently_messaged(at: datetime) -> ColumnElement[bool]:
    # an uncorrelated IN: the window's recipients are read once (the outbox has no index on
    # user_id, so a correlated EXISTS scanned it per account)
    return User.id.in_(
        select(Outbox.user_id).where(
            Outbox.topic == "retention_campaign",
            Outbox.user_id.is_not(None),
            Outbox.created_at > at - timedelta(days=RETENTION_COOLDOWN_DAYS),
            Outbox.created_at <= at,
        )
    )


def _retention_targets(at: datetime) -> ColumnElement[bool]:
    """At-risk accounts not messaged within the cooldown whose row passes validation."""
    return and_(at_risk(at), not_(_recently_messaged(at)), validation.valid("users", at))


def _unresolved_charges(at: datetime) -> ColumnElement[bool]:
    return and_(
        BillingEvent.kind == "charge",
        BillingEvent.status == "failed",
        BillingEvent.occurred_at <= at,
        or_(BillingEvent.resolved_at.is_(None), BillingEvent.resolved_at > at),
    )


def retry_jobs() -> Any:
    """Subquery: one row per payment retry job, with its ``billing_event_id``."""
    charge = Outbox.payload["billing_event_id"].as_integer()
    return (
        select(charge.label("billing_event_id"))
        .where(Outbox.topic == "payment_retry")
        .subquery("retry_jobs")
    )


def _retry_attempts() -> Any:
    # grouped through a subquery: PostgreSQL sees two JSON paths with two bind parameters as
    # different expressions
    jobs = retry_jobs()
    return (
        select(jobs.c.billing_event_id, func.count().label("attempts"))
        .group_by(jobs.c.billing_event_id)
        .subquery("attempts")
    )


def _retry_candidates(at: datetime) -> Any:
    attempts = _retry_attempts()
    done = func.coalesce(attempts.c.attempts, 0)
    return (
        select(BillingEvent.id, BillingEvent.user_id, BillingEvent.amount, done.label("done"))
        .outerjoin(attempts, attempts.c.billing_event_id == BillingEvent.id)
        .where(
            _unresolved_charges(at),
            done < MAX_RETRY_ATTEMPTS,
            BillingEvent.amount > 0,
            validation.valid("billing_events", at),
        )
    )


def _orphan_owners(session: Session, table: Table, at: datetime) -> tuple[list[int], bool, int]:
    """(ids of gone owners, whether rows without an owner exist, how many valid rows they
    own in all): the owners of ``table``'s rows whose account is missing or deleted by ``at``.

    The rules of :mod:`agent.validation` run only over the orphans: the gone owners come from
    a scan of the ``user_id`` index grouped (not a probe of ``users`` per row, the pattern of
    :mod:`agent.observe`), and only their rows are validated and counted, through that index.
    Validating every row of the table first made this ten times slower on a twin's events."""
    per_user = select(table.c.user_id.label("user_id")).group_by(table.c.user_id).subquery()
    gone = or_(User.id.is_(None), and_(User.deleted_at.is_not(None), User.deleted_at <= at))
    gone_owners = (
        select(per_user.c.user_id)
        .select_from(per_user)
        .outerjoin(User, User.id == per_user.c.user_id)
        .where(gone)
    )
    owned = or_(table.c.user_id.in_(gone_owners), table.c.user_id.is_(None))
    owners: list[int] = []
    ownerless, rows = False, 0
    for user_id, n in session.execute(
        select(table.c.user_id, func.count())
        .where(owned, validation.valid(table.name, at))
        .group_by(table.c.user_id)
    ).all():
        rows += int(n)
        if user_id is None:
            ownerless = True
        else:
            owners.append(int(user_id))
    return owners, ownerless, rows


def _owned_by(table: Table, owners: list[int], ownerless: bool) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [table.c.user_id.in_(owners)] if owners else []
    if ownerless:
        conditions.append(table.c.user_id.is_(None))
    return or_(*conditions) if conditions else false()


def _email_candidates() -> ColumnElement[bool]:
    """Emails that are malformed, padded or not lower case (a superset of what is fixable)."""
    return and_(
        User.email.is_not(None),
        or_(
            validation.malformed_email(User.email),
            User.email != func.lower(func.trim(User.email)),
        ),
    )


def normalize_email(email: str) -> str | None:
    """``email`` trimmed and in lower case when that is a valid address, else None: the only
    rewrites that are provably safe (anything else, e.g. removing inner spaces or characters,
    could turn garbage into somebody else's address, so it is flagged for a human)."""
    fixed = email.strip().lower()
    return fixed if validation.email_is_valid(fixed) else None


def normalize_event_type(kind: str) -> str | None:
    """``kind`` trimmed and in lower case when that is a known event type
    (:data:`agent.models.EVENT_TYPES`), else None (a type no safe rewrite makes known, such as
    ``wf_run_v0``, is flagged for a human)."""
    fixed = kind.strip().lower()
    return fixed if fixed in EVENT_TYPES else None


@dataclass(frozen=True, slots=True)
class FieldRepair:
    """One field ``data_fix`` repairs: the rows that may need it (``candidates``, a superset)
    and the safe rewrite of a value (``normalize``: the fixed value, or None when only a human
    can fix it)."""

    table: str
    model: Any
    column: str
    candidates: Callable[[], ColumnElement[bool]]
    normalize: Callable[[str], str | None]

    @property
    def field(self) -> Any:
        return getattr(self.model, self.column)

    def rows(self, session: Session, scope: Scope | None = None) -> list[tuple[int, str]]:
        """(id, value) of the candidate rows within ``scope``, by id."""
        statement = (
            select(self.model.id, self.field)
            .where(self.candidates(), *_scoped(self.model.id, scope, self.table))
            .order_by(self.model.id)
        )
        return [(int(i), str(v)) for i, v in session.execute(statement)]

    def write(self, session: Session, values: Mapping[int, str]) -> None:
        """Set the field of each row id in ``values`` to its value (one executemany)."""
        if not values:
            return
        table: Table = self.model.__table__
        session.connection().execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({self.column: bindparam("b_value")}),
            [{"b_id": i, "b_value": v} for i, v in values.items()],
        )

    def split(self, rows: Sequence[tuple[int, str]]) -> tuple[dict[int, str], list[int]]:
        """The fixable rows with their fixed values, and the ids of the unfixable ones."""
        fixes: dict[int, str] = {}
        unfixable: list[int] = []
        for row_id, value in rows:
            fixed = self.normalize(value)
            if fixed is None:
                unfixable.append(row_id)
            elif fixed != value:
                fixes[row_id] = fixed
        return fixes, unfixable


REPAIRS: tuple[FieldRepair, ...] = (
    FieldRepair("users", User, "email", _email_candidates, normalize_email),
    FieldRepair(
        "events",
        Event,
        "type",
        lambda: and_(Event.type.is_not(None), Event.type.not_in(EVENT_TYPES)),
        normalize_event_type,
    ),
)
"""What ``data_fix`` repairs, field by field."""
_REPAIRS_BY_FIELD = {(r.table, r.column): r for r in REPAIRS}


Scope = Mapping[str, Sequence[int]]
"""Per table, the ids an execution may touch (an approved plan's rows); None: any."""


def _scoped(column: Any, scope: Scope | None, table: str) -> list[ColumnElement[bool]]:
    """The condition restricting ``column`` to ``scope``'s ids of ``table`` (none: no limit)."""
    return [] if scope is None else [column.in_(list(scope.get(table, ())))]


def _count(session: Session, statement: Any) -> int:
    return int(session.execute(statement).scalar_one() or 0)


def _setting_value(session: Session, key: str, at: datetime) -> float:
    """The latest value of ``key`` at or before ``at`` that is JSON and a finite number (the
    rule observation applies), else the baseline: a garbage value is never built upon."""
    raws = session.execute(
        select(cast(Setting.value, String))
        .where(Setting.key == key, Setting.effective_at <= at)
        .order_by(Setting.effective_at.desc(), Setting.id.desc())
        .limit(SETTING_SCAN)
    ).scalars()
    for raw in raws:
        number = validation.number_or_none(validation.json_or_none(raw))
        if number is not None:
            return number
    return SETTING_BASELINES.get(key, 0.0)


# --- plan ---------------------------------------------------------------------------------


def plan(session: Session, action: str, at: datetime) -> Plan:
    """Count what executing ``action`` at ``at`` would touch (reads only)."""
    _check_action(action)
    if action == "retention_campaign":
        population = _count(session, select(func.count()).select_from(User).where(alive(at)))
        rows = _count(session, select(func.count()).select_from(User).where(_retention_targets(at)))
        return Plan(action, "users:at_risk", at, rows, population)
    if action == "payment_retry":
        population = _count(
            session,
            select(func.count())
            .select_from(Subscription)
            .where(
                Subscription.started_at <= at,
                or_(Subscription.ended_at.is_(None), Subscription.ended_at > at),
            ),
        )
        candidates = _retry_candidates(at).subquery()
        rows = _count(session, select(func.count()).select_from(candidates))
        unresolved = _count(
            session, select(func.count()).select_from(BillingEvent).where(_unresolved_charges(at))
        )
        return Plan(
            action,
            "billing_events:unresolved",
            at,
            rows,
            population,
            {"unresolved": unresolved, "exhausted": unresolved - rows},
        )
    if action == "orphan_cleanup":
        events = _orphan_owners(session, _ARCHIVABLE["events"], at)[2]
        workflows = _orphan_owners(session, _ARCHIVABLE["workflows"], at)[2]
        population = _count(session, select(func.count()).select_from(Event)) + _count(
            session, select(func.count()).select_from(Workflow)
        )
        return Plan(
            action,
            "events+workflows:orphaned",
            at,
            events + workflows,
            population,
            {"events": events, "workflows": workflows},
        )
    if action == "data_fix":
        population = _count(session, select(func.count()).select_from(User)) + _count(
            session, select(func.count()).select_from(Event)
        )
        split = {r.table: r.split(r.rows(session)) for r in REPAIRS}
        fixable = {table: len(fixes) for table, (fixes, _) in split.items()}
        unfixable = {table: len(ids) for table, (_, ids) in split.items()}
        return Plan(
            action,
            "users.email+events.type",
            at,
            sum(fixable.values()),
            population,
            {
                "fixable": sum(fixable.values()),
                "unfixable": sum(unfixable.values()),
                **{f"fixable_{table}": n for table, n in fixable.items()},
                **{f"unfixable_{table}": n for table, n in unfixable.items()},
            },
        )
    key, change = SETTING_ACTIONS[action]
    old = _setting_value(session, key, at)
    return Plan(action, f"settings:{key}", at, 1, 0, {"key": key, "old": old, "new": change(old)})


def target_ids(session: Session, action: str, at: datetime) -> dict[str, list[int]] | None:
    """Per table, the ids of the rows executing ``action`` at ``at`` would touch: what an
    approval lists when requested and later executes (as ``scope``). None for a setting
    action, or when more than :data:`MAX_SCOPED_ROWS` rows would be touched."""
    _check_action(action)
    ids: dict[str, list[int]]
    if action == "retention_campaign":
        ids = {"users": _id_list(session, select(User.id).where(_retention_targets(at)))}
    elif action == "payment_retry":
        ids = {"billing_events": [int(row[0]) for row in session.execute(_retry_candidates(at))]}
    elif action == "orphan_cleanup":
        ids = {}
        for name, table in _ARCHIVABLE.items():
            owners, ownerless, rows = _orphan_owners(session, table, at)
            if rows > MAX_SCOPED_ROWS:
                return None
            condition = and_(_owned_by(table, owners, ownerless), validation.valid(name, at))
            ids[name] = _id_list(session, select(table.c.id).where(condition))
    elif action == "data_fix":
        ids = {r.table: sorted(r.split(r.rows(session))[0]) for r in REPAIRS}
    else:
        return None
    return ids if sum(map(len, ids.values())) <= MAX_SCOPED_ROWS else None


def _id_list(session: Session, statement: Any) -> list[int]:
    return sorted(int(i) for i in session.execute(statement).scalars())


# --- execute ------------------------------------------------------------------------------


def execute(
    session: Session,
    action: str,
    at: datetime,
    *,
    cycle_id: int | None,
    actor: str = "agent",
    decision_id: int | None = None,
    planned: Plan | None = None,
    scope: Scope | None = None,
) -> ExecutionOutcome:
    """Apply ``action`` at ``at`` in ``session``'s transaction, with its execution row, undo
    record and audit entry, flushed but not committed (see the module docstring).

    Idempotent under ``cycle|action|target``: if that key already has an execution, it is
    returned with ``created=False`` and nothing is done. A concurrent writer of the same key
    makes the flush fail with ``IntegrityError``; the caller rolls back and retries, and then
    finds the winner's execution.

    ``scope`` (from :func:`target_ids`) restricts a row action to the rows of an approved plan
    that still qualify: it never touches a row that was not shown.
    """
    current = planned if planned is not None else plan(session, action, at)
    if current.action != action or current.at != at:
        raise ValueError(
            f"plan for {current.action} at {current.at} does not match {action} at {at}"
        )
    key = idempotency_key(cycle_id, action, current.target, at)
    existing = session.execute(
        select(Execution).where(Execution.idempotency_key == key)
    ).scalar_one_or_none()
    if existing is not None:
        return ExecutionOutcome(existing, created=False)
    execution = Execution(
        action=action,
        mode="live",
        status="running",
        started_at=at,
        effect={},
        cycle_id=cycle_id,
        target=current.target,
        idempotency_key=key,
    )
    session.add(execution)
    session.flush()  # claims the key: a concurrent duplicate fails here, before any effect
    effect, undo_record = _APPLY[_kind(action)](session, action, at, execution.id, scope)
    execution.effect = {**current.to_dict(), **effect}
    execution.undo = undo_record
    execution.status = "executed"
    execution.finished_at = at
    audit.append(
        session,
        actor=actor,
        action="execution",
        target=f"{action}:{current.target}",
        details={"effect": execution.effect, "decision_id": decision_id, "key": key},
        cycle_id=cycle_id,
        execution_id=execution.id,
        now=at,
    )
    session.flush()
    return ExecutionOutcome(execution, created=True)


def _kind(action: str) -> str:
    _check_action(action)
    return action if action in ROW_ACTIONS else "setting"


Applied = tuple[dict[str, Any], dict[str, Any] | None]


def _outbox_rows(
    kind: str,
    topic: str,
    at: datetime,
    execution_id: int,
    rows: Sequence[tuple[int | None, dict[str, Any]]],
) -> list[dict[str, Any]]:
    return [
        {
            "created_at": at,
            "kind": kind,
            "topic": topic,
            "user_id": user_id,
            "payload": payload,
            "status": "pending",
            "execution_id": execution_id,
        }
        for user_id, payload in rows
    ]


def _insert_outbox(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(Outbox), rows)


def _apply_retention(
    session: Session, action: str, at: datetime, execution_id: int, scope: Scope | None
) -> Applied:
    users = session.execute(
        select(User.id)
        .where(_retention_targets(at), *_scoped(User.id, scope, "users"))
        .order_by(User.id)
    ).scalars()
    rows = [(int(user), {"template": "win_back", "silent_days": SILENT_DAYS}) for user in users]
    _insert_outbox(session, _outbox_rows("message", action, at, execution_id, rows))
    return {"messages": len(rows)}, {"kind": "outbox"}


def _apply_payment_retry(
    session: Session, action: str, at: datetime, execution_id: int, scope: Scope | None
) -> Applied:
    charges = session.execute(
        _retry_candidates(at)
        .where(*_scoped(BillingEvent.id, scope, "billing_events"))
        .order_by(BillingEvent.id)
    ).all()
    rows = [
        (
            int(user_id),
            {"billing_event_id": int(charge), "amount": float(amount), "attempt": int(done) + 1},
        )
        for charge, user_id, amount, done in charges
    ]
    _insert_outbox(session, _outbox_rows("job", action, at, execution_id, rows))
    return {"retry_jobs": len(rows)}, {"kind": "outbox"}


def _row_payload(table: Table, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in table.columns:
        value = getattr(row, column.name)
        out[column.name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _restore_payload(table: Table, payload: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in table.columns:
        value = payload.get(column.name)
        is_time = column.type.python_type is datetime
        out[column.name] = datetime.fromisoformat(value) if is_time and value else value
    return out


_USERS: Table = User.__table__  # type: ignore[assignment]
_ARCHIVABLE: dict[str, Table] = {
    "events": Event.__table__,  # type: ignore[dict-item]
    "workflows": Workflow.__table__,  # type: ignore[dict-item]
}


def _apply_orphan_cleanup(
    session: Session, action: str, at: datetime, execution_id: int, scope: Scope | None
) -> Applied:
    moved: dict[str, int] = {}
    unreadable: dict[str, list[int]] = {}
    for name, table in _ARCHIVABLE.items():
        owners, ownerless, _ = _orphan_owners(session, table, at)
        rows: list[Any] = []
        for start in range(0, max(len(owners), 1), 5000):
            chunk = owners[start : start + 5000]
            condition = _owned_by(table, chunk, ownerless and start == 0)
            loaded, bad = load_rows(
                session,
                table,
                and_(condition, validation.valid(name, at), *_scoped(table.c.id, scope, name)),
            )
            rows += loaded
            unreadable[name] = unreadable.get(name, []) + bad
        rows.sort(key=lambda row: row.id)
        if rows:
            session.execute(
                insert(Archive),
                [
                    {
                        "archived_at": at,
                        "source_table": name,
                        "source_id": int(row.id),
                        "payload": _row_payload(table, row),
                        "reason": "orphaned",
                        "execution_id": execution_id,
                    }
                    for row in rows
                ],
            )
            ids = [int(row.id) for row in rows]
            for start in range(0, len(ids), 5000):
                session.execute(delete(table).where(table.c.id.in_(ids[start : start + 5000])))
        moved[name] = len(rows)
    flagged = {name: ids[:MAX_FLAGGED_IDS] for name, ids in unreadable.items() if ids}
    return {"archived": moved, "flagged_unreadable": flagged}, {"kind": "archive"}


def load_rows(session: Session, table: Table, condition: Any) -> tuple[list[Any], list[int]]:
    """(the rows of ``table`` matching ``condition``, whole; the ids of those the driver cannot
    read). A value that passed the SQL checks but not the driver's parsing (a date that sorts
    like one but is none, ``'2025-13-45'``) costs one retry row by row, never the execution."""
    try:
        return list(session.execute(select(table).where(condition)).all()), []
    except ValueError:
        ids = session.execute(select(table.c.id).where(condition)).scalars().all()
    rows: list[Any] = []
    bad: list[int] = []
    for row_id in ids:
        try:
            rows.append(session.execute(select(table).where(table.c.id == row_id)).one())
        except ValueError:
            bad.append(int(row_id))
    return rows, bad


def _apply_data_fix(
    session: Session, action: str, at: datetime, execution_id: int, scope: Scope | None
) -> Applied:
    effect: dict[str, Any] = {"fixed": 0, "flagged_unfixable": 0, "flagged_ids": []}
    fields: list[dict[str, Any]] = []
    for repair in REPAIRS:
        rows = repair.rows(session, scope)
        fixes, unfixable = repair.split(rows)
        old = {str(i): v for i, v in rows if i in fixes}
        repair.write(session, fixes)
        if unfixable:
            flagged = {
                "table": repair.table,
                "column": repair.column,
                "ids": unfixable[:MAX_FLAGGED_IDS],
            }
            _insert_outbox(
                session, _outbox_rows("job", REVIEW_TOPIC, at, execution_id, [(None, flagged)])
            )
        effect["fixed"] += len(fixes)
        effect["flagged_unfixable"] += len(unfixable)
        effect["flagged_ids"] += unfixable[:MAX_FLAGGED_IDS]
        effect[f"fixed_{repair.table}"] = len(fixes)
        new = {str(i): v for i, v in fixes.items()}
        fields.append({"table": repair.table, "column": repair.column, "old": old, "new": new})
    effect["flagged_ids"] = effect["flagged_ids"][:MAX_FLAGGED_IDS]
    return effect, {"kind": "fields", "fields": fields}


def _apply_setting(
    session: Session, action: str, at: datetime, execution_id: int, scope: Scope | None
) -> Applied:
    key, change = SETTING_ACTIONS[action]
    old = _setting_value(session, key, at)
    new = change(old)
    row = Setting(
        key=key,
        value=new,
        effective_at=free_instant(session, key, at),
        set_by=f"agent:{action}",
        execution_id=execution_id,
        note=f"{action}: {old} -> {new}",
    )
    session.add(row)
    session.flush()
    return {"setting": key, "old": old, "new": new}, {"kind": "setting", "setting_id": row.id}


def free_instant(session: Session, key: str, at: datetime) -> datetime:
    """``at``, or the first microsecond after it not taken by another value of ``key``
    (``settings`` is unique on (key, effective_at))."""
    taken = set(
        session.execute(
            select(Setting.effective_at).where(
                Setting.key == key,
                Setting.effective_at >= at,
                Setting.effective_at < at + timedelta(seconds=1),
            )
        ).scalars()
    )
    while at in taken:
        at += timedelta(microseconds=1)
    return at


_APPLY: dict[str, Callable[[Session, str, datetime, int, Scope | None], Applied]] = {
    "retention_campaign": _apply_retention,
    "payment_retry": _apply_payment_retry,
    "orphan_cleanup": _apply_orphan_cleanup,
    "data_fix": _apply_data_fix,
    "setting": _apply_setting,
}


# --- undo ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conflict:
    """Rows an undo left alone: ``rows`` of ``table`` (a sample of their ``ids``) and why."""

    table: str
    rows: int
    ids: tuple[int, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows": self.rows,
            "ids": list(self.ids),
            "reason": self.reason,
        }

    def __str__(self) -> str:
        sample = ", ".join(map(str, self.ids)) + (", ..." if self.rows > len(self.ids) else "")
        return f"{self.rows} {self.table} row(s) not restored ({sample}): {self.reason}"


@dataclass(frozen=True, slots=True)
class UndoReport:
    """What an undo restored (per kind of change, how many rows) and what it could not."""

    execution: Execution
    restored: dict[str, int]
    conflicts: tuple[Conflict, ...]

    @property
    def complete(self) -> bool:
        return not self.conflicts

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution.id,
            "restored": dict(self.restored),
            "conflicts": [c.to_dict() for c in self.conflicts],
        }


MAX_CONFLICT_IDS = 20
"""Ids listed per conflict in an undo report."""
_CHUNK = 5000


def undo(
    session: Session, execution_id: int, *, actor: str = "operator", now: datetime | None = None
) -> UndoReport:
    """Reverse execution ``execution_id`` where that destroys nothing newer, with its audit
    entry (flushed; the caller commits).

    Each row is compared with what the execution wrote: a row changed since (an email the user
    edited, an archived id taken by a new row, a message already sent) is left alone and
    reported in :attr:`UndoReport.conflicts`; everything else is restored exactly. The audit
    entry records both. ``ActuatorError`` when there is no such execution, it was already
    undone, or it left no undo record; ``ValueError`` for an empty actor or a clock earlier
    than the audit trail's last entry.
    """
    moment = as_utc_naive(now)
    execution = session.get(Execution, execution_id)
    if execution is None:
        raise ActuatorError(f"execution {execution_id} does not exist")
    if execution.undone_at is not None or execution.status == "undone":
        raise ActuatorError(f"execution {execution_id} was already undone at {execution.undone_at}")
    if execution.status != "executed" or not execution.undo:
        raise ActuatorError(
            f"execution {execution_id} has status {execution.status!r} and no undo record; "
            "only executed actions can be undone"
        )
    audit.check_human_step(session, actor, moment)
    claimed = session.execute(
        update(Execution)
        .where(Execution.id == execution_id, Execution.status == "executed")
        .values(status="undone", undone_at=moment)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ActuatorError(f"execution {execution_id} was undone concurrently")
    restored, conflicts = _reverse(session, execution_id, execution.undo)
    audit.append(
        session,
        actor=actor,
        action="undo",
        target=f"{execution.action}:{execution.target}",
        details={"restored": restored, "conflicts": [c.to_dict() for c in conflicts]},
        cycle_id=execution.cycle_id,
        execution_id=execution_id,
        now=moment,
    )
    session.flush()
    session.refresh(execution)
    return UndoReport(execution, restored, tuple(conflicts))


Reversed = tuple[dict[str, int], list[Conflict]]


def _conflict(table: str, ids: Sequence[int], reason: str) -> list[Conflict]:
    if not ids:
        return []
    return [Conflict(table, len(ids), tuple(sorted(ids)[:MAX_CONFLICT_IDS]), reason)]


def _reverse_outbox(session: Session, execution_id: int) -> Reversed:
    """Delete the execution's messages and jobs still pending; sent ones cannot be unsent."""
    delivered = session.execute(
        select(Outbox.id).where(
            Outbox.execution_id == execution_id,
            or_(Outbox.status != "pending", Outbox.sent_at.is_not(None)),
        )
    ).scalars()
    delivered_ids = [int(i) for i in delivered]
    result = session.execute(
        delete(Outbox).where(
            Outbox.execution_id == execution_id,
            Outbox.status == "pending",
            Outbox.sent_at.is_(None),
        )
    )
    conflicts = _conflict(
        "outbox", delivered_ids, "already sent or being delivered: it cannot be unsent"
    )
    return {"outbox_deleted": int(result.rowcount)}, conflicts  # type: ignore[attr-defined]


def _reverse_archive(session: Session, execution_id: int) -> Reversed:
    """Move archived rows back under their original ids; an id taken since by a new row is a
    conflict (the archived row stays in ``archive``, nothing collides)."""
    restored: dict[str, int] = {}
    conflicts: list[Conflict] = []
    for name, table in _ARCHIVABLE.items():
        archived = session.execute(
            select(Archive.id, Archive.payload).where(
                Archive.execution_id == execution_id, Archive.source_table == name
            )
        ).all()
        by_source = {
            int(payload["id"]): (int(archive_id), payload) for archive_id, payload in archived
        }
        taken: set[int] = set()
        source_ids = sorted(by_source)
        for start in range(0, len(source_ids), _CHUNK):
            chunk = source_ids[start : start + _CHUNK]
            taken.update(
                int(i)
                for i in session.execute(select(table.c.id).where(table.c.id.in_(chunk))).scalars()
            )
        free = [source for source in source_ids if source not in taken]
        if free:
            session.execute(insert(table), [_restore_payload(table, by_source[i][1]) for i in free])
            archive_ids = [by_source[i][0] for i in free]
            for start in range(0, len(archive_ids), _CHUNK):
                session.execute(
                    delete(Archive).where(Archive.id.in_(archive_ids[start : start + _CHUNK]))
                )
        restored[name] = len(free)
        conflicts += _conflict(
            name, sorted(taken), "the id was reused by a newer row; the original stays archived"
        )
    return {
        "rows_restored": sum(restored.values()),
        **{f"{k}_restored": v for k, v in restored.items()},
    }, conflicts


def _reverse_fields(session: Session, execution_id: int, record: dict[str, Any]) -> Reversed:
    """Write the old values back where the value is still what the execution wrote (a record
    from before event types were repaired holds one field, users.email, at its top level)."""
    fields = record.get("fields", [record])
    restored = 0
    conflicts: list[Conflict] = []
    for entry in fields:
        repair = _REPAIRS_BY_FIELD.get((entry.get("table"), entry.get("column")))
        if repair is None:
            raise ActuatorError(f"unsupported field undo record {entry!r}")
        count, changed = _restore_field(session, repair, entry)
        restored += count
        conflicts += _conflict(
            repair.table,
            changed,
            f"the {repair.column} was changed (or the row removed) after the fix; kept",
        )
    session.execute(
        delete(Outbox).where(Outbox.execution_id == execution_id, Outbox.status == "pending")
    )
    return {"fields_restored": restored}, conflicts


def _restore_field(
    session: Session, repair: FieldRepair, entry: dict[str, Any]
) -> tuple[int, list[int]]:
    """Restore one field's old values; (rows restored, ids changed since the fix)."""
    old: dict[str, str] = entry.get("old") or {}
    written: dict[str, str | None] = entry.get("new") or {
        row_id: repair.normalize(value) for row_id, value in old.items()
    }
    ids = sorted(int(row_id) for row_id in old)
    current: dict[int, str | None] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        current.update(
            (int(i), value)
            for i, value in session.execute(
                select(repair.model.id, repair.field).where(repair.model.id.in_(chunk))
            )
        )
    unchanged = [i for i in ids if i in current and current[i] == written.get(str(i))]
    repair.write(session, {i: old[str(i)] for i in unchanged})
    return len(unchanged), [i for i in ids if i not in unchanged]


def _reverse_setting(session: Session, record: dict[str, Any]) -> Reversed:
    row_id = int(record["setting_id"])
    result = session.execute(delete(Setting).where(Setting.id == row_id))
    if int(result.rowcount) == 0:  # type: ignore[attr-defined]
        return {"setting_deleted": 0}, _conflict("settings", [row_id], "the setting row is gone")
    return {"setting_deleted": 1}, []


def _reverse(session: Session, execution_id: int, record: dict[str, Any]) -> Reversed:
    kind = record.get("kind")
    if kind == "outbox":
        return _reverse_outbox(session, execution_id)
    if kind == "archive":
        return _reverse_archive(session, execution_id)
    if kind == "fields":
        return _reverse_fields(session, execution_id, record)
    if kind == "setting":
        return _reverse_setting(session, record)
    raise ActuatorError(
        f"execution {execution_id} has an unknown undo record kind {kind!r}; "
        "known: outbox, archive, fields, setting"
    )


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` is a unique-key conflict (a concurrent writer won)."""
    return isinstance(error, IntegrityError)


def executions_by_action(
    session: Session, now: datetime, lookback: timedelta
) -> dict[str, list[datetime]]:
    """Start times of live executions (not undone) in the ``lookback`` before ``now``, per
    action. The guardrails need every execution their longest cooldown can see
    (:attr:`agent.guardrails.Governance.lookback`): a shorter window forgets an execution
    while its cooldown still runs (a week's window once let a fortnightly action run weekly)."""
    since = now - lookback
    rows = session.execute(
        select(Execution.action, Execution.started_at).where(
            Execution.started_at > since, Execution.status == "executed"
        )
    ).all()
    out: dict[str, list[datetime]] = {}
    for action, started in rows:
        out.setdefault(action, []).append(started)
    return out
