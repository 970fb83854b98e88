"""The distributed engine: a Celery app with the tasks ``autopilot.cycle`` and
``autopilot.monitor`` on Celery beat, Redis as the broker, the database as the store.

Start it with ``autopilot worker`` (any number, on any machines) and ``autopilot beat`` (one;
a second is harmless), or with Celery's own ``celery -A cli.celery_entry worker|beat``. The
configuration comes from :class:`~agent.settings.Settings` (``AUTOPILOT_BROKER_URL``, the
schedules, the lease, the visibility timeout, the database URL).

Exactly one run per tick, whatever is duplicated:

- beat stamps every message with its tick (:class:`TickStampingScheduler`: the last fire time
  of the schedule at or before sending), so two beats send the same tick twice, and
  :func:`agent.scheduling.run_scheduled` lets one of them run it (the tick claim);
- tasks are acknowledged late (``acks_late``, ``reject_on_worker_lost``), so a worker killed
  mid-cycle does not lose the tick: Redis hands the message to another worker after the
  visibility timeout, which takes the tick over once the dead worker's lease has expired;
- a redelivery of a tick that already ran is skipped (the claim says so);
- transient database errors (:func:`is_transient`) give the claim back and retry the task
  with exponential backoff and jitter (Celery's ``autoretry_for``); the last retry records and
  alerts a failure like any other.

Schedules are :class:`TriggerSchedule`: the same parser and the same ticks as the embedded
scheduler. A tick older than the misfire grace when beat comes back is not sent (never a
burst of catch-up runs).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler, ScheduleEntry
from celery.schedules import BaseSchedule, schedstate
from celery.signals import worker_init
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from agent.db import DatabaseUnreachable, connect
from agent.scheduling import CYCLE, MONITOR, latest_tick, parse_schedule, run_scheduled
from agent.settings import Settings, get_settings

log = logging.getLogger(__name__)

TASK_NAMES = {CYCLE: "autopilot.cycle", MONITOR: "autopilot.monitor"}
DELIVER_TASK = "autopilot.deliver_alerts"
DELIVERY_EVERY = timedelta(minutes=1)
"""How often beat asks a worker to send due alerts (each pass also asks when it ends)."""
TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")
"""PostgreSQL error classes worth retrying: connection exceptions, serialization failures and
deadlocks, insufficient resources, operator intervention (a restarting server)."""
RETRY_BACKOFF_MAX_S = 120
MAX_RETRIES = 6


class TriggerSchedule(BaseSchedule):
    """A Celery schedule over a schedule expression of :func:`parse_schedule`: due once per
    tick, when the tick is newer than the last run and within ``grace_s`` of now."""

    def __init__(self, expression: str, grace_s: float, app: Celery | None = None) -> None:
        self.expression = expression
        self.grace_s = grace_s
        super().__init__(app=app)

    @property
    def trigger(self) -> Any:
        trigger = _trigger(self.expression)
        if trigger is None:
            raise ValueError(f"schedule {self.expression!r} is off; it cannot be scheduled")
        return trigger

    def tick(self, now: datetime | None = None) -> datetime:
        """The tick due at ``now`` (naive UTC)."""
        return latest_tick(self.trigger, now or datetime.now(UTC))

    def _seconds_to_next(self, now: datetime) -> float:
        upcoming = self.trigger.get_next_fire_time(None, now + timedelta(microseconds=1))
        return max(0.05, (upcoming - now).total_seconds())

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        return timedelta(seconds=self._seconds_to_next(datetime.now(UTC)))

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = datetime.now(UTC)
        last = last_run_at if last_run_at.tzinfo else last_run_at.replace(tzinfo=UTC)
        tick = self.tick(now).replace(tzinfo=UTC)
        due = tick > last and (now - tick).total_seconds() <= self.grace_s
        return schedstate(due, self._seconds_to_next(now))

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.expression, self.grace_s))

    def __repr__(self) -> str:
        return f"<TriggerSchedule {self.expression!r} (UTC)>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TriggerSchedule):
            return (other.expression, other.grace_s) == (self.expression, self.grace_s)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.expression, self.grace_s))


@cache
def _trigger(expression: str) -> Any:
    return parse_schedule(expression)


class TickStampingScheduler(PersistentScheduler):
    """Celery beat's persistent scheduler that adds the tick to every scheduled pass's
    message (``tick``, ISO 8601, naive UTC), so duplicates name the same tick."""

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        if isinstance(entry.schedule, TriggerSchedule):
            entry.kwargs = {**(entry.kwargs or {}), "tick": entry.schedule.tick().isoformat()}
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat's entries: each job that is not off, and the alert delivery when webhooks exist."""
    schedules = {CYCLE: settings.cycle_schedule, MONITOR: settings.monitor_schedule}
    entries: dict[str, dict[str, Any]] = {
        f"autopilot-{job}": {
            "task": TASK_NAMES[job],
            "schedule": TriggerSchedule(expression, settings.misfire_grace_s),
        }
        for job, expression in schedules.items()
        if parse_schedule(expression) is not None
    }
    if settings.alert_webhooks:
        entries["autopilot-alerts"] = {"task": DELIVER_TASK, "schedule": DELIVERY_EVERY}
    return entries


