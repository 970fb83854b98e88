"""The database schema: the product's tables and the agent's own, as SQLAlchemy 2.0 typed models.

Product tables (what a SaaS application already has):

- ``users``: one row per account. ``deleted_at`` marks a closed account (soft delete: billing
  history keeps pointing at it); ``activated_at`` is the first successful workflow.
- ``workflows`` and ``events``: what accounts build and do. ``user_id`` deliberately carries no
  foreign key: events are ingested in bulk and account deletion purges them asynchronously, so
  records whose user is gone (orphans) can and do exist, and the agent detects them.
- ``suggestions``: in-product recommendations with the model's confidence and whether the user
  adopted them.
- ``subscriptions``: one row per paid plan period (``plan``, ``list_price`` in USD per month at
  price level 1, ``started_at``/``ended_at``, why it started and ended). The price actually
  charged is ``list_price`` times the ``price_level`` setting in effect.
- ``billing_events``: charges and retries. A failed charge stays unresolved (``resolved_at`` is
  NULL) until it is recovered or expires; while unresolved its subscription is past due.
- ``usage_metrics``: time series from monitoring and finance (error rate, p95 latency, failed
  job rate, marketing spend), one row per metric and period.

Agent tables: ``audit_log`` (append-only, hash-chained record of what was done to the product;
the agent's own, so a dry run appends to it), ``cycles``, ``decisions`` (a decision-service log
line), ``executions`` (with the undo record), ``approvals``, ``outbox`` (messages and jobs the
actuators emit), ``archive`` (rows moved out by cleanups), ``settings`` (product switches with
their full history: a change is a new row with a later ``effective_at``) and ``cycle_locks``
(one row while a cycle runs).

Timestamps are naive UTC everywhere (SQLite has no time zones; PostgreSQL uses ``timestamp
without time zone``). Every query of :mod:`agent.observe` has an index listed below its table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations can alter them on every backend."""

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit ids on PostgreSQL; SQLite only autoincrements ``INTEGER PRIMARY KEY``."""

EVENT_TYPES: tuple[str, ...] = (
    "signed_up",
    "logged_in",
    "workflow_created",
    "workflow_run",
    "workflow_succeeded",
    "workflow_failed",
    "integration_connected",
    "teammate_invited",
    "template_used",
    "suggestion_shown",
    "suggestion_accepted",
    "report_viewed",
    "upgrade_viewed",
    "settings_changed",
)
"""Every event type the product emits; any other type is a data-quality defect."""

WORKFLOW_STATUSES: tuple[str, ...] = ("draft", "active", "paused", "archived")
PLANS: dict[str, float] = {"basic": 49.0, "pro": 149.0}
"""Plan name -> list price (USD per month at price level 1)."""
SUBSCRIPTION_STATUSES: tuple[str, ...] = ("active", "past_due", "canceled")
SUBSCRIPTION_START_REASONS: tuple[str, ...] = ("conversion", "plan_change")
SUBSCRIPTION_END_REASONS: tuple[str, ...] = ("canceled", "payment_failed", "plan_change")
"""``canceled`` (voluntary) and ``payment_failed`` (involuntary) are churn; a plan change is not."""
BILLING_KINDS: tuple[str, ...] = ("charge", "retry", "refund")
BILLING_STATUSES: tuple[str, ...] = ("succeeded", "failed")
BILLING_RESOLUTIONS: tuple[str, ...] = ("recovered", "retried", "expired", "canceled")
VERDICTS: tuple[str, ...] = ("executed", "dry_run", "needs_approval", "blocked")


class Base(DeclarativeBase):
    """Declarative base of every table; ``Base.metadata`` is what the migrations create."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(),
    }


# --- product tables -----------------------------------------------------------------------


