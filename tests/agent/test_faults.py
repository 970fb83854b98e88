"""Fault injection (issue 17): bad data, faults and human steps, on real databases.

Each finding of the issue is reproduced first, then garbage goes into every column of every
product table across many random cycles: no cycle stops, nothing executes on a bad row, a dry
run changes no product table, and no row is lost. Marked ``faults``; the ``postgres`` variants
run the same checks on PostgreSQL. ``FAULT_TALLY`` collects the figures of RELIABILITY.md
(printed at the end of the random run: ``pytest tests/agent/test_faults.py -m faults -s``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from agent import actuators, approvals, audit, validation
from agent.actuators import execute, undo
from agent.db import make_engine, session_factory, upgrade
from agent.guardrails import ActionRule, Governance
from agent.models import (
    PRODUCT_TABLES,
    Approval,
    Archive,
    AuditLog,
    Base,
    BillingEvent,
    Cycle,
    DecisionRecord,
    Event,
    Execution,
    Outbox,
    Subscription,
    UsageMetric,
    User,
)
from agent.observe import (
    MIN_ACCOUNTS,
    MIN_EVENTS_7D,
    MIN_EVENTS_30D,
    KpiSnapshot,
    evidence_shortfalls,
    evidence_weight,
    observe,
)
from agent.orchestrator import run_full_cycle, set_kill_switch
from agent.seed import SeedConfig, seed
from environment.actions import ACTION_NAMES
from tests.agent.conftest import SEED_END, sqlite_url

pytestmark = pytest.mark.faults

FAULT_CONFIG = SeedConfig(users=400, days=35, scenario="steady", seed=11, end=SEED_END)
"""A small business: enough evidence for live mode, seeded in about a second."""
AS_OF = SEED_END
FAULT_TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module")
def fault_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "business.db"
    engine = make_engine(sqlite_url(path))
    upgrade(engine)
    seed(engine, FAULT_CONFIG)
    engine.dispose()
    return path


@pytest.fixture
def business(fault_file: Path, tmp_path: Path) -> Iterator[Engine]:
    """A private SQLite copy of the small seeded business."""
    copy = tmp_path / "business.db"
    copy.write_bytes(fault_file.read_bytes())
    engine = make_engine(sqlite_url(copy))
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_business(request: pytest.FixtureRequest) -> Engine:
    """The small seeded business on SQLite, and on PostgreSQL when available."""
    if request.param == "sqlite":
        return request.getfixturevalue("business")  # type: ignore[no-any-return]
    engine: Engine = request.getfixturevalue("postgres_engine")
    seed(engine, FAULT_CONFIG)
    return engine


def sql(engine: Engine, statement: str, **params: object) -> None:
    """Raw SQL, bypassing the ORM's types: what a buggy writer of the product could do."""
    with engine.begin() as connection:
        connection.execute(text(statement), params)


def snapshot(engine: Engine, at: datetime = AS_OF) -> KpiSnapshot:
    with session_factory(engine)() as session:
        return observe(session, at)


def reported(snap: KpiSnapshot, table: str, column: str, kind: str) -> tuple[int, ...]:
    """Sample ids the observation reported for ``table.column`` with defect ``kind``."""
    for entry in snap.defect_report:
        if (entry.table, entry.column, entry.kind) == (table, column, kind):
            return entry.sample_ids
    return ()


def gone_user_event(engine: Engine, occurred_at: str) -> int:
    """An orphaned event (its user does not exist) with ``occurred_at`` written raw."""
    sql(
        engine,
        "INSERT INTO events (id, user_id, type, occurred_at) "
        "VALUES (900001, 999999, 'logged_in', :at)",
        at=occurred_at,
    )
    return 900001


# --- the engine must not act on data it cannot trust ---------------------------------------