def configure(app: Celery, settings: Settings) -> None:
    """Apply ``settings`` to ``app``: broker, late acknowledgement, visibility timeout,
    queues, beat's schedule and scheduler."""
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "global_keyprefix": settings.broker_key_prefix,
            # sweep for messages of dead workers often enough for the visibility timeout
            "unacked_restore_interval": max(1, min(10, int(settings.visibility_timeout_s / 2))),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
        beat_scheduler="agent.celery_app:TickStampingScheduler",
        beat_max_loop_interval=60,
    )


app = Celery("autopilot")
configure(app, get_settings())


@worker_init.connect
def _load_the_cycle(**_: Any) -> None:
    """Import the orchestrator and the rules when a worker starts, not in its first cycle
    (seconds on a busy machine, during which the next tick would find the lock held)."""
    import importlib

    for module in ("agent.orchestrator", "policies.rules"):
        importlib.import_module(module)


class TransientDatabaseError(RuntimeError):
    """A pass failed on a database error that a retry may not meet (see :func:`is_transient`)."""


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a database failure worth retrying: the server unreachable, the
    connection lost, or a PostgreSQL error of :data:`TRANSIENT_SQLSTATE_CLASSES`. A missing
    table or a bad query is not: retrying it would only delay its alert."""
    if isinstance(error, DatabaseUnreachable):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return isinstance(error, OperationalError) and sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES


@cache
def _engine(url: str) -> Engine:
    return connect(url)


def _run_job(task: Any, job: str, tick: str | None) -> str:
    settings = get_settings()
    if tick is not None:
        moment = datetime.fromisoformat(tick)
    else:  # sent by hand, not by beat: the current tick of the job's schedule, or now
        trigger = parse_schedule(
            settings.cycle_schedule if job == CYCLE else settings.monitor_schedule
        )
        now = datetime.now(UTC)
        moment = latest_tick(trigger, now) if trigger else now.replace(tzinfo=None, microsecond=0)
    last_try = task.request.retries >= MAX_RETRIES  # then a failure is recorded and alerted
    try:
        outcome = run_scheduled(
            job,
            moment,
            _engine(settings.db_url),
            settings,
            live=settings.schedule_live,
            transient=None if last_try else is_transient,
        )
    except Exception as error:
        if is_transient(error):
            raise TransientDatabaseError(f"{job} at {moment}: {error}") from error
        raise
    log.info("%s %s: %s", job, moment, outcome.message)
    if settings.alert_webhooks:
        deliver_alerts.delay()
    return outcome.message


_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (TransientDatabaseError,),
    "retry_backoff": True,
    "retry_backoff_max": RETRY_BACKOFF_MAX_S,
    "retry_jitter": True,
    "max_retries": MAX_RETRIES,
}


@app.task(name=TASK_NAMES[CYCLE], **_TASK_OPTIONS)
def cycle_task(self: Any, tick: str | None = None) -> str:
    """The full cycle of ``tick`` (ISO 8601, naive UTC; stamped by beat)."""
    return _run_job(self, CYCLE, tick)


@app.task(name=TASK_NAMES[MONITOR], **_TASK_OPTIONS)
def monitor_task(self: Any, tick: str | None = None) -> str:
    """The monitor pass of ``tick`` (ISO 8601, naive UTC; stamped by beat)."""
    return _run_job(self, MONITOR, tick)


@app.task(name=DELIVER_TASK, acks_late=True)
def deliver_alerts() -> int:
    """Send the alerts that are due, one attempt each (a failure waits for its backoff and a
    later round, :data:`DELIVERY_EVERY`); returns how many were delivered."""
    from agent.alerts import deliver_pending

    settings = get_settings()
    # one attempt each: a worker never sleeps on a backoff; beat's next round retries
    return len(deliver_pending(_engine(settings.db_url), settings, attempts_now=1).delivered)
