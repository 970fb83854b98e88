"""Exactly one run per tick: the tick claim, its lease, and the record of each scheduled run.

Whoever fires a scheduled job (an embedded scheduler, a Celery worker, a redelivered task)
first claims the tick: it inserts the ``scheduled_runs`` row for (job, tick), which is unique,
so one inserter wins and the others skip and say so (:class:`TickTaken`). The winner holds a
lease (``lease_expires_at``) that a :class:`LeaseKeeper` renews every third of its length
while the pass runs. A claim still ``running`` past its lease belongs to a runner that
crashed: the next claimant takes it over (``attempts`` + 1) and removes the cycle lock the
dead runner left (the orchestrator names its lock holders ``host:pid:token``), recording the
dead runner's cycle ``aborted`` with a ``cycle_aborted`` audit entry
(:func:`agent.lock.release_dead_runner`), so the tick runs once, by the successor. The cycle
lock stays as the second line.

Clocks: every time is naive UTC from the runner's wall clock; the runners' clocks must agree
to well within a lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent.models import ScheduledRun

log = logging.getLogger(__name__)

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
OUTCOMES = (RUNNING, SUCCEEDED, FAILED, SKIPPED)
"""Every value of ``scheduled_runs.outcome``."""


class TickTaken(RuntimeError):
    """Another runner holds or has finished this tick; the message says who and how."""


def utc_now() -> datetime:
    """The wall clock as naive UTC, the form every stored time has."""
    return datetime.now(UTC).replace(tzinfo=None)


def runner_name() -> str:
    """This process as a runner, ``host:pid``; the orchestrator's lock holders extend it."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Claim:
    """A tick this process holds: the row's id, the job, the tick and the runner."""

    run_id: int
    job: str
    tick: datetime
    runner: str
    attempt: int


def claim_tick(
    engine: Engine, job: str, tick: datetime, lease_s: float, *, now: datetime | None = None
) -> Claim:
    """Claim ``tick`` of ``job`` for ``lease_s`` seconds, or take over a claim whose lease has
    expired; raises :class:`TickTaken` when another runner has the tick (running under a
    live lease, or finished)."""
    if lease_s <= 0:
        raise ValueError(f"lease_s must be positive, got {lease_s}")
    moment = now or utc_now()
    runner = runner_name()
    lease_end = moment + timedelta(seconds=lease_s)
    row = {
        "job": job,
        "tick": tick,
        "runner": runner,
        "attempts": 1,
        "started_at": moment,
        "lease_expires_at": lease_end,
        "outcome": RUNNING,
    }
    try:
        with engine.begin() as connection:
            run_id = connection.execute(
                insert(ScheduledRun).values(**row).returning(ScheduledRun.id)
            ).scalar_one()
        return Claim(run_id, job, tick, runner, 1)
    except IntegrityError:
        return _take_over(engine, job, tick, runner, moment, lease_end)


def _take_over(
    engine: Engine, job: str, tick: datetime, runner: str, moment: datetime, lease_end: datetime
) -> Claim:
    with engine.begin() as connection:
        current = connection.execute(
            select(
                ScheduledRun.id,
                ScheduledRun.runner,
                ScheduledRun.outcome,
                ScheduledRun.lease_expires_at,
                ScheduledRun.attempts,
            ).where(ScheduledRun.job == job, ScheduledRun.tick == tick)
        ).one()
        if current.outcome != RUNNING:
            raise TickTaken(
                f"tick {tick:%Y-%m-%d %H:%M:%S} of {job} already ran: {current.outcome} "
                f"by {current.runner}"
            )
        if current.lease_expires_at >= moment:
            raise TickTaken(
                f"tick {tick:%Y-%m-%d %H:%M:%S} of {job} is running on {current.runner} "
                f"(lease until {current.lease_expires_at:%H:%M:%S})"
            )
        taken = connection.execute(
            update(ScheduledRun)
            .where(
                ScheduledRun.id == current.id,
                ScheduledRun.runner == current.runner,
                ScheduledRun.attempts == current.attempts,
            )
            .values(
                runner=runner,
                attempts=current.attempts + 1,
                started_at=moment,
                lease_expires_at=lease_end,
            )
        ).rowcount
        if taken != 1:
            raise TickTaken(f"tick {tick:%Y-%m-%d %H:%M:%S} of {job} was taken over first")
        # the dead runner's cycle lock is as stale as its lease; its cycle is recorded aborted
        from agent.lock import release_dead_runner  # agent.lock imports this module

        release_dead_runner(connection, current.runner, runner, moment)
    log.warning("took over tick %s of %s from %s (its lease expired)", tick, job, current.runner)
    return Claim(current.id, job, tick, runner, current.attempts + 1)


def renew_lease(engine: Engine, claim: Claim, lease_s: float) -> bool:
    """Extend the claim's lease by ``lease_s`` from now; ``False`` when it is no longer ours."""
    with engine.begin() as connection:
        renewed = connection.execute(
            update(ScheduledRun)
            .where(
                ScheduledRun.id == claim.run_id,
                ScheduledRun.runner == claim.runner,
                ScheduledRun.outcome == RUNNING,
            )
            .values(lease_expires_at=utc_now() + timedelta(seconds=lease_s))
        ).rowcount
    return bool(renewed == 1)


def finish_tick(
    engine: Engine,
    claim: Claim,
    outcome: str,
    *,
    cycle_id: int | None = None,
    detail: str | None = None,
) -> bool:
    """Record how the claimed run ended; ``False`` when the claim was taken over meanwhile."""
    if outcome not in OUTCOMES or outcome == RUNNING:
        raise ValueError(f"outcome must be one of {OUTCOMES[1:]}, got {outcome!r}")
    with engine.begin() as connection:
        done = connection.execute(
            update(ScheduledRun)
            .where(ScheduledRun.id == claim.run_id, ScheduledRun.runner == claim.runner)
            .values(outcome=outcome, finished_at=utc_now(), cycle_id=cycle_id, detail=detail)
        ).rowcount
    return bool(done == 1)


def release_tick(engine: Engine, claim: Claim) -> None:
    """Give an unfinished claim back (a transient failure the caller retries): delete it."""
    with engine.begin() as connection:
        connection.execute(
            delete(ScheduledRun).where(
                ScheduledRun.id == claim.run_id,
                ScheduledRun.runner == claim.runner,
                ScheduledRun.outcome == RUNNING,
            )
        )


class LeaseKeeper:
    """Renew a claim's lease every third of ``lease_s`` in a daemon thread while the ``with``
    block runs. ``lost`` turns true when a renewal finds the claim taken over."""

    def __init__(self, engine: Engine, claim: Claim, lease_s: float) -> None:
        self.engine = engine
        self.claim = claim
        self.lease_s = lease_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{claim.job}", daemon=True)

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                if not renew_lease(self.engine, self.claim, self.lease_s):
                    self.lost = True
                    log.error("lost the claim on tick %s of %s", self.claim.tick, self.claim.job)
                    return
            except Exception as error:  # a database hiccup: the next renewal tries again
                log.warning("renewing the lease of %s failed: %s", self.claim.job, error)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


def recent_runs(session: Session, job: str | None = None, limit: int = 20) -> list[ScheduledRun]:
    """The latest scheduled runs, newest tick first, of one job or all."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    query = select(ScheduledRun).order_by(ScheduledRun.tick.desc(), ScheduledRun.id.desc())
    if job is not None:
        query = query.where(ScheduledRun.job == job)
    return list(session.scalars(query.limit(limit)))