@pytest.mark.parametrize("value", ["not-a-date", "2025-02-30 00:00:00", "12345"])
def test_a_non_timestamp_is_a_defect_and_orphan_cleanup_goes_on(
    business: Engine, value: str
) -> None:
    bad = gone_user_event(business, value)
    snap = snapshot(business)
    if not value.startswith("2025"):  # a digit string that sorts like a date is not counted
        assert bad in reported(snap, "events", "occurred_at", "invalid_timestamp")
    with session_factory(business)() as session:
        outcome = execute(session, "orphan_cleanup", AS_OF, cycle_id=None)
        session.commit()
        archived = session.scalars(
            select(Archive.source_id).where(Archive.execution_id == outcome.execution.id)
        ).all()
        left = session.scalar(select(func.count()).select_from(Event).where(Event.id == bad))
    assert bad not in archived and left == 1  # flagged, not acted on
    if value.startswith("2025"):
        assert outcome.execution.effect["flagged_unreadable"] == {"events": [bad]}
    FAULT_TALLY["findings"] += 1


def test_a_setting_that_is_not_json_is_skipped_and_reported(business: Engine) -> None:
    clean = snapshot(business)
    sql(
        business,
        "INSERT INTO settings (key, value, effective_at, set_by) "
        "VALUES ('price_level', 'not json', :at, 'x')",
        at=str(AS_OF - timedelta(hours=1)),
    )
    snap = snapshot(business)
    assert snap.kpis["mrr"] == pytest.approx(clean.kpis["mrr"], rel=1e-12)
    assert snap.defects["invalid_setting"] == 1
    assert any("price_level" in w and "not json" in w for w in snap.warnings)
    FAULT_TALLY["findings"] += 1


@pytest.mark.parametrize(
    ("metric", "value"),
    [
        ("error_rate", 1e308),
        ("error_rate", -0.5),
        ("p95_latency_ms", -100.0),
        ("failed_job_rate", -1.0),
        ("error_rate", 1.0 + 1e-9),  # just over the range
    ],
)
def test_out_of_range_metrics_are_defects_never_values(
    any_business: Engine, metric: str, value: float
) -> None:
    clean = snapshot(any_business)
    with any_business.begin() as connection:
        connection.execute(
            insert(UsageMetric), [{"name": metric, "recorded_at": AS_OF, "value": value}]
        )
    snap = snapshot(any_business)
    assert snap.kpis["health_score"] == pytest.approx(clean.kpis["health_score"], abs=1e-9)
    assert snap.defects["out_of_range"] == clean.defects["out_of_range"] + 1
    assert reported(snap, "usage_metrics", "value", "out_of_range")
    FAULT_TALLY["findings"] += 1


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_a_metric_at_its_bounds_is_a_value(business: Engine, value: float) -> None:
    with business.begin() as connection:
        connection.execute(
            insert(UsageMetric), [{"name": "error_rate", "recorded_at": AS_OF, "value": value}]
        )
    snap = snapshot(business)
    assert snap.counts["error_rate"] == value
    assert not reported(snap, "usage_metrics", "value", "out_of_range")


@pytest.mark.parametrize("price", ["-49", "'forty-nine'", "0", "100001"])
def test_a_bad_list_price_is_a_defect_and_leaves_mrr_alone(business: Engine, price: str) -> None:
    clean = snapshot(business)
    with business.connect() as connection:
        sub = connection.execute(
            select(Subscription.id).where(Subscription.ended_at.is_(None)).limit(1)
        ).scalar_one()
        old = connection.execute(
            select(Subscription.list_price).where(Subscription.id == sub)
        ).scalar_one()
    sql(business, f"UPDATE subscriptions SET list_price = {price} WHERE id = :id", id=sub)
    snap = snapshot(business)
    assert sub in reported(snap, "subscriptions", "list_price", "invalid_price")
    level = snap.counts["price_level"]
    assert snap.kpis["mrr"] <= clean.kpis["mrr"] - level * float(old) + 1e-6
    FAULT_TALLY["findings"] += 1


def test_a_record_counts_once_so_the_issue_rate_never_exceeds_one(business: Engine) -> None:
    snap = snapshot(business, datetime(1990, 1, 1))
    assert 0.0 <= snap.kpis["data_quality_issue_rate"] <= 1.0
    assert snap.counts["defective_records"] <= snap.counts["records"]
    FAULT_TALLY["findings"] += 1