class User(Base):
    """An account of the product."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    signup_at: Mapped[datetime] = mapped_column(index=True)
    activated_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    acquisition_channel: Mapped[str] = mapped_column(String(20), default="broad")

    __table_args__ = (Index("ix_users_email_lower", func.lower(email)),)


class Workflow(Base):
    """A workflow an account built; ``name`` is required by the product (NULL is a defect)."""

    __tablename__ = "workflows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(index=True)
    last_run_at: Mapped[datetime | None]


class Event(Base):
    """One product event of one account."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]

    __table_args__ = (
        # last activity per user and the day-7 window: covered by (user_id, occurred_at)
        Index("ix_events_user_id_occurred_at", "user_id", "occurred_at"),
        Index("ix_events_type", "type"),
        Index("ix_events_occurred_at", "occurred_at"),
    )


class Suggestion(Base):
    """An in-product suggestion shown to an account, with the model's confidence and outcome."""

    __tablename__ = "suggestions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    confidence: Mapped[float | None] = mapped_column(Float)
    shown_at: Mapped[datetime] = mapped_column(index=True)
    adopted: Mapped[bool | None] = mapped_column(Boolean)
    """NULL while the user has not responded."""
    responded_at: Mapped[datetime | None]


class Subscription(Base):
    """One paid plan period of an account."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    plan: Mapped[str] = mapped_column(String(20))
    list_price: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(index=True)
    start_reason: Mapped[str] = mapped_column(String(20), default="conversion")
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    end_reason: Mapped[str | None] = mapped_column(String(20))


class BillingEvent(Base):
    """A charge, retry or refund; failed charges carry their resolution once resolved."""

    __tablename__ = "billing_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    amount: Mapped[float] = mapped_column(Numeric(12, 2, asdecimal=False))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    occurred_at: Mapped[datetime]
    failure_code: Mapped[str | None] = mapped_column(String(40))
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(20))

    __table_args__ = (
        Index("ix_billing_events_kind_occurred_at", "kind", "occurred_at"),
        Index("ix_billing_events_subscription_id_status", "subscription_id", "status"),
    )


class UsageMetric(Base):
    """A metric sample for the period ending at ``recorded_at`` (system-wide when ``user_id``
    is NULL)."""

    __tablename__ = "usage_metrics"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    recorded_at: Mapped[datetime]
    value: Mapped[float] = mapped_column(Float)
    user_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_usage_metrics_name_recorded_at", "name", "recorded_at"),)


class AuditLog(Base):
    """Append-only audit trail; ``entry_hash`` chains each entry to the previous one."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("cycles.id"))
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("executions.id"))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


# --- agent tables -------------------------------------------------------------------------


class Cycle(Base):
    """One run of the loop: observe, detect, decide, guard, act."""

    __tablename__ = "cycles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    as_of: Mapped[datetime]
    mode: Mapped[str] = mapped_column(String(20), default="dry_run")
    status: Mapped[str] = mapped_column(String(20), default="running")
    kpis: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    issues: Mapped[list[Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class DecisionRecord(Base):
    """A decision-service log line: the context, what the policy proposed, the guardrail
    verdict, what was executed and the reward joined later."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("cycles.id"), index=True)
    decided_at: Mapped[datetime] = mapped_column(index=True)
    policy_name: Mapped[str] = mapped_column(String(100))
    policy_version: Mapped[str] = mapped_column(String(300))
    context_obs: Mapped[list[Any]] = mapped_column(JSON)
    """The observation vector, float32 shape (N_OBS,), as a list."""
    context_kpis: Mapped[dict[str, Any]] = mapped_column(JSON)
    propensities: Mapped[list[Any]] = mapped_column(JSON)
    """Shape (N_ACTIONS,), sums to 1."""
    action: Mapped[str] = mapped_column(String(40))
    confidence: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(20))
    verdict_reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("executions.id"))
    reward: Mapped[float | None] = mapped_column(Float)
    reward_joined_at: Mapped[datetime | None]
    # added by migration 0003: the decision log (issue 13), shared by cycles and the API
    event_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    """The key a reward is joined by: generated, or the API client's ``event_id``."""
    source: Mapped[str | None] = mapped_column(String(40))
    """Who proposed it: ``policy``, ``self_healing`` or ``api``."""
    executed_action: Mapped[str | None] = mapped_column(String(40))
    """What actually ran after the guardrails (``noop`` when held or blocked)."""
    propensity: Mapped[float | None] = mapped_column(Float)
    """The logged probability of ``executed_action``; NULL when it had none."""
    ope_usable: Mapped[bool] = mapped_column(Boolean, default=True)
    """False when the executed action had no logged probability (an override)."""
    reward_deadline: Mapped[datetime | None]
    """After this the join window is closed and the default reward applies."""
    reward_source: Mapped[str | None] = mapped_column(String(20))
    """How the reward was joined: ``computed``, ``reported`` or ``default``."""
    request_hash: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of an API request body, so a repeated ``event_id`` is answered idempotently."""
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The stored answer returned for that request."""


class Execution(Base):
    """What an actuator did, in one transaction with its undo record and audit entry."""

    __tablename__ = "executions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(40))
    mode: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    effect: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    undo: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """What reverses the effect (rows to restore, settings to reset); NULL if irreversible."""
    undone_at: Mapped[datetime | None]
    # added by migration 0002: what the execution belongs to and its idempotency key
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("cycles.id"), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    """``cycle|action|target``: one execution per key, enforced by the database."""


class Approval(Base):
    """A held decision awaiting (or having had) a human's answer."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    requested_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    """Added by migration 0002: after this an approval can no longer be given."""


class Outbox(Base):
    """A message or job an actuator emitted, delivered by a worker (transactional outbox)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(20))
    """``message`` (to an account) or ``job``."""
    topic: Mapped[str] = mapped_column(String(60))
    """The action that emitted it, e.g. ``retention_campaign``."""
    user_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    sent_at: Mapped[datetime | None]
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("executions.id"))

    __table_args__ = (Index("ix_outbox_kind_created_at", "kind", "created_at"),)


