"""Alerts: raised into an outbox, delivered to signed webhooks, retried, deduplicated.

:func:`raise_alert` adds an ``alerts`` row and one ``alert_deliveries`` row per configured
webhook to the caller's session (the caller commits, so an alert is part of the change that
caused it, and it survives a restart). An alert whose key was raised within the cooldown is
not sent again: the earlier alert's ``repeats`` counts it.

:func:`deliver_pending` (run beside the cycle, never inside it) sends what is due. Each
request carries the Standard Webhooks headers ``webhook-id`` (the delivery's ``message_id``,
the same on every attempt), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``, see :func:`sign`). A failure (a
transport error, a 408, 429 or 5xx answer) is retried with exponential backoff and jitter
(tenacity), waiting at least what a ``Retry-After`` header asks; every attempt is recorded in
the outbox before the wait, so a deliverer that dies between attempts loses nothing: the next
one resumes where it stopped. Other 4xx answers fail the delivery at once.

Payloads (:func:`payload_for`): ``slack`` is a Slack-compatible message (``text`` and
``blocks``); ``pagerduty`` is a PagerDuty Events API v2 ``trigger`` event whose ``dedup_key``
is the alert key.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from agent.models import Alert, AlertDelivery
from agent.settings import ALERT_BACKOFF_CAP_S, Settings, WebhookConfig, get_settings
from agent.ticks import utc_now

log = logging.getLogger(__name__)

SEVERITIES = ("critical", "error", "warning", "info")
"""PagerDuty Events v2 severities, most severe first; every alert has one."""
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
SEND_CLAIM = timedelta(minutes=2)
"""How long a deliverer owns a delivery for its first attempt (at least the longest webhook
timeout); between attempts it owns it until the next attempt plus the webhook's timeout, so a
deliverer that died is succeeded soon after."""
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
SECRET_PREFIX = "whsec_"


class DeliveryFailed(Exception):
    """One attempt failed; ``retry_after`` is the wait the receiver asked for, if any."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.retryable = retryable
        self.retry_after = retry_after


# --- raising ------------------------------------------------------------------------------


def raise_alert(
    session: Session,
    kind: str,
    key: str,
    summary: str,
    severity: str = "warning",
    *,
    details: dict[str, Any] | None = None,
    source: str = "autopilot",
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Alert | None:
    """Add an alert and its deliveries to ``session`` (the caller commits); ``None`` when
    ``key`` was raised within ``settings.alert_cooldown_s`` (the earlier alert's ``repeats``
    is incremented instead). ``severity``: one of :data:`SEVERITIES`."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    for name, value, limit in (("kind", kind, 40), ("key", key, 200)):
        if not value or len(value) > limit:
            raise ValueError(f"{name} must have 1 to {limit} characters, got {value!r}")
    if not summary.strip():
        raise ValueError("summary must not be empty")
    config = settings or get_settings()
    moment = now or utc_now()
    since = moment - timedelta(seconds=config.alert_cooldown_s)
    earlier = session.scalars(
        select(Alert)
        .where(Alert.key == key, Alert.created_at > since)
        .order_by(Alert.created_at.desc())
        .limit(1)
    ).first()
    if earlier is not None:
        earlier.repeats += 1
        log.info("alert %s deduplicated (raised at %s)", key, earlier.created_at)
        return None
    alert = Alert(
        kind=kind,
        key=key,
        severity=severity,
        summary=summary.strip(),
        source=source,
        details=details or {},
        created_at=moment,
        repeats=0,
    )
    session.add(alert)
    session.flush()
    for hook in config.alert_webhooks:
        session.add(
            AlertDelivery(
                alert_id=alert.id,
                webhook=hook.name,
                message_id=f"msg_{uuid.uuid4().hex}",
                status=PENDING,
                attempts=0,
                next_attempt_at=moment,
            )
        )
    log.warning("alert [%s] %s: %s", severity, kind, summary)
    return alert


def kill_switch_alert(
    session: Session,
    on: bool,
    reason: str,
    by: str,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Alert | None:
    """The alert of a kill switch change, added to the caller's session and transaction (call
    it where the switch is set, before the commit): ``critical`` when it goes on, ``info``
    when it goes off. Each change is its own alert (the key names the state and the time)."""
    moment = now or utc_now()
    state = "on" if on else "off"
    return raise_alert(
        session,
        "kill_switch",
        f"kill_switch:{state}:{moment:%Y%m%dT%H%M%S.%f}",
        f"kill switch {state} by {by}" + (f": {reason}" if reason else ""),
        "critical" if on else "info",
        details={"on": on, "reason": reason, "by": by},
        now=moment,
        settings=settings,
    )


# --- payloads and signatures --------------------------------------------------------------


def payload_for(alert: Alert, hook: WebhookConfig) -> dict[str, Any]:
    """The JSON body ``hook`` receives for ``alert`` (see the module docstring)."""
    stamp = alert.created_at.isoformat() + "Z"
    if hook.format == "pagerduty":
        assert hook.routing_key is not None  # WebhookConfig requires it for pagerduty
        return {
            "routing_key": hook.routing_key.get_secret_value(),
            "event_action": "trigger",
            "dedup_key": alert.key,
            "payload": {
                "summary": alert.summary[:1024],
                "source": alert.source,
                "severity": alert.severity,
                "timestamp": stamp,
                "component": "autopilot",
                "class": alert.kind,
                "custom_details": alert.details,
            },
        }
    headline = f"[{alert.severity.upper()}] {alert.kind}: {alert.summary}"
    return {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*"}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"key `{alert.key}` from {alert.source} at {stamp}"}
                ],
            },
        ],
    }


def signing_key(secret: str) -> bytes:
    """The HMAC key of a webhook secret: base64 after a ``whsec_`` prefix, else its UTF-8."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :])
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256>`` of
    ``message_id.timestamp.body``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# --- delivering ---------------------------------------------------------------------------


