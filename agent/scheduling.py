"""The engine runs itself: schedules, the scheduled pass, and the embedded scheduler.

Two jobs, :data:`JOBS`: ``cycle`` (the full cycle, default ``0 */4 * * *``) and ``monitor`` (the
monitor pass, default ``30 * * * *``), both in UTC, from the settings. A schedule is a
five-field crontab, ``every N[s|m|h]`` (an interval aligned to the Unix epoch, so that every
scheduler on every machine agrees on the ticks) or ``off`` (:func:`parse_schedule`).

Whoever fires a job (the embedded scheduler here, a Celery worker in :mod:`agent.celery_app`)
calls :func:`run_scheduled`, which claims the tick (:mod:`agent.ticks`: one run per tick; the
losers skip and say so), runs the pass through :func:`run_pass` (the one call into the
orchestrator), records the outcome and cycle id, and raises the alerts the result calls for:
critical issues, decisions held for approval, a failed or a skipped pass (a fallback of the
policy to rules is alerted by the cycle itself). Alerts are delivered afterwards, by a separate
job, so they never hold a cycle.

:class:`EmbeddedScheduler` (``autopilot agent run``) runs both jobs on APScheduler 3's
background scheduler with ``coalesce=True`` (a scheduler that was down runs a missed tick
once, never a burst), ``max_instances=1`` (a pass never overlaps itself: a tick due while the
previous pass still runs is skipped; the cycle and the monitor pass take turns on one thread,
since they share the cycle lock) and ``misfire_grace_time`` from the settings (APScheduler's
own default of one second would silently drop a tick that fires a little late). On start, each
job's latest tick runs at once when it is within the grace (the tick missed while the process
was down; the claim skips it when another runner already ran it). The first
SIGTERM or SIGINT lets the running pass finish (its cycle lock is released as it ends) and
exits with status 0; a second one exits at once with 128 + the signal number, leaving no
half-applied effect since every action commits in one transaction with its audit entry.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agent import ticks
from agent.alerts import deliver_pending, raise_alert
from agent.models import ScheduledRun
from agent.settings import Settings

if TYPE_CHECKING:
    from agent.orchestrator import CycleResult

log = logging.getLogger(__name__)

CYCLE, MONITOR = "cycle", "monitor"
JOBS = (CYCLE, MONITOR)
"""The scheduled jobs, by name (the ``job`` of ``scheduled_runs``)."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DELIVERY_INTERVAL_S = 5.0
"""How often the embedded scheduler sends due alerts."""
_INTERVAL = re.compile(r"^every\s+(\d+)\s*(s|m|h)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SCHEDULE_FORMS = "a five-field crontab such as '0 */4 * * *', 'every N[s|m|h]' or 'off'"


# --- schedules ----------------------------------------------------------------------------


def parse_schedule(expression: str) -> BaseTrigger | None:
    """The APScheduler trigger of a schedule expression (UTC), ``None`` for ``off``; raises
    ``ValueError`` naming the expression and the allowed forms."""
    text = expression.strip().lower()
    if text == "off":
        return None
    interval = _INTERVAL.match(text)
    if interval:
        seconds = int(interval.group(1)) * _UNIT_S[interval.group(2)]
        if seconds < 1:
            raise ValueError(f"schedule {expression!r}: the interval must be at least 1s")
        return IntervalTrigger(seconds=seconds, start_date=EPOCH, timezone=UTC)
    try:
        return CronTrigger.from_crontab(_weekdays_by_name(text), timezone=UTC)
    except ValueError as error:
        raise ValueError(f"schedule {expression!r} is not {SCHEDULE_FORMS} ({error})") from None


def _weekdays_by_name(crontab: str) -> str:
    """``crontab`` with its day-of-week field in names: crontab counts 0 (and 7) as Sunday,
    APScheduler 3 counts 0 as Monday, so ``1`` would otherwise fire on Tuesdays."""
    fields = crontab.split()
    if len(fields) != 5 or fields[4] == "*":
        return crontab  # nothing to translate, or an error from_crontab names
    parts = []
    for part in fields[4].split(","):
        spread = re.fullmatch(r"(\*|\d)(?:-(\d))?(?:/(\d+))?", part)
        if spread is None:
            parts.append(part)  # names, or an error from_crontab reports
            continue
        first, last, step = spread.groups()
        start = 0 if first == "*" else int(first)
        stop = 6 if first == "*" else int(last) if last else start if not step else 6
        days = range(start, stop + 1, int(step) if step else 1)
        parts.extend(_WEEKDAYS[day % 7] for day in days)
    fields[4] = ",".join(dict.fromkeys(parts))
    return " ".join(fields)


def latest_tick(trigger: BaseTrigger, now: datetime) -> datetime:
    """The last fire time of ``trigger`` at or before ``now`` (aware UTC), as naive UTC."""
    moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    if isinstance(trigger, IntervalTrigger):
        step = trigger.interval.total_seconds()
        count = math.floor((moment - EPOCH).total_seconds() / step)
        return (EPOCH + timedelta(seconds=count * step)).replace(tzinfo=None)
    for window in (
        timedelta(minutes=2),
        timedelta(hours=2),
        timedelta(days=2),
        timedelta(days=400),
    ):
        fire = trigger.get_next_fire_time(None, moment - window)
        if fire is not None and fire <= moment:
            while True:
                following = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
                if following is None or following > moment:
                    return fire.astimezone(UTC).replace(tzinfo=None)
                fire = following
    raise ValueError(f"schedule {trigger} has not fired in the last 400 days")


# --- one scheduled pass -------------------------------------------------------------------


def run_pass(job: str, engine: Engine, settings: Settings, *, live: bool) -> CycleResult:
    """The one place the scheduler calls the orchestrator: the full cycle or the monitor pass
    on ``engine`` (its own transaction, committed at its end) under ``settings``, dry run
    unless ``live``. Model URIs load with the loader the entry point installed
    (:func:`agent.cycle_config.use_policy_loader`). Raises what the orchestrator raises."""
    from agent.orchestrator import monitor_and_respond, run_full_cycle

    if job == CYCLE:
        return run_full_cycle(engine, settings=settings, dry_run=not live)
    return monitor_and_respond(engine, settings=settings, dry_run=not live)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What :func:`run_scheduled` did: the outcome (``None`` when another runner had the
    tick), the cycle id, and a sentence."""

    job: str
    tick: datetime
    outcome: str | None
    cycle_id: int | None
    message: str


def alerts_for_result(session: Session, job: str, result: CycleResult, settings: Settings) -> int:
    """Raise the alerts a pass's result calls for: each critical issue and each decision held
    for approval; returns how many were raised (not deduplicated). A policy's fallback to
    rules is alerted by the cycle itself (:mod:`agent.orchestrator`), not here."""
    wanted: list[tuple[str, str, str, str, dict[str, Any]]] = []  # kind, key, summary, ...
    for issue in result.issues_found:
        if issue.get("severity") == "critical":
            key = f"issue:{issue.get('kind')}:{issue.get('detail', '')}"[:200]
            wanted.append(
                ("critical_issue", key, str(issue.get("message") or key), "critical", issue)
            )
    for d in result.decisions:
        if d.approval_id is not None:
            summary = f"{d.action} is held for approval (approval {d.approval_id})"
            wanted.append(
                ("approval_needed", f"approval:{d.approval_id}", summary, "warning", d.to_dict())
            )
    raised = [
        raise_alert(
            session,
            kind,
            key,
            summary,
            severity,
            details=details,
            source=f"autopilot {job}",
            settings=settings,
        )
        for kind, key, summary, severity, details in wanted
    ]
    return sum(alert is not None for alert in raised)


def _alert_on_failure(
    engine: Engine, job: str, kind: str, message: str, settings: Settings
) -> None:
    severity = "error" if kind == "cycle_failed" else "warning"
    try:
        with Session(engine) as session:
            raise_alert(
                session,
                kind,
                f"{kind}:{job}",
                message,
                severity,
                source=f"autopilot {job}",
                settings=settings,
            )
            session.commit()
    except Exception as error:  # an alert must never turn a pass's failure into another
        log.error("could not record the %s alert: %s", kind, error)


def run_scheduled(
    job: str,
    tick: datetime,
    engine: Engine,
    settings: Settings,
    *,
    live: bool,
    transient: Callable[[BaseException], bool] | None = None,
) -> RunOutcome:
    """Claim ``tick`` of ``job``, run the pass, record it and raise its alerts (see the module
    docstring). An exception that ``transient`` accepts gives the claim back and propagates, so
    the caller may retry the tick; any other failure is recorded and alerted, not raised."""
    from agent.orchestrator import CycleRunning

    if job not in JOBS:
        raise ValueError(f"job must be one of {JOBS}, got {job!r}")
    try:
        claim = ticks.claim_tick(engine, job, tick, settings.tick_lease_s)
    except ticks.TickTaken as taken:
        log.info("skipping: %s", taken)
        return RunOutcome(job, tick, None, None, f"skipped: {taken}")
    try:
        with ticks.LeaseKeeper(engine, claim, settings.tick_lease_s):  # stopped before finishing
            result = run_pass(job, engine, settings, live=live)
    except CycleRunning as busy:
        ticks.finish_tick(engine, claim, ticks.SKIPPED, detail=str(busy))
        _alert_on_failure(engine, job, "cycle_skipped", f"{job} at {tick}: {busy}", settings)
        return RunOutcome(job, tick, ticks.SKIPPED, None, str(busy))
    except Exception as error:
        if transient is not None and transient(error):
            ticks.release_tick(engine, claim)
            raise
        detail = f"{type(error).__name__}: {error}"
        log.exception("%s at %s failed", job, tick)
        ticks.finish_tick(engine, claim, ticks.FAILED, detail=detail)
        _alert_on_failure(engine, job, "cycle_failed", f"{job} at {tick}: {detail}", settings)
        return RunOutcome(job, tick, ticks.FAILED, None, detail)
    ticks.finish_tick(engine, claim, ticks.SUCCEEDED, cycle_id=result.cycle_id)
    try:
        with Session(engine) as session:
            alerts_for_result(session, job, result, settings)
            session.commit()
    except Exception as error:  # the pass succeeded; a lost alert is logged, not fatal
        log.error("could not record the alerts of cycle %s: %s", result.cycle_id, error)
    return RunOutcome(job, tick, ticks.SUCCEEDED, result.cycle_id, f"cycle {result.cycle_id}")


# --- the embedded scheduler ---------------------------------------------------------------


class EmbeddedScheduler:
    """Both jobs and the alert delivery on an APScheduler background scheduler, in this
    process, until a signal stops it (see the module docstring).

    ``schedules``: job name to expression (default: the settings'); ``on_run``: called with
    every :class:`RunOutcome` (the command prints them)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        live: bool = False,
        schedules: dict[str, str] | None = None,
        on_run: Callable[[RunOutcome], None] | None = None,
    ) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.util import undefined

        self.engine = engine
        self.settings = settings
        self.live = live
        chosen = {CYCLE: settings.cycle_schedule, MONITOR: settings.monitor_schedule}
        chosen.update(schedules or {})
        unknown = set(chosen) - set(JOBS)
        if unknown:
            raise ValueError(f"unknown jobs {sorted(unknown)}; the jobs are {JOBS}")
        self.triggers = {job: parse_schedule(expr) for job, expr in chosen.items()}
        self.on_run = on_run
        self._stop = threading.Event()
        self._signals = 0
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={
                # one thread: the cycle and the monitor pass share the cycle lock, so one
                # due while the other runs waits for it (within the grace) instead of skipping
                "default": ThreadPoolExecutor(1),
                "alerts": ThreadPoolExecutor(1),
            },
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, int(settings.misfire_grace_s)),
            },
        )
        now = datetime.now(UTC)
        for job, trigger in self.triggers.items():
            if trigger is None:
                continue
            missed = latest_tick(trigger, now)
            catch_up = (
                now.replace(tzinfo=None) - missed
            ).total_seconds() <= settings.misfire_grace_s
            self.scheduler.add_job(
                self._fire,
                trigger,
                args=(job, trigger),
                id=job,
                name=job,
                next_run_time=now if catch_up else undefined,
            )
        self.scheduler.add_job(
            self._deliver,
            IntervalTrigger(seconds=DELIVERY_INTERVAL_S, timezone=UTC),
            id="alerts",
            executor="alerts",
        )

    def _fire(self, job: str, trigger: BaseTrigger) -> None:
        tick = latest_tick(trigger, datetime.now(UTC))
        outcome = run_scheduled(job, tick, self.engine, self.settings, live=self.live)
        if self.on_run is not None:
            self.on_run(outcome)
        if self.settings.alert_webhooks:  # now, on the delivery's own thread: never this one
            self.scheduler.modify_job("alerts", next_run_time=datetime.now(UTC))

    def _deliver(self) -> None:
        if not self.settings.alert_webhooks:
            return
        try:  # one attempt each: a signal never waits on a backoff; the next round retries
            deliver_pending(self.engine, self.settings, attempts_now=1)
        except Exception as error:  # the outbox keeps them; the next round tries again
            log.error("alert delivery failed: %s", error)

    def next_runs(self) -> dict[str, datetime | None]:
        """The next fire time of each job (``None`` when off), aware UTC."""
        now = datetime.now(UTC)
        return {
            job: trigger.get_next_fire_time(None, now) if trigger is not None else None
            for job, trigger in self.triggers.items()
        }

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.error("second signal %s: aborting now", signum)
            os._exit(128 + signum)
        log.warning("signal %s: finishing the running pass, then exiting", signum)
        self._stop.set()

    def serve(self, *, install_signals: bool = True, stop_after_s: float | None = None) -> int:
        """Run until a signal (or ``stop_after_s`` seconds); returns the exit status, 0."""
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.scheduler.start()
        deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
        while not self._stop.wait(0.5):  # short waits: signal handlers run in between
            if deadline is not None and time.monotonic() >= deadline:
                break
        self.stop()
        return 0

    def stop(self) -> None:
        """Stop scheduling and wait for the running passes (signals still abort meanwhile)."""
        self._stop.set()
        closer = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True})
        closer.start()
        while closer.is_alive():
            closer.join(0.2)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job for ``autopilot agent status``, the API and the dashboard: its schedule, its
    next tick (aware UTC; ``None`` when off) and its latest runs, newest first."""

    job: str
    schedule: str
    next_run: datetime | None
    runs: tuple[ScheduledRun, ...]


def job_statuses(
    session: Session, settings: Settings, *, limit: int = 5, now: datetime | None = None
) -> list[JobStatus]:
    """The status of every job in :data:`JOBS` under ``settings``' schedules."""
    moment = now or datetime.now(UTC)
    expressions = {CYCLE: settings.cycle_schedule, MONITOR: settings.monitor_schedule}
    out = []
    for job in JOBS:
        trigger = parse_schedule(expressions[job])
        upcoming = trigger.get_next_fire_time(None, moment) if trigger is not None else None
        runs = tuple(ticks.recent_runs(session, job, limit))
        out.append(JobStatus(job, expressions[job], upcoming, runs))
    return out


def describe_schedule(expression: str) -> str:
    """A schedule as shown to people: the expression and, in words, that it is UTC."""
    return "off" if parse_schedule(expression) is None else f"{expression.strip()} (UTC)"


def schedule_expression(value: Any) -> str:
    """An argparse type: a valid schedule expression, or an error naming the forms."""
    import argparse

    try:
        parse_schedule(str(value))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return str(value).strip()
