"""The tick claim: one runner per tick, a lease a crashed runner's successor takes over."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from agent import ticks
from agent.db import make_engine
from agent.lock import ABORTED
from agent.models import AuditLog, Cycle, CycleLock, ScheduledRun

TICK = datetime(2026, 12, 1, 12, 0, 0)
NOW = datetime(2026, 12, 1, 12, 0, 1)
LEASE_S = 10.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The claim on SQLite and on PostgreSQL (the store of several schedulers)."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    engine = make_engine(url)
    request.addfinalizer(engine.dispose)
    return engine


def _crashed_claim(engine: Engine, lease_end: datetime, runner: str = "deadhost:4242") -> None:
    """A claim left ``running`` by a process that died, and the cycle lock it held."""
    with engine.begin() as connection:
        connection.execute(
            insert(ScheduledRun).values(
                job="cycle",
                tick=TICK,
                runner=runner,
                attempts=1,
                started_at=NOW,
                lease_expires_at=lease_end,
                outcome=ticks.RUNNING,
            )
        )
        connection.execute(
            insert(CycleLock).values(
                name="cycle",
                holder=f"{runner}:abcd1234",
                acquired_at=NOW,
                expires_at=NOW + timedelta(minutes=30),
            )
        )


def test_the_first_claim_wins_and_the_second_is_told_who_has_it(engine: Engine) -> None:
    claim = ticks.claim_tick(engine, "cycle", TICK, LEASE_S, now=NOW)
    assert claim.attempt == 1 and claim.runner == ticks.runner_name()
    with pytest.raises(ticks.TickTaken, match=r"is running on .*:\d+ \(lease until 12:00:11\)"):
        ticks.claim_tick(engine, "cycle", TICK, LEASE_S, now=NOW + timedelta(seconds=5))
    other_job = ticks.claim_tick(engine, "monitor", TICK, LEASE_S, now=NOW)
    assert other_job.run_id != claim.run_id


def test_a_finished_tick_is_never_run_again(engine: Engine) -> None:
    claim = ticks.claim_tick(engine, "cycle", TICK, LEASE_S, now=NOW)
    assert ticks.finish_tick(engine, claim, ticks.SUCCEEDED, cycle_id=None)
    with pytest.raises(ticks.TickTaken, match="already ran: succeeded"):
        ticks.claim_tick(engine, "cycle", TICK, LEASE_S, now=NOW + timedelta(hours=1))


@pytest.mark.parametrize(
    ("after_lease_s", "taken_over"),
    [(-0.001, False), (0.0, False), (0.001, True)],
    ids=["just-before-expiry", "at-expiry", "just-after-expiry"],
)
def test_an_expired_lease_is_taken_over_with_the_dead_runners_cycle_lock_and_cycle(
    engine: Engine, after_lease_s: float, taken_over: bool
) -> None:
    lease_end = NOW + timedelta(seconds=LEASE_S)
    _crashed_claim(engine, lease_end)
    moment = lease_end + timedelta(seconds=after_lease_s)
    if not taken_over:
        with pytest.raises(ticks.TickTaken, match="deadhost:4242"):
            ticks.claim_tick(engine, "cycle", TICK, LEASE_S, now=moment)
        return
    claim = ticks.claim_tick(engine, "cycle", TICK, LEASE_S, now=moment)
    assert claim.attempt == 2
    with Session(engine) as session:
        row = session.scalars(select(ScheduledRun)).one()
        assert (row.runner, row.attempts, row.outcome) == (ticks.runner_name(), 2, "running")
        assert session.scalars(select(CycleLock)).all() == []
        # the dead runner's cycle does not stay running forever: it is aborted, and audited
        cycle = session.scalars(select(Cycle)).one()
        assert cycle.status == ABORTED and "deadhost:4242:abcd1234" in (cycle.error or "")
        entry = session.scalars(select(AuditLog).where(AuditLog.action == "cycle_aborted")).one()
        assert entry.cycle_id == cycle.id
        assert entry.details["taken_over_by"] == ticks.runner_name()


def test_a_taken_over_runner_without_a_cycle_lock_aborts_nothing(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(ScheduledRun).values(
                job="monitor", tick=TICK, runner="deadhost:4242", attempts=1, started_at=NOW,
                lease_expires_at=NOW, outcome=ticks.RUNNING,
            )
        )  # fmt: skip
    claim = ticks.claim_tick(engine, "monitor", TICK, LEASE_S, now=NOW + timedelta(seconds=1))
    assert claim.attempt == 2
    with Session(engine) as session:
        assert session.scalars(select(Cycle)).all() == []


def test_a_taken_over_runner_can_neither_renew_nor_finish(engine: Engine) -> None:
    lease_end = NOW + timedelta(seconds=LEASE_S)
    _crashed_claim(engine, lease_end)
    ghost = ticks.Claim(1, "cycle", TICK, "deadhost:4242", 1)
    ticks.claim_tick(engine, "cycle", TICK, LEASE_S, now=lease_end + timedelta(seconds=1))
    assert not ticks.renew_lease(engine, ghost, LEASE_S)
    assert not ticks.finish_tick(engine, ghost, ticks.FAILED)


def test_a_released_claim_can_be_claimed_again(engine: Engine) -> None:
    claim = ticks.claim_tick(engine, "cycle", TICK, LEASE_S, now=NOW)
    ticks.release_tick(engine, claim)
    assert ticks.claim_tick(engine, "cycle", TICK, LEASE_S, now=NOW).attempt == 1


def test_the_lease_keeper_renews_while_the_pass_runs(engine: Engine) -> None:
    import time

    claim = ticks.claim_tick(engine, "cycle", TICK, 0.3)
    with ticks.LeaseKeeper(engine, claim, 0.3) as keeper:
        time.sleep(0.8)  # past the first lease: only renewals keep it
        with pytest.raises(ticks.TickTaken, match="is running on"):
            ticks.claim_tick(engine, "cycle", TICK, 0.3)
    assert not keeper.lost


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e, c: ticks.finish_tick(e, c, "running"), "outcome must be one of"),
        (lambda e, c: ticks.finish_tick(e, c, "done"), r"got 'done'"),
        (lambda e, c: ticks.claim_tick(e, "cycle", TICK, 0), "lease_s must be positive, got 0"),
    ],
)
def test_bad_arguments_are_named(engine: Engine, call: object, message: str) -> None:
    claim = ticks.claim_tick(engine, "monitor", TICK, LEASE_S, now=NOW)
    with pytest.raises(ValueError, match=message):
        call(engine, claim)  # type: ignore[operator]


def test_recent_runs_lists_newest_tick_first(engine: Engine) -> None:
    for minutes in (0, 10, 5):
        ticks.claim_tick(engine, "cycle", TICK + timedelta(minutes=minutes), LEASE_S)
    with Session(engine) as session:
        listed = [r.tick.minute for r in ticks.recent_runs(session, "cycle", limit=2)]
        assert listed == [10, 5]
        with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
            ticks.recent_runs(session, limit=0)
