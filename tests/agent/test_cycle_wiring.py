"""The cycle wired to the decision log, the learning step, approvals, evidence and fallback,
on a real seeded SQLite database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select

from agent.db import session_factory
from agent.decision_log import new_event_id, reward_deadline
from agent.models import Alert, ApprovalPlan, AuditLog, DecisionRecord, Execution
from agent.orchestrator import monitor_and_respond, run_full_cycle
from agent.seed import SeedResult
from agent.settings import Settings
from environment.actions import ACTION_NAMES

EAGER = dict.fromkeys(ACTION_NAMES, 0.0)
"""Thresholds that let every confident-enough decision through."""
STRICT = dict.fromkeys(ACTION_NAMES, 0.99)
"""Thresholds that hold every decision for approval."""
MISSING = "no-such-policy"
"""A policy spec that fails to load: the cycle falls back to rules."""


def _decisions(engine: Engine, cycle_id: int) -> list[DecisionRecord]:
    with session_factory(engine)() as session:
        return list(
            session.scalars(select(DecisionRecord).where(DecisionRecord.cycle_id == cycle_id))
        )


def _finished(engine: Engine, cycle_id: int) -> dict[str, object]:
    with session_factory(engine)() as session:
        entry = session.scalars(
            select(AuditLog).where(
                AuditLog.action == "cycle_finished", AuditLog.cycle_id == cycle_id
            )
        ).one()
        return dict(entry.details)


def test_every_cycle_decision_is_in_the_decision_log(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    outcome = run_full_cycle(
        engine, dry_run=False, policy="rules", as_of=result.as_of, thresholds=EAGER
    )
    rows = _decisions(engine, outcome.cycle_id)
    assert {r.source for r in rows} == {"policy", "self_healing"}
    assert len({r.event_id for r in rows}) == len(rows)
    assert all(len(r.event_id) == len(new_event_id()) for r in rows)
    for r in rows:
        ran = r.action if r.verdict == "executed" else "noop"
        assert r.executed_action == ran
        assert r.propensity == (r.propensities[ACTION_NAMES.index(ran)] or None)
        assert r.ope_usable == (r.propensity is not None)
        assert r.reward_deadline == reward_deadline(r.action, r.decided_at)
    assert any(r.executed_action != "noop" for r in rows)


def test_a_full_cycle_runs_the_learning_step_and_reports_it(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    outcome = run_full_cycle(engine, policy="rules", as_of=result.as_of)
    assert set(outcome.learning) == {"join", "learners"} and outcome.learning["learners"]
    assert _finished(engine, outcome.cycle_id)["learning"] == outcome.learning
    hourly = monitor_and_respond(engine, as_of=result.as_of)
    assert hourly.learning == {} and _finished(engine, hourly.cycle_id)["learning"] == {}


def test_a_held_decision_keeps_the_plan_it_showed(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    outcome = run_full_cycle(
        engine, dry_run=False, policy="rules", as_of=result.as_of, thresholds=STRICT
    )
    held = [d.approval_id for d in outcome.decisions if d.approval_id is not None]
    assert held
    with session_factory(engine)() as session:
        plans = session.scalars(select(ApprovalPlan.approval_id)).all()
    assert sorted(plans) == sorted(held)


def _executions(engine: Engine) -> int:
    with session_factory(engine)() as session:
        return len(session.scalars(select(Execution.id)).all())


def test_live_before_the_data_begins_executes_nothing(seeded: tuple[Engine, SeedResult]) -> None:
    engine, _ = seeded
    before = _executions(engine)
    outcome = run_full_cycle(
        engine, dry_run=False, policy="rules", as_of=datetime(1990, 1, 1), thresholds=EAGER
    )
    assert outcome.holds and all(h.startswith("insufficient data") for h in outcome.holds)
    assert not outcome.executions and _executions(engine) == before
    assert _finished(engine, outcome.cycle_id)["holds"] == list(outcome.holds)


def test_live_on_an_empty_database_executes_nothing(sqlite_engine: Engine) -> None:
    outcome = run_full_cycle(sqlite_engine, dry_run=False, policy="rules", thresholds=EAGER)
    assert any("no events" in h for h in outcome.holds)
    assert not outcome.executions and _executions(sqlite_engine) == 0


def test_live_with_enough_evidence_holds_nothing(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    outcome = run_full_cycle(
        engine, dry_run=False, policy="rules", as_of=result.as_of, thresholds=EAGER
    )
    assert outcome.holds == () and outcome.executions


def test_a_fallback_holds_every_live_decision_by_default(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    outcome = run_full_cycle(
        engine, dry_run=False, policy=MISSING, as_of=result.as_of, thresholds=EAGER
    )
    assert outcome.policy_fallback and outcome.policy_name == "rules"
    assert not outcome.executions
    would_run = [d for d in outcome.decisions if d.rule == "held"]
    assert would_run and all(d.verdict == "needs_approval" for d in would_run)
    assert all(any("policy fallback" in r for r in d.reasons) for d in would_run)
    finished = _finished(engine, outcome.cycle_id)
    assert finished["policy_fallback"] is True and MISSING in str(finished["policy_note"])


def test_fallback_mode_act_lets_the_rules_act(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    outcome = run_full_cycle(
        engine,
        settings=Settings(fallback_mode="act"),
        dry_run=False,
        policy=MISSING,
        as_of=result.as_of,
        thresholds=EAGER,
    )
    assert outcome.policy_fallback and outcome.holds == () and outcome.executions


def test_a_fallback_raises_one_alert_and_a_loaded_policy_none(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    run_full_cycle(engine, policy="rules", as_of=result.as_of)
    fallback = run_full_cycle(engine, policy=MISSING, as_of=result.as_of)
    with session_factory(engine)() as session:
        alerts = session.scalars(select(Alert).where(Alert.kind == "policy_fallback")).all()
    assert [a.details["cycle_id"] for a in alerts] == [fallback.cycle_id]