def test_evidence_for_live_mode(business: Engine, sqlite_engine: Engine) -> None:
    assert evidence_shortfalls(snapshot(business), now=AS_OF) == ()
    assert evidence_weight(snapshot(business)) == 1.0
    empty = evidence_shortfalls(snapshot(sqlite_engine), now=AS_OF)
    assert any("no events" in r for r in empty) and all("insufficient data" in r for r in empty)
    before = evidence_shortfalls(snapshot(business, datetime(1990, 1, 1)), now=AS_OF)
    assert any("before the first event" in r for r in before)
    future = evidence_shortfalls(snapshot(business), now=AS_OF - timedelta(days=1))
    assert any("in the future" in r for r in future)
    FAULT_TALLY["findings"] += 3


@pytest.mark.parametrize(
    ("key", "minimum"),
    [("accounts", MIN_ACCOUNTS), ("events_30d", MIN_EVENTS_30D), ("events_7d", MIN_EVENTS_7D)],
)
def test_evidence_minimums_at_and_around_the_boundary(
    business: Engine, key: str, minimum: int
) -> None:
    snap = snapshot(business)

    def with_count(n: int) -> tuple[str, ...]:
        return evidence_shortfalls(replace(snap, counts={**snap.counts, key: float(n)}), AS_OF)

    assert with_count(minimum) == () and with_count(minimum + 1) == ()
    assert len(with_count(minimum - 1)) == 1 and f"minimum {minimum}" in with_count(minimum - 1)[0]


def test_payment_retry_never_queues_a_charge_of_zero_or_less(any_business: Engine) -> None:
    with session_factory(any_business)() as session:
        added = failed_charges(session, (-5000.0, 0.0, 49.0))
        outcome = execute(session, "payment_retry", AS_OF, cycle_id=None)
        session.commit()
        queued = {
            job["billing_event_id"]
            for job in session.scalars(
                select(Outbox.payload).where(Outbox.execution_id == outcome.execution.id)
            )
        }
    *bad, good = added
    assert good in queued and not queued & set(bad)
    FAULT_TALLY["findings"] += 1


def test_data_fix_flags_an_injection_instead_of_rewriting_it(any_business: Engine) -> None:
    hostile = "a@b.c; DROP TABLE users;--"
    with session_factory(any_business)() as session:
        user = User(email=hostile, signup_at=AS_OF - timedelta(days=3))
        session.add(user)
        session.commit()
        outcome = execute(session, "data_fix", AS_OF, cycle_id=None)
        session.commit()
        session.refresh(user)
    assert user.email == hostile
    assert user.id in outcome.execution.effect["flagged_ids"]
    FAULT_TALLY["findings"] += 1


# --- undo must not destroy newer data ----------------------------------------------------


def test_undo_of_data_fix_keeps_an_email_the_user_changed_since(any_business: Engine) -> None:
    with session_factory(any_business)() as session:
        fixable = User(email=" Ann@X.IO", signup_at=AS_OF)
        untouched = User(email=" B@X.IO", signup_at=AS_OF)  # fixed, then restored by undo
        session.add_all([fixable, untouched])
        session.commit()
        outcome = execute(session, "data_fix", AS_OF, cycle_id=None)
        session.commit()
        fixable.email = "ann.new@x.io"  # the user edits the address afterwards
        session.commit()
        report = undo(session, outcome.execution.id, actor="ops", now=AS_OF)
        session.refresh(fixable)
        session.refresh(untouched)
    assert fixable.email == "ann.new@x.io" and untouched.email == " B@X.IO"
    assert [c.table for c in report.conflicts] == ["users"]
    assert fixable.id in report.conflicts[0].ids
    FAULT_TALLY["findings"] += 1


