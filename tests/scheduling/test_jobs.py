"""A scheduled pass end to end on a real database: its record, and the alerts its result
calls for (held approvals, a policy fallback, a skipped or failed pass), sent to a receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from agent.alerts import deliver_pending
from agent.db import make_engine, upgrade
from agent.models import Alert, Approval, CycleLock, ScheduledRun
from agent.scheduling import run_scheduled
from agent.seed import SeedConfig, seed
from agent.settings import Settings
from agent.ticks import utc_now
from cli.main import main
from tests.scheduling.receiver import serve
from tests.scheduling.support import runs

TICK = datetime(2026, 12, 1, 12, 0)


@pytest.fixture(scope="module")
def business(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small business in a payment outage, seeded up to now (the scheduled clock)."""
    path = tmp_path_factory.mktemp("business") / "business.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    seed(
        engine,
        SeedConfig(
            users=400,
            days=20,
            scenario="payment_outage",
            seed=1,
            end=utc_now().replace(microsecond=0),
        ),
    )
    engine.dispose()
    return path


@pytest.fixture
def engine(business: Path, tmp_path: Path) -> Engine:
    copy = tmp_path / "copy.db"
    copy.write_bytes(business.read_bytes())
    return make_engine(f"sqlite:///{copy}")


def alerts(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(a.kind, a.key) for a in session.scalars(select(Alert).order_by(Alert.id))]


def test_a_live_pass_alerts_each_held_approval_to_the_receiver(engine: Engine) -> None:
    with serve() as receiver:
        settings = Settings(
            policy_uri="rules",
            alert_webhooks=[{"name": "ops", "url": receiver.url, "secret": "plain-secret"}],
        )
        outcome = run_scheduled("cycle", TICK, engine, settings, live=True)
        deliver_pending(engine, settings)
    assert outcome.outcome == "succeeded" and outcome.cycle_id is not None
    with Session(engine) as session:
        held = session.scalars(select(Approval.id).where(Approval.status == "pending")).all()
        run = session.scalars(select(ScheduledRun)).one()
    assert held, "the seeded outage should hold some actions for a human"
    assert (run.cycle_id, run.outcome) == (outcome.cycle_id, "succeeded")
    assert sorted(k for kind, k in alerts(engine) if kind == "approval_needed") == sorted(
        f"approval:{i}" for i in held
    )
    texts = [json.loads(r.body)["text"] for r in receiver.requests]
    assert len(texts) == len(alerts(engine)) and all("approval" in t for t in texts)


def test_a_policy_that_fails_to_load_alerts_the_fallback_once(engine: Engine) -> None:
    settings = Settings(policy_uri="no-such-policy", alert_cooldown_s=3600)
    for minutes in (0, 240):
        run_scheduled("cycle", TICK + timedelta(minutes=minutes), engine, settings, live=False)
    assert [a for a in alerts(engine) if a[0] == "policy_fallback"] == [
        ("policy_fallback", "policy_fallback")
    ]
    with Session(engine) as session:
        assert (
            session.scalars(select(Alert.repeats).where(Alert.kind == "policy_fallback")).one() == 1
        )


def test_a_pass_that_finds_the_lock_held_is_skipped_and_alerted(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(CycleLock).values(
                name="cycle",
                holder="operator:1:abc",
                acquired_at=utc_now(),
                expires_at=utc_now() + timedelta(minutes=5),
            )
        )
    outcome = run_scheduled("monitor", TICK, engine, Settings(policy_uri="rules"), live=False)
    assert outcome.outcome == "skipped" and "already running" in outcome.message
    assert alerts(engine) == [("cycle_skipped", "cycle_skipped:monitor")]