@dataclass(slots=True)
class DeliveryReport:
    """What one :func:`deliver_pending` pass did, by delivery id."""

    delivered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    """Failed this time, to be retried by a later call (see ``attempts_now``)."""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _send_once(client: httpx.Client, hook: WebhookConfig, message_id: str, body: bytes) -> None:
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(hook.secret.get_secret_value(), message_id, timestamp, body),
    }
    try:
        response = client.post(str(hook.url), content=body, headers=headers, timeout=hook.timeout_s)
    except httpx.HTTPError as error:
        raise DeliveryFailed(f"{type(error).__name__}: {error}", retryable=True) from error
    if response.is_success:
        return
    raise DeliveryFailed(
        f"HTTP {response.status_code} from {hook.name}",
        retryable=response.status_code in RETRYABLE_STATUS,
        retry_after=_retry_after(response),
    )


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, DeliveryFailed) and error.retryable


class _Backoff:
    """Exponential backoff with jitter that waits at least a ``Retry-After``."""

    def __init__(self, initial_s: float) -> None:
        self._exponential = wait_exponential_jitter(
            multiplier=initial_s, max=ALERT_BACKOFF_CAP_S, jitter=initial_s
        )

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self._exponential(state))
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, DeliveryFailed) and error.retry_after is not None:
            wait = max(wait, min(error.retry_after, ALERT_BACKOFF_CAP_S))
        return wait


def _wait_after(
    backoff: _Backoff, retrying: Retrying, attempt_number: int, error: DeliveryFailed
) -> float:
    """The wait the backoff gives after ``attempt_number`` failed with ``error``."""
    state = RetryCallState(retrying, fn=None, args=(), kwargs={})
    state.attempt_number = attempt_number
    state.set_exception((type(error), error, error.__traceback__))
    return backoff(state)


def _claim_due(engine: Engine, now: datetime) -> list[int]:
    """Ids of due deliveries this deliverer now owns for :data:`SEND_CLAIM`."""
    with engine.begin() as connection:
        due = connection.scalars(
            select(AlertDelivery.id).where(
                AlertDelivery.status == PENDING,
                AlertDelivery.next_attempt_at <= now,
                or_(AlertDelivery.claimed_until.is_(None), AlertDelivery.claimed_until < now),
            )
        ).all()
        owned = []
        for delivery_id in due:
            taken = connection.execute(
                update(AlertDelivery)
                .where(
                    AlertDelivery.id == delivery_id,
                    AlertDelivery.status == PENDING,
                    or_(AlertDelivery.claimed_until.is_(None), AlertDelivery.claimed_until < now),
                )
                .values(claimed_until=now + SEND_CLAIM)
            ).rowcount
            if taken == 1:
                owned.append(delivery_id)
    return owned


def _record(engine: Engine, delivery_id: int, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(**values)
        )