class Archive(Base):
    """A row moved out of a product table by a cleanup, kept whole so it can be restored."""

    __tablename__ = "archive"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    archived_at: Mapped[datetime] = mapped_column(index=True)
    source_table: Mapped[str] = mapped_column(String(60))
    source_id: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(60))
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("executions.id"))


class Setting(Base):
    """One value of a product switch from ``effective_at`` on; the latest row at or before a
    time is the value then, so the table is its own history."""

    __tablename__ = "settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(100))
    value: Mapped[Any] = mapped_column(JSON)
    effective_at: Mapped[datetime]
    set_by: Mapped[str] = mapped_column(String(100))
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("executions.id"))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("key", "effective_at", name="uq_settings_key_effective_at"),)


class CycleLock(Base):
    """Who runs the cycle now: one row per lock name, its primary key makes a second holder
    impossible (migration 0002). A row past ``expires_at`` belongs to a crashed holder."""

    __tablename__ = "cycle_locks"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


PRODUCT_TABLES: tuple[str, ...] = (
    "users",
    "workflows",
    "events",
    "suggestions",
    "subscriptions",
    "billing_events",
    "usage_metrics",
)
"""What the product owns; a dry run leaves every one of them unchanged."""
AGENT_TABLES: tuple[str, ...] = (
    "audit_log",
    "cycles",
    "decisions",
    "executions",
    "approvals",
    "outbox",
    "archive",
    "settings",
    "cycle_locks",
)


# --- API tables (issue 10) -----------------------------------------------------------------


class ApiKey(Base):
    """A key of the HTTP API: only the SHA-256 of the secret is stored (:mod:`agent.api_keys`).

    ``name`` is unique and is what the audit trail records for every mutation made with the
    key; ``prefix`` (the first characters of the secret) lets an operator tell keys apart.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


# (end of API tables)


# --- scheduling and alert tables (issue 12) ------------------------------------------------


class ScheduledRun(Base):
    """One tick of a scheduled job and its run: the claim and the record (migration 0005).

    The unique (``job``, ``tick``) pair makes whoever inserts the row first the only runner of
    that tick; ``runner`` (``host:pid``) holds it until ``lease_expires_at``, renewed while the
    pass runs, after which a successor may take it over (``attempts`` counts the takers).
    ``outcome``: ``running``, ``succeeded``, ``failed`` or ``skipped`` (another cycle held
    the cycle lock); ``cycle_id`` is the cycle the run started."""

    __tablename__ = "scheduled_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(40))
    tick: Mapped[datetime]
    runner: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime]
    lease_expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(20))
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("cycles.id"))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("job", "tick", name="uq_scheduled_runs_job_tick"),
        Index("ix_scheduled_runs_job_started_at", "job", "started_at"),
    )


class Alert(Base):
    """An alert (migration 0005): ``kind`` (what happened), ``key`` (what deduplicates it:
    another alert with the key within the cooldown only increments ``repeats``), a
    PagerDuty severity (``critical``, ``error``, ``warning``, ``info``) and a summary."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200))
    details: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime]
    repeats: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_alerts_key_created_at", "key", "created_at"),)