def test_a_failing_pass_is_recorded_and_alerted_not_raised(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE usage_metrics"))
    outcome = run_scheduled("cycle", TICK, engine, Settings(policy_uri="rules"), live=False)
    assert outcome.outcome == "failed" and "usage_metrics" in outcome.message
    with Session(engine) as session:
        run = session.scalars(select(ScheduledRun)).one()
    assert run.outcome == "failed" and "usage_metrics" in (run.detail or "")
    assert alerts(engine) == [("cycle_failed", "cycle_failed:cycle")]


def test_agent_status_shows_the_last_and_next_runs(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    run_scheduled("cycle", TICK, engine, Settings(policy_uri="rules"), live=False)
    assert main(["agent", "status", "--db", str(engine.url)]) == 0
    out = capsys.readouterr().out
    assert "cycle: schedule 0 */4 * * *, next " in out
    assert "2026-12-01 12:00:00 succeeded" in out and "monitor: schedule 30 * * * *" in out
    assert "no runs yet" in out


def test_unknown_jobs_and_schedules_are_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match=r"job must be one of \('cycle', 'monitor'\), got 'x'"):
        run_scheduled("x", TICK, engine, Settings(), live=False)
    with pytest.raises(SystemExit):
        main(["agent", "run", "--db", str(engine.url), "--cycle-schedule", "every 5d"])


def test_job_statuses_give_the_next_tick_and_the_latest_runs(engine: Engine) -> None:
    from agent.scheduling import job_statuses

    for minutes in (0, 240, 480):
        run_scheduled(
            "cycle",
            TICK + timedelta(minutes=minutes),
            engine,
            Settings(policy_uri="rules"),
            live=False,
        )
    settings = Settings(cycle_schedule="0 */4 * * *", monitor_schedule="off")
    with Session(engine) as session:
        cycle, monitor = job_statuses(
            session, settings, limit=2, now=datetime(2026, 12, 1, 20, 0, 1, tzinfo=UTC)
        )
    assert cycle.next_run == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    assert [r.tick.hour for r in cycle.runs] == [20, 16]
    assert (monitor.schedule, monitor.next_run, monitor.runs) == ("off", None, ())


def test_each_critical_issue_of_a_result_is_alerted(engine: Engine) -> None:
    from agent.orchestrator import CycleResult
    from agent.scheduling import alerts_for_result

    critical = {
        "kind": "system_health",
        "detail": "error_rate",
        "severity": "critical",
        "message": "error rate 9% over 5%",
    }
    result = CycleResult(
        cycle_id=1,
        kind="monitor",
        mode="dry_run",
        as_of=TICK,
        duration_s=0.1,
        health_before=20.0,
        alignment_before=50.0,
        policy_name="detector",
        policy_version="1",
        policy_note="",
        issues_found=[critical, {**critical, "severity": "high", "detail": "x"}],
    )
    with Session(engine) as session:
        assert alerts_for_result(session, "monitor", result, Settings()) == 1
        session.commit()
        alert = session.scalars(select(Alert)).one()
    assert (alert.kind, alert.key, alert.severity, alert.summary) == (
        "critical_issue",
        "issue:system_health:error_rate",
        "critical",
        "error rate 9% over 5%",
    )


def test_a_transient_failure_gives_the_tick_back_for_a_retry(engine: Engine) -> None:
    from sqlalchemy.exc import OperationalError

    with engine.begin() as connection:
        connection.execute(text("DROP TABLE usage_metrics"))
    with pytest.raises(OperationalError, match="usage_metrics"):
        run_scheduled(
            "cycle",
            TICK,
            engine,
            Settings(policy_uri="rules"),
            live=False,
            transient=lambda error: isinstance(error, OperationalError),
        )
    assert runs(engine) == []  # the retry may claim it again
    assert alerts(engine) == []


def test_a_missing_table_is_not_transient(engine: Engine) -> None:
    from agent.celery_app import is_transient

    with engine.begin() as connection:
        connection.execute(text("DROP TABLE usage_metrics"))
    with pytest.raises(Exception) as raised, engine.connect() as connection:
        connection.execute(text("SELECT * FROM usage_metrics"))
    assert not is_transient(raised.value)
    assert not is_transient(ValueError("not a database error"))


@pytest.mark.postgres
def test_a_lost_connection_is_transient(pg_url: str) -> None:
    from agent.celery_app import is_transient
    from agent.db import DatabaseUnreachable

    engine = make_engine(pg_url)
    with engine.connect() as victim, engine.connect() as admin:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(Exception) as raised:
            victim.execute(text("SELECT 1"))
    assert is_transient(raised.value)
    assert is_transient(DatabaseUnreachable("cannot reach database"))
