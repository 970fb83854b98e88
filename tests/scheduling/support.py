"""What the scheduling tests share: waiting, reading the run records, holding a cycle
mid-way, and the one-run-per-tick check."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm import Session

from agent.models import Cycle, ScheduledRun


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def runs(engine: Engine) -> list[ScheduledRun]:
    with Session(engine) as session:
        return list(session.scalars(select(ScheduledRun).order_by(ScheduledRun.tick)))


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def assert_one_run_per_tick(engine: Engine, step_s: float, at_least: int) -> list[ScheduledRun]:
    """Every tick from the first to the last has exactly one record, and every cycle that ran
    belongs to exactly one tick. A tick may be ``skipped`` only because the previous tick's
    cycle still held the cycle lock (a busy machine): the second line, never an overlap."""
    recorded = runs(engine)
    ticks = [run.tick for run in recorded]
    assert len(ticks) >= at_least, f"only {len(ticks)} ticks ran"
    steps = {(b - a).total_seconds() for a, b in itertools.pairwise(ticks)}
    assert steps == {step_s}, f"ticks missed or doubled: {ticks}"
    succeeded = [run for run in recorded if run.outcome == "succeeded"]
    for run in recorded:
        if run.outcome != "succeeded":
            assert run.outcome == "skipped" and "already running" in (run.detail or ""), run.detail
    assert len(succeeded) * 2 >= len(recorded), "most ticks must run their cycle"
    cycle_ids = [run.cycle_id for run in succeeded]
    assert len(set(cycle_ids)) == len(cycle_ids) == count(engine, Cycle)  # none ran twice
    return recorded


@contextmanager
def audit_log_locked(engine: Engine) -> Iterator[Connection]:
    """Hold PostgreSQL's lock on ``audit_log`` so that a cycle blocks at its first audit
    entry, mid-cycle: it holds its tick and the cycle lock, and has written nothing."""
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
        try:
            yield connection
        finally:
            if transaction.is_active:
                transaction.commit()
