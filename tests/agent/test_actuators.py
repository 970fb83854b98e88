"""Actuators on a real seeded SQLite database: effects, idempotency, cooldowns, undo, and a
crash between the effect and the commit."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from agent import actuators
from agent.actuators import ActuatorError, execute, plan, undo
from agent.db import session_factory
from agent.models import Archive, AuditLog, Cycle, Event, Execution, Outbox, Setting, User
from agent.seed import REPAIRABLE_SHARE, SeedResult
from environment.params import BusinessParams
from tests.agent.checksums import WATCHED_TABLES, table_checksums

ROW_ACTIONS = ("retention_campaign", "payment_retry", "orphan_cleanup", "data_fix")


def _cycle(engine: Engine, result: SeedResult) -> int:
    with session_factory(engine)() as session:
        cycle = Cycle(started_at=result.as_of, as_of=result.as_of, mode="live", status="running")
        session.add(cycle)
        session.commit()
        return cycle.id


def _count(engine: Engine, model: type, *where: object) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(model).where(*where)).scalar_one()
        )  # type: ignore[arg-type]


@pytest.mark.parametrize("action", [*ROW_ACTIONS, "price_increase", "onboarding_boost"])
def test_execute_then_undo_restores_every_table_exactly(
    seeded: tuple[Engine, SeedResult], action: str
) -> None:
    engine, result = seeded
    cycle_id = _cycle(engine, result)
    before = table_checksums(engine)
    with session_factory(engine)() as session:
        planned = plan(session, action, result.as_of)
        assert planned.rows > 0, f"the seeded business gives {action} something to do"
        outcome = execute(session, action, result.as_of, cycle_id=cycle_id)
        session.commit()
        assert outcome.created
        execution_id = outcome.execution.id
    changed = table_checksums(engine)
    assert changed != before
    with session_factory(engine)() as session:
        undone = undo(session, execution_id, actor="tester", now=result.as_of)
        session.commit()
        assert undone.execution.status == "undone"
        assert undone.complete, undone.conflicts
    assert table_checksums(engine) == before
    with session_factory(engine)() as session:
        with pytest.raises(ActuatorError, match=f"execution {execution_id} was already undone"):
            undo(session, execution_id)
        with pytest.raises(ActuatorError, match="execution 999999 does not exist"):
            undo(session, 999_999)
        actions = session.scalars(
            select(AuditLog.action).where(AuditLog.execution_id == execution_id)
        ).all()
        assert actions == ["execution", "undo"]


def test_the_same_cycle_action_and_target_executes_once(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    cycle_id = _cycle(engine, result)
    with session_factory(engine)() as session:
        first = execute(session, "retention_campaign", result.as_of, cycle_id=cycle_id)
        session.commit()
        messages = _count(engine, Outbox)
        second = execute(session, "retention_campaign", result.as_of, cycle_id=cycle_id)
        session.commit()
    assert first.created and not second.created
    assert second.execution.id == first.execution.id
    assert _count(engine, Outbox) == messages
    assert _count(engine, Execution) == 1


def test_retention_never_messages_an_account_twice_within_the_cooldown(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    with session_factory(engine)() as session:
        first = execute(
            session, "retention_campaign", result.as_of, cycle_id=_cycle(engine, result)
        )
        session.commit()
        later = result.as_of + timedelta(days=actuators.RETENTION_COOLDOWN_DAYS - 1)
        assert plan(session, "retention_campaign", result.as_of).rows == 0
        execute(session, "retention_campaign", later, cycle_id=None)
        session.commit()
        per_user = session.execute(
            select(Outbox.user_id, func.count())
            .where(Outbox.topic == "retention_campaign", Outbox.execution_id.is_not(None))
            .group_by(Outbox.user_id)
            .having(func.count() > 1)
        ).all()
    assert first.execution.effect["messages"] > 0
    assert per_user == []


def test_payment_retries_are_bounded_per_charge(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    with session_factory(engine)() as session:
        jobs = []
        for hour in range(actuators.MAX_RETRY_ATTEMPTS + 2):
            at = result.as_of + timedelta(minutes=hour)
            outcome = execute(session, "payment_retry", at, cycle_id=None)
            session.commit()
            jobs.append(outcome.execution.effect["retry_jobs"])
        retries = actuators.retry_jobs()
        per_charge = (
            select(func.count().label("n"))
            .select_from(retries)
            .group_by(retries.c.billing_event_id)
            .subquery()
        )
        attempts = session.execute(select(func.max(per_charge.c.n))).scalar_one()
    assert jobs[0] > 0
    assert jobs[actuators.MAX_RETRY_ATTEMPTS] == 0
    assert attempts == actuators.MAX_RETRY_ATTEMPTS


def test_orphan_cleanup_archives_rows_instead_of_deleting_them(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    with session_factory(engine)() as session:
        planned = plan(session, "orphan_cleanup", result.as_of)
        outcome = execute(session, "orphan_cleanup", result.as_of, cycle_id=None)
        session.commit()
        after = plan(session, "orphan_cleanup", result.as_of)
    assert after.rows == 0
    assert _count(engine, Archive, Archive.execution_id == outcome.execution.id) == planned.rows


def test_data_fix_normalizes_fixable_emails_and_flags_the_rest(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    with session_factory(engine)() as session:
        signup = result.as_of - timedelta(days=3)
        unsafe = ("broken@", "ann @example.com", "a@b.c; DROP TABLE users;--")
        session.add(User(email="  Mixed.Case@Example.COM ", signup_at=signup))
        session.add_all(User(email=email, signup_at=signup) for email in unsafe)
        session.commit()
        outcome = execute(session, "data_fix", result.as_of, cycle_id=None)
        session.commit()
        emails = set(session.scalars(select(User.email)).all())
        fields = outcome.execution.undo["fields"]  # type: ignore[index]
        old = next(f["old"] for f in fields if (f["table"], f["column"]) == ("users", "email"))
    assert "mixed.case@example.com" in emails
    assert "  Mixed.Case@Example.COM " in old.values()
    # only trimming and case are provably safe: the rest is flagged, never rewritten
    assert set(unsafe) <= emails and not set(unsafe) & set(old.values())
    assert outcome.execution.effect["flagged_unfixable"] >= len(unsafe)
    # one review job per field with unfixable rows: the seed's garbage event types are the other
    assert _count(engine, Outbox, Outbox.topic == actuators.REVIEW_TOPIC) == 2


def test_data_fix_repairs_event_types_the_seed_wrote_and_undo_restores_them(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    repairable = Event.type.like(" %")  # the seed's repairable defect: padded, upper case
    with session_factory(engine)() as session:
        defects = _count(engine, Event, repairable)
        planned = plan(session, "data_fix", result.as_of)
        assert defects > 0 and planned.details["fixable_events"] == defects
        assert planned.population == _count(engine, User) + _count(engine, Event)
        outcome = execute(session, "data_fix", result.as_of, cycle_id=None)
        session.commit()
        assert outcome.execution.effect["fixed_events"] == defects
        assert _count(engine, Event, repairable) == 0
        assert plan(session, "data_fix", result.as_of).details["fixable_events"] == 0
        undone = undo(session, outcome.execution.id, actor="tester", now=result.as_of)
        session.commit()
    assert undone.complete and undone.restored["fields_restored"] == planned.rows
    assert _count(engine, Event, repairable) == defects


def test_the_seeds_defects_are_repairable_at_the_simulators_share(
    seeded: tuple[Engine, SeedResult],
) -> None:
    # data_fix repairs data_fix_share of the simulator's defects; on the seeded database it
    # must repair the same share, or a policy trained on the simulator misjudges the repair.
    engine, result = seeded
    with session_factory(engine)() as session:
        fixable = plan(session, "data_fix", result.as_of).details["fixable_events"]
    defects = result.state.defects
    spread = 4.0 * math.sqrt(defects * REPAIRABLE_SHARE * (1.0 - REPAIRABLE_SHARE))  # 4 sigma
    assert abs(fixable - REPAIRABLE_SHARE * defects) <= spread
    assert BusinessParams().data_fix_share == REPAIRABLE_SHARE


def test_an_undo_record_from_before_event_types_still_restores_emails(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    with session_factory(engine)() as session:
        user = User(email=" Old.Record@Example.com ", signup_at=result.as_of - timedelta(days=2))
        session.add(user)
        session.flush()
        outcome = execute(session, "data_fix", result.as_of, cycle_id=None)
        legacy = next(f for f in outcome.execution.undo["fields"] if f["table"] == "users")
        outcome.execution.undo = {"kind": "fields", **legacy}  # the single-field shape
        session.commit()
        undo(session, outcome.execution.id, actor="tester", now=result.as_of)
        session.commit()
        assert session.get(User, user.id).email == " Old.Record@Example.com "  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "fixed"),
    [
        ("logged_in", "logged_in"),
        (" LOGGED_IN ", "logged_in"),
        ("Workflow_Run", "workflow_run"),
        ("LOGIN", None),  # not a known type in any case: flagged
        ("wf_run_v0", None),
        ("logged in", None),
        ("", None),
    ],
)
def test_normalize_event_type(kind: str, fixed: str | None) -> None:
    assert actuators.normalize_event_type(kind) == fixed


@pytest.mark.parametrize(
    ("email", "fixed"),
    [
        ("a@b.co", "a@b.co"),
        (" A@B.Co ", "a@b.co"),
        ("ann @example.com", None),  # an inner space is not provably a typo: flagged
        ("a@b.c; DROP TABLE users;--", None),
        ("ann@", None),
        ("@x.com", None),
        ("annexample.com", None),
        ("ann@example", None),
    ],
)
def test_normalize_email(email: str, fixed: str | None) -> None:
    assert actuators.normalize_email(email) == fixed


def test_setting_actions_keep_history(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    with session_factory(engine)() as session:
        for hours in (0, 1):
            execute(session, "price_increase", result.as_of + timedelta(hours=hours), cycle_id=None)
            session.commit()
        values = session.scalars(
            select(Setting.value).where(Setting.key == "price_level").order_by(Setting.effective_at)
        ).all()
    assert [float(v) for v in values][-2:] == pytest.approx([1.1, 1.21])


def test_unknown_action_is_named(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    with (
        session_factory(engine)() as session,
        pytest.raises(ValueError, match="'teleport' has no actuator"),
    ):
        plan(session, "teleport", result.as_of)


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from datetime import datetime
    from sqlalchemy import event
    from agent.actuators import execute
    from agent.db import make_engine, session_factory

    engine = make_engine(sys.argv[1])
    session = session_factory(engine)()

    @event.listens_for(session, "before_commit")
    def crash(_session):
        os._exit(3)  # the process dies after the effect was written, before the commit

    execute(session, sys.argv[2], datetime.fromisoformat(sys.argv[3]), cycle_id=None)
    session.commit()
    """
)


@pytest.mark.parametrize("action", ["orphan_cleanup", "retention_campaign"])
def test_a_crash_between_effect_and_commit_leaves_neither(
    seeded: tuple[Engine, SeedResult], tmp_path: Path, action: str
) -> None:
    engine, result = seeded
    before = table_checksums(engine, (*WATCHED_TABLES, "audit_log", "executions"))
    script = tmp_path / "crash.py"
    script.write_text(CRASH_SCRIPT)
    engine.dispose()
    done = subprocess.run(
        [sys.executable, str(script), str(engine.url), action, result.as_of.isoformat()],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 3, done.stderr
    after = table_checksums(engine, tuple(before))
    assert after == before
    with session_factory(engine)() as session:
        assert plan(session, action, result.as_of).rows > 0