def failed_charges(session: Session, amounts: tuple[float, ...]) -> list[int]:
    """Unresolved failed charges of one subscription, two hours before ``AS_OF``."""
    user, sub = session.execute(select(Subscription.user_id, Subscription.id).limit(1)).one()
    ids = []
    for amount in amounts:
        charge = BillingEvent(
            subscription_id=sub,
            user_id=user,
            kind="charge",
            status="failed",
            amount=amount,
            occurred_at=AS_OF - timedelta(hours=2),
        )
        session.add(charge)
        session.flush()
        ids.append(charge.id)
    session.commit()
    return ids


def test_undo_of_payment_retry_keeps_sent_jobs_and_reports_them(any_business: Engine) -> None:
    with session_factory(any_business)() as session:
        failed_charges(session, (49.0, 149.0))
        outcome = execute(session, "payment_retry", AS_OF, cycle_id=None)
        session.commit()
        jobs = session.scalars(
            select(Outbox.id).where(Outbox.execution_id == outcome.execution.id).order_by(Outbox.id)
        ).all()
        assert len(jobs) >= 2
        session.execute(
            update(Outbox).where(Outbox.id == jobs[0]).values(status="sent", sent_at=AS_OF)
        )
        session.commit()
        report = undo(session, outcome.execution.id, actor="ops", now=AS_OF)
        left = session.scalars(
            select(Outbox.id).where(Outbox.execution_id == outcome.execution.id)
        ).all()
    assert left == [jobs[0]]
    assert report.restored["outbox_deleted"] == len(jobs) - 1
    assert "cannot be unsent" in str(report.conflicts[0])
    FAULT_TALLY["findings"] += 1


def test_undo_of_orphan_cleanup_with_a_reused_id_reports_instead_of_failing(
    business: Engine,
) -> None:
    with session_factory(business)() as session:
        outcome = execute(session, "orphan_cleanup", AS_OF, cycle_id=None)
        session.commit()
        reused = session.scalars(
            select(Archive.source_id)
            .where(Archive.execution_id == outcome.execution.id, Archive.source_table == "events")
            .order_by(Archive.source_id.desc())
        ).first()
        assert reused is not None
        session.execute(
            insert(Event), [{"id": reused, "user_id": 1, "type": "logged_in", "occurred_at": AS_OF}]
        )
        session.commit()
        report = undo(session, outcome.execution.id, actor="ops", now=AS_OF)
        kept = session.scalars(
            select(Archive.source_id).where(Archive.execution_id == outcome.execution.id)
        ).all()
        owner = session.scalar(select(Event.user_id).where(Event.id == reused))
    assert kept == [reused] and owner == 1  # the newer row stays, the original stays archived
    assert report.conflicts[0].table == "events" and reused in report.conflicts[0].ids
    FAULT_TALLY["findings"] += 1


# --- a human step must not bypass the rules -----------------------------------------------


def held(session: Session, action: str, at: datetime = AS_OF) -> Approval:
    """A decision for ``action`` held for approval, with the plan it shows."""
    cycle = Cycle(started_at=at, as_of=at, mode="live", status="finished")
    session.add(cycle)
    session.flush()
    decision = DecisionRecord(
        cycle_id=cycle.id,
        decided_at=at,
        policy_name="rules",
        policy_version="test",
        context_obs=[],
        context_kpis={},
        propensities=[],
        action=action,
        confidence=0.5,
        verdict="needs_approval",
        verdict_reasons=["confidence"],
    )
    session.add(decision)
    session.flush()
    planned = actuators.plan(session, action, at)
    approval = approvals.request_approval(
        session, decision, planned, at=at, expires_at=at + timedelta(days=2)
    )
    session.commit()
    return approval


def test_an_approval_executes_exactly_the_rows_that_were_shown(any_business: Engine) -> None:
    with session_factory(any_business)() as session:
        approval = held(session, "retention_campaign")
        shown = approvals.list_approvals(session, now=AS_OF)[0].plan
        assert shown is not None and shown["rows"] > 0
        # a thousand more accounts go silent before the human looks
        signup = AS_OF - timedelta(days=40)
        session.add_all(
            User(email=f"late{i}@x.io", signup_at=signup, activated_at=signup) for i in range(1000)
        )
        session.commit()
        assert actuators.plan(session, "retention_campaign", AS_OF).rows >= shown["rows"] + 1000
        view = approvals.approve(
            session, approval.id, by="alice", now=AS_OF, governance=Governance()
        )
        messages = session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.execution_id == view.execution_id)
        )
    assert messages == shown["rows"]
    FAULT_TALLY["findings"] += 1