class AlertDelivery(Base):
    """The outbox: one row per alert and webhook (migration 0005). ``status``: ``pending``
    (due at ``next_attempt_at``), ``delivered`` or ``failed`` (attempts exhausted);
    ``message_id`` is the ``webhook-id`` every attempt carries, so a receiver can drop
    repeats; ``claimed_until``: a deliverer is sending it until then."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    webhook: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("alert_id", "webhook", name="uq_alert_deliveries_alert_id"),
        Index("ix_alert_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )


SCHEDULING_TABLES: tuple[str, ...] = ("scheduled_runs", "alerts", "alert_deliveries")


# (end of scheduling tables)


# --- learning tables (issue 13) ------------------------------------------------------------


class LearnerSnapshot(Base):
    """One version of an online learner's state (migration 0006).

    Each learning step that updates a learner writes its next version: the state after the
    update (the policy's own ``.npz`` file, :meth:`policies.bandits.Bandit.save`), the total
    update count, and the event ids of the decisions this version learned from (in order), so
    every version and the data it saw are recoverable from the decision log.
    """

    __tablename__ = "learner_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner: Mapped[str] = mapped_column(String(100), index=True)
    """The learner's name (one history per name), e.g. ``linucb``."""
    version: Mapped[int] = mapped_column(Integer)
    """1, 2, ... per learner; unique with ``learner``."""
    kind: Mapped[str] = mapped_column(String(40))
    """The policy kind that reads ``state`` (a :data:`policies.bandits.BANDITS` name)."""
    n_updates: Mapped[int] = mapped_column(Integer)
    """Updates in total up to and including this version."""
    state: Mapped[bytes] = mapped_column(LargeBinary)
    state_sha256: Mapped[str] = mapped_column(String(64))
    learned_event_ids: Mapped[list[Any]] = mapped_column(JSON)
    """The ``decisions.event_id`` of each update since the previous version, in order."""
    created_at: Mapped[datetime]
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("cycles.id"))

    __table_args__ = (
        UniqueConstraint("learner", "version", name="uq_learner_snapshots_learner_version"),
    )


# (end of learning tables)


# --- trust tables (issue 17) -----------------------------------------------------------------


class AuditHead(Base):
    """The audit trail's head record (CloudTrail's digest, kept beside the log): how many
    entries the chain has and the last one's id and hash. :func:`agent.audit.append` moves it
    in the same transaction as the entry, so deleting or rewriting entries of ``audit_log``
    alone no longer verifies; ``audit verify`` compares the two. ``mac`` (migration 0008) signs
    the record with a key kept outside the database (``AUTOPILOT_AUDIT_KEY``), so rewriting the
    log *and* its head no longer verifies either."""

    __tablename__ = "audit_head"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    entries: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]
    mac: Mapped[str | None] = mapped_column(String(64))
    """HMAC-SHA256 (hex) of the record under the audit key; NULL while none is configured."""


class ApprovalPlan(Base):
    """The plan an approval request showed: the counts of :func:`agent.actuators.plan` and,
    up to :data:`agent.actuators.MAX_SCOPED_ROWS` rows, the ids it would touch. Approving
    executes exactly these rows (those that still qualify), never a recount."""

    __tablename__ = "approval_plans"

    approval_id: Mapped[int] = mapped_column(ForeignKey("approvals.id"), primary_key=True)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    target_ids: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Per table, the ids shown; NULL when the plan was too large to list."""


# (end of trust tables)