def _deliver_one(
    engine: Engine,
    delivery_id: int,
    hooks: dict[str, WebhookConfig],
    settings: Settings,
    attempts_now: int | None,
) -> str:
    with Session(engine) as session:
        delivery = session.get(AlertDelivery, delivery_id)
        alert = session.get(Alert, delivery.alert_id) if delivery else None
        if delivery is None or alert is None:
            return FAILED
        done_before, message_id = delivery.attempts, delivery.message_id
        hook = hooks.get(delivery.webhook)
        body = json.dumps(payload_for(alert, hook), sort_keys=True).encode() if hook else b""
    if hook is None:
        _record(
            engine,
            delivery_id,
            status=FAILED,
            claimed_until=None,
            last_error=f"webhook {delivery.webhook!r} is no longer configured",
        )
        return FAILED
    left = settings.alert_max_attempts - done_before
    if left < 1:
        _record(engine, delivery_id, status=FAILED, claimed_until=None)
        return FAILED
    attempts = done_before
    backoff = _Backoff(settings.alert_backoff_s)
    budget = left if attempts_now is None else min(left, attempts_now)

    def note_failure(state: RetryCallState) -> None:
        """Persist the failed attempt and when the next is due, before waiting for it."""
        error = state.outcome.exception() if state.outcome else None
        wait = state.upcoming_sleep
        _record(
            engine,
            delivery_id,
            attempts=done_before + state.attempt_number,
            last_error=str(error),
            next_attempt_at=utc_now() + timedelta(seconds=wait),
            claimed_until=utc_now() + timedelta(seconds=wait + hook.timeout_s),
        )

    retrying = Retrying(
        stop=stop_after_attempt(budget),
        wait=backoff,
        retry=retry_if_exception(_is_retryable),
        before_sleep=note_failure,
        reraise=True,
    )
    try:
        with httpx.Client() as client:
            for attempt in retrying:
                with attempt:
                    attempts = done_before + attempt.retry_state.attempt_number
                    _send_once(client, hook, message_id, body)
    except DeliveryFailed as error:
        if error.retryable and attempts < settings.alert_max_attempts:  # this call's budget
            wait = _wait_after(backoff, retrying, attempts - done_before, error)
            _record(
                engine,
                delivery_id,
                status=PENDING,
                attempts=attempts,
                last_error=str(error),
                next_attempt_at=utc_now() + timedelta(seconds=wait),
                claimed_until=None,
            )
            return PENDING
        _record(
            engine,
            delivery_id,
            status=FAILED,
            attempts=attempts,
            last_error=str(error),
            claimed_until=None,
        )
        log.error("alert delivery %s to %s failed for good: %s", delivery_id, hook.name, error)
        return FAILED
    _record(
        engine,
        delivery_id,
        status=DELIVERED,
        attempts=attempts,
        delivered_at=utc_now(),
        claimed_until=None,
    )
    return DELIVERED


def deliver_pending(
    engine: Engine,
    settings: Settings | None = None,
    *,
    now: datetime | None = None,
    attempts_now: int | None = None,
) -> DeliveryReport:
    """Send every due delivery this deliverer can claim, each until it succeeds, fails for
    good, or exhausts ``settings.alert_max_attempts`` (see the module docstring).

    ``attempts_now``: at most this many attempts per delivery in this call (none: no limit);
    a delivery that still fails stays pending, due after its backoff, for a later call. A
    shared worker (Celery) uses 1, so it never sleeps between attempts."""
    if attempts_now is not None and attempts_now < 1:
        raise ValueError(f"attempts_now must be at least 1 or None, got {attempts_now}")
    config = settings or get_settings()
    hooks = {hook.name: hook for hook in config.alert_webhooks}
    report = DeliveryReport()
    for delivery_id in _claim_due(engine, now or utc_now()):
        outcome = _deliver_one(engine, delivery_id, hooks, config, attempts_now)
        {DELIVERED: report.delivered, FAILED: report.failed, PENDING: report.pending}[
            outcome
        ].append(delivery_id)
    return report


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert with the state of each of its deliveries, for listings."""

    id: int
    kind: str
    key: str
    severity: str
    summary: str
    created_at: datetime
    repeats: int
    deliveries: tuple[tuple[str, str, int], ...]
    """(webhook, status, attempts) per delivery."""


def list_alerts(session: Session, limit: int = 50) -> list[AlertView]:
    """The latest alerts, newest first, with their delivery states."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    alerts = list(
        session.scalars(
            select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit)
        )
    )
    states: dict[int, list[tuple[str, str, int]]] = {}
    if alerts:
        rows = session.execute(
            select(
                AlertDelivery.alert_id,
                AlertDelivery.webhook,
                AlertDelivery.status,
                AlertDelivery.attempts,
            ).where(AlertDelivery.alert_id.in_([a.id for a in alerts]))
        ).all()
        for alert_id, webhook, status, attempts in rows:
            states.setdefault(alert_id, []).append((webhook, status, attempts))
    return [
        AlertView(
            a.id,
            a.kind,
            a.key,
            a.severity,
            a.summary,
            a.created_at,
            a.repeats,
            tuple(sorted(states.get(a.id, []))),
        )
        for a in alerts
    ]