def test_an_approval_re_checks_governance_and_can_be_re_requested(business: Engine) -> None:
    forbidden = Governance(
        rules={**Governance().rules, "retention_campaign": ActionRule(allowed=False)}
    )
    with session_factory(business)() as session:
        approval = held(session, "retention_campaign")
        refused = approvals.approve(
            session, approval.id, by="alice", now=AS_OF, governance=forbidden
        )
        session.commit()
        assert refused.status == "refused" and refused.execution_id is None
        assert "governance now forbids it" in (refused.note or "")
        again = held(session, "retention_campaign", AS_OF + timedelta(minutes=1))
        view = approvals.approve(
            session, again.id, by="alice", now=AS_OF + timedelta(minutes=1), governance=Governance()
        )
        session.commit()
    assert view.status == "approved" and view.execution_id is not None
    FAULT_TALLY["findings"] += 1


def test_a_blast_radius_past_its_limit_refuses_the_approval(business: Engine) -> None:
    with session_factory(business)() as session:
        approval = held(session, "retention_campaign")
        rows = approvals.list_approvals(session, now=AS_OF)[0].plan["rows"]  # type: ignore[index]
        tight = Governance(
            rules={**Governance().rules, "retention_campaign": ActionRule(max_rows=rows - 1)}
        )
        refused = approvals.approve(session, approval.id, by="alice", now=AS_OF, governance=tight)
        session.commit()
        assert refused.status == "refused" and "blast_radius" in (refused.note or "")
        at_limit = Governance(
            rules={**Governance().rules, "retention_campaign": ActionRule(max_rows=rows)}
        )
        again = held(session, "retention_campaign", AS_OF + timedelta(minutes=1))
        view = approvals.approve(
            session, again.id, by="alice", now=AS_OF + timedelta(minutes=1), governance=at_limit
        )
    assert view.status == "approved"


def test_a_clock_that_runs_backwards_is_refused(business: Engine) -> None:
    with session_factory(business)() as session:
        approval = held(session, "retention_campaign")
        with pytest.raises(approvals.ApprovalError, match=r"before approval \d+ was requested"):
            approvals.approve(session, approval.id, by="alice", now=datetime(2020, 1, 1))
        audit.append(session, actor="agent", action="note", now=AS_OF + timedelta(hours=1))
        session.commit()
        with pytest.raises(approvals.ApprovalError, match="before the audit trail's last entry"):
            approvals.reject(session, approval.id, by="alice", now=AS_OF + timedelta(minutes=30))
        # a late writer never dates an entry before the last one
        entry = audit.append(session, actor="agent", action="note", now=datetime(2020, 1, 1))
        session.commit()
        assert entry.occurred_at == AS_OF + timedelta(hours=1)
        assert entry.details["clock"].startswith("2020-01-01")
    FAULT_TALLY["findings"] += 2


@pytest.mark.parametrize("actor", ["", "   "])
def test_every_human_step_names_an_actor(business: Engine, actor: str) -> None:
    with session_factory(business)() as session:
        approval = held(session, "retention_campaign")
        with pytest.raises(approvals.ApprovalError, match="must not be empty"):
            approvals.approve(session, approval.id, by=actor, now=AS_OF)
        with pytest.raises(approvals.ApprovalError, match="must not be empty"):
            approvals.reject(session, approval.id, by=actor, now=AS_OF)
        outcome = execute(session, "retention_campaign", AS_OF, cycle_id=None)
        session.commit()
        with pytest.raises(audit.AuditError, match="must name who"):
            undo(session, outcome.execution.id, actor=actor, now=AS_OF)
        with pytest.raises(audit.AuditError, match="must name who"):
            set_kill_switch(session, True, reason="incident", by=actor, now=AS_OF)
    FAULT_TALLY["findings"] += 1


# --- the audit trail must prove completeness ----------------------------------------------


def test_a_deleted_tail_fails_verification(any_business: Engine) -> None:
    with session_factory(any_business)() as session:
        outcome = execute(session, "retention_campaign", AS_OF, cycle_id=None)
        session.commit()
        assert audit.verify_chain(session).ok
        session.execute(delete(AuditLog).where(AuditLog.execution_id == outcome.execution.id))
        session.commit()
        report = audit.verify_chain(session)
    assert not report.ok and "missing" in report.reason
    FAULT_TALLY["findings"] += 1


def test_an_execution_without_its_entry_fails_verification(business: Engine) -> None:
    with session_factory(business)() as session:
        outcome = execute(session, "retention_campaign", AS_OF, cycle_id=None)
        audit.append(session, actor="agent", action="note", now=AS_OF)
        session.commit()
        # rewrite the entry to hide the execution, and the head to match (a thorough forger)
        session.execute(
            update(AuditLog)
            .where(AuditLog.execution_id == outcome.execution.id)
            .values(action="note", execution_id=None)
        )
        session.commit()
        report = audit.verify_chain(session)
    assert not report.ok  # the edited entry fails its hash first
    assert report.first_bad_id is not None


def test_swapped_entries_blame_the_first_swapped_one(business: Engine) -> None:
    with session_factory(business)() as session:
        for i in range(4):
            audit.append(session, actor="agent", action="note", target=str(i), now=AS_OF)
        session.commit()
        last = audit.chain_head(session)[0]
        a, b = last - 2, last - 1
        rows = {e.id: e for e in session.scalars(select(AuditLog).where(AuditLog.id.in_((a, b))))}
        contents = {
            i: {c: getattr(rows[i], c) for c in ("target", "details", "prev_hash", "entry_hash")}
            for i in (a, b)
        }
        session.execute(delete(AuditLog).where(AuditLog.id.in_((a, b))))
        session.flush()
        for i, j in ((a, b), (b, a)):
            session.add(
                AuditLog(
                    id=i,
                    occurred_at=rows[j].occurred_at,
                    actor="agent",
                    action="note",
                    cycle_id=None,
                    execution_id=None,
                    **contents[j],
                )
            )
        session.commit()
        report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_id == a
    FAULT_TALLY["findings"] += 1


def test_seed_replace_refuses_to_erase_agent_history(business: Engine, tmp_path: Path) -> None:
    with session_factory(business)() as session:
        execute(session, "retention_campaign", AS_OF, cycle_id=None)
        session.commit()
    with pytest.raises(ValueError, match=r"agent history .*--archive-history"):
        seed(business, FAULT_CONFIG, replace=True)
    with session_factory(business)() as session:
        assert session.scalar(select(func.count()).select_from(Execution)) == 1
    archive = tmp_path / "history.jsonl"
    seed(business, FAULT_CONFIG, replace=True, archive_history=archive)
    lines = archive.read_text().splitlines()
    assert any('"table": "executions"' in line for line in lines)
    with session_factory(business)() as session:
        assert audit.verify_chain(session).ok
    FAULT_TALLY["findings"] += 1


# --- garbage in every column of every product table, across random cycles -------------------

GARBAGE: tuple[object, ...] = (
    None,
    "garbage",
    "not-a-date",
    -5,
    -1e308,
    1e308,
    "2999-01-01 00:00:00.000000",
)
"""NULLs, wrong types, out of range, future dates."""
ROUNDS = 12
EAGER = dict.fromkeys(ACTION_NAMES, 0.0)
"""Thresholds that let every confident-enough decision execute, so actuators meet the garbage."""


def _columns() -> list[tuple[str, str]]:
    return [
        (name, column.name)
        for name in PRODUCT_TABLES
        for column in Base.metadata.tables[name].columns
        if not column.primary_key
    ]


def _ids(engine: Engine) -> dict[str, set[int]]:
    with engine.connect() as connection:
        return {
            name: set(connection.execute(select(Base.metadata.tables[name].c.id)).scalars())
            for name in PRODUCT_TABLES
        }


def _bad_rows(engine: Engine, at: datetime) -> dict[str, set[int]]:
    """Ids of the rows of every product table that fail validation at ``at``."""
    with engine.connect() as connection:
        return {
            name: set(
                connection.execute(
                    select(validation.MODELS[name].id).where(validation.defect(name, at))
                ).scalars()
            )
            for name in validation.RULES
        }


def _raw_rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every product row as the database returns it (no type conversion: garbage included)."""
    with engine.connect() as connection:
        return {
            name: [tuple(r) for r in connection.execute(text(f"SELECT * FROM {name} ORDER BY id"))]
            for name in PRODUCT_TABLES
        }


def _touched(engine: Engine, execution_id: int) -> dict[str, set[int]]:
    """Rows an execution acted on, by table (messages and jobs name them, archive holds them)."""
    touched: dict[str, set[int]] = {"users": set(), "billing_events": set()}
    with engine.connect() as connection:
        for topic, user_id, payload in connection.execute(
            select(Outbox.topic, Outbox.user_id, Outbox.payload).where(
                Outbox.execution_id == execution_id
            )
        ):
            if topic == "retention_campaign" and user_id is not None:
                touched["users"].add(int(user_id))
            if topic == "payment_retry":
                touched["billing_events"].add(int(payload["billing_event_id"]))
        for table, source_id in connection.execute(
            select(Archive.source_table, Archive.source_id).where(
                Archive.execution_id == execution_id
            )
        ):
            touched.setdefault(table, set()).add(int(source_id))
    return touched


def _inject(engine: Engine, rng: random.Random, ids: dict[str, set[int]]) -> str:
    """Write one garbage value into a random column of a random row; the outcome."""
    table, column = rng.choice(_columns())
    if not ids[table]:
        return "skipped"
    row = rng.choice(sorted(ids[table]))
    value = rng.choice(GARBAGE)
    try:
        sql(engine, f"UPDATE {table} SET {column} = :value WHERE id = :id", value=value, id=row)
    except (DBAPIError, StatementError):
        return "refused_by_database"  # a typed column or a constraint kept the value out
    return "written"


def test_garbage_everywhere_never_stops_a_cycle_nor_reaches_an_actuator(
    any_business: Engine,
) -> None:
    rng = random.Random(17)
    before = _ids(any_business)
    for round_ in range(ROUNDS):
        ids = _ids(any_business)
        for _ in range(4):
            FAULT_TALLY[f"garbage_{_inject(any_business, rng, ids)}"] += 1
        at = AS_OF + timedelta(hours=round_)
        dry_run = round_ % 3 == 0
        bad = _bad_rows(any_business, at)
        product_before = _raw_rows(any_business)
        result = run_full_cycle(
            any_business, dry_run=dry_run, policy="rules", as_of=at, thresholds=EAGER
        )
        FAULT_TALLY["cycles_survived"] += 1
        if dry_run:
            assert _raw_rows(any_business) == product_before
            assert not result.executions
        for execution_id in result.executions:
            FAULT_TALLY["executions"] += 1
            for table, touched in _touched(any_business, execution_id).items():
                assert not touched & bad.get(table, set()), (table, touched & bad[table])
    after = _ids(any_business)
    with any_business.connect() as connection:
        archived = Counter(
            (table, int(source))
            for table, source in connection.execute(select(Archive.source_table, Archive.source_id))
        )
    lost = sum(
        1
        for table in PRODUCT_TABLES
        for i in before[table] - after[table]
        if (table, i) not in archived
    )
    FAULT_TALLY["rows_lost"] += lost
    assert lost == 0
    with session_factory(any_business)() as session:
        assert audit.verify_chain(session).ok
    print(f"\nfault tally: {dict(sorted(FAULT_TALLY.items()))}")
