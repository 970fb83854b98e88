"""The orchestrator on a real seeded SQLite database."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from agent.actuators import execute
from agent.audit import verify_chain
from agent.db import session_factory, session_scope
from agent.guardrails import Governance, parse_governance
from agent.models import AuditLog, CycleLock, DecisionRecord, Execution
from agent.orchestrator import (
    CycleRunning,
    PlanBook,
    cycle_lock,
    feasible_actions,
    monitor_and_respond,
    resolve_policy,
    run_full_cycle,
    set_kill_switch,
)
from agent.seed import SeedResult
from environment.actions import ACTION_NAMES, N_ACTIONS, NOOP, action_index
from experiments.models import load_policy_uri
from policies.base import Decision
from tests.agent.checksums import table_checksums

EAGER = dict.fromkeys(ACTION_NAMES, 0.0)
"""Thresholds that let every confident-enough decision through to the dry-run rule."""


def test_dry_run_leaves_every_product_table_unchanged_over_many_random_cycles(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    before = table_checksums(engine)
    rng = random.Random(11)
    verdicts: set[str] = set()
    for i in range(30):
        as_of = result.as_of - timedelta(hours=rng.randint(0, 24 * 10))
        policy = rng.choice(["random", "rules", "noop", "random"])
        cycle = run_full_cycle if i % 3 else monitor_and_respond
        kwargs = {"policy": policy} if cycle is run_full_cycle else {}
        outcome = cycle(
            engine,
            dry_run=True,
            as_of=as_of,
            thresholds=EAGER if rng.random() < 0.7 else None,
            **kwargs,  # type: ignore[arg-type]
        )
        verdicts |= {d.verdict for d in outcome.decisions}
    assert table_checksums(engine) == before
    assert "dry_run" in verdicts
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Execution)) == 0


def test_live_cycle_executes_records_and_audits_every_decision(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    outcome = run_full_cycle(
        engine, dry_run=False, policy="rules", as_of=result.as_of, thresholds=EAGER
    )
    assert outcome.duration_s > 0
    assert 0 <= outcome.health_before <= 100 and 0 <= outcome.alignment_before <= 100
    assert outcome.issues_found and outcome.issues_treated and not outcome.issues_healed
    assert any(d.verdict == "executed" and d.execution_id for d in outcome.decisions)
    with session_factory(engine)() as session:
        decisions = session.scalars(
            select(DecisionRecord).where(DecisionRecord.cycle_id == outcome.cycle_id)
        ).all()
        assert {d.id for d in decisions} == {d.decision_id for d in outcome.decisions}
        audited = session.scalars(
            select(AuditLog.action)
            .where(AuditLog.actor != "routine")  # after the seeded routine's history
            .order_by(AuditLog.id)
        ).all()
        assert audited[0] == "cycle_started" and audited[-1] == "cycle_finished"
        assert audited.count("decision") == len(decisions)
        assert audited.count("execution") == len(outcome.executions)
        assert verify_chain(session).ok
    # the same clock again: cooldowns block a second execution of anything executed before
    first = {d.action for d in outcome.decisions if d.execution_id is not None}
    again = run_full_cycle(engine, dry_run=False, policy="rules", as_of=result.as_of)
    repeated = [d for d in again.decisions if d.action in first and d.action != "noop"]
    assert repeated and all(d.execution_id is None for d in repeated)
    assert all(d.verdict == "blocked" for d in repeated)


def test_kill_switch_blocks_every_execution(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    with session_scope(engine) as session:
        set_kill_switch(session, True, reason="incident 42", by="ops", now=result.as_of)
    outcome = run_full_cycle(
        engine, dry_run=False, policy="rules", as_of=result.as_of, thresholds=EAGER
    )
    actionable = [d for d in outcome.decisions if d.action != "noop"]
    assert actionable and all(
        d.verdict == "blocked" and d.rule == "kill_switch" for d in actionable
    )
    assert "incident 42" in actionable[0].reasons[0]
    assert not outcome.executions


def test_kill_switch_from_the_environment(
    seeded: tuple[Engine, SeedResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, result = seeded
    monkeypatch.setenv("AUTOPILOT_KILL_SWITCH", "on")
    outcome = run_full_cycle(
        engine, dry_run=False, policy="rules", as_of=result.as_of, thresholds=EAGER
    )
    assert not outcome.executions


def test_a_second_cycle_reports_that_one_is_running(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    with cycle_lock(engine), pytest.raises(CycleRunning, match="already running"):
        run_full_cycle(engine, policy="rules", as_of=result.as_of)
    run_full_cycle(engine, policy="rules", as_of=result.as_of)  # released afterwards
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(CycleLock)) == 0


def test_governance_blocks_a_disallowed_action(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    from agent.guardrails import parse_governance

    governance: Governance = parse_governance("actions:\n  orphan_cleanup: {allowed: false}\n")
    outcome = run_full_cycle(
        engine, dry_run=False, policy="noop", as_of=result.as_of, governance=governance
    )
    cleanup = [d for d in outcome.decisions if d.action == "orphan_cleanup"]
    assert cleanup and cleanup[0].verdict == "blocked" and cleanup[0].rule == "governance.allowed"


def test_monitor_handles_only_critical_issues(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    outcome = monitor_and_respond(engine, dry_run=False, as_of=result.as_of)
    critical = {i["action"] for i in outcome.issues_found if i["severity"] == "critical"}
    assert {d.action for d in outcome.decisions} <= critical
    assert all(d.source == "self_healing" for d in outcome.decisions)


def test_low_confidence_waits_for_approval_once(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    strict = dict.fromkeys(ACTION_NAMES, 0.99)
    first = run_full_cycle(
        engine, dry_run=False, policy="rules", as_of=result.as_of, thresholds=strict
    )
    held = [d for d in first.decisions if d.verdict == "needs_approval"]
    assert held and all(d.approval_id for d in held)
    second = run_full_cycle(
        engine,
        dry_run=False,
        policy="rules",
        as_of=result.as_of + timedelta(hours=1),
        thresholds=strict,
    )
    assert all(d.approval_id is None for d in second.decisions)  # already pending


def test_a_corrupt_champion_falls_back_to_rules(
    seeded: tuple[Engine, SeedResult], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine, result = seeded
    corrupt = tmp_path / "champion"
    corrupt.mkdir()
    (corrupt / "MLmodel").write_text("this: [is not, a model")
    (corrupt / "policy.bin").write_bytes(b"\x00garbage")
    with caplog.at_level(logging.WARNING, logger="agent.cycle_config"):
        outcome = run_full_cycle(
            engine, policy=str(corrupt), as_of=result.as_of, load_policy=load_policy_uri
        )
    assert outcome.policy_name == "rules"
    assert "fell back to rules" in outcome.policy_note
    assert "fell back to rules" in caplog.text
    with session_factory(engine)() as session:
        started = session.scalars(
            select(AuditLog).where(AuditLog.action == "cycle_started").order_by(AuditLog.id.desc())
        ).first()
        assert started is not None and "fell back" in started.details["policy_note"]


def test_no_champion_uses_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTOPILOT_POLICY_URI", str(tmp_path / "missing-model"))
    policy, note = resolve_policy(None)
    assert policy.name == "rules" and str(tmp_path / "missing-model") in note


class _BrokenPolicy:
    """A policy whose decision fails: the cycle must leave nothing half-done."""

    name = "broken"
    version = "0"

    def decide(self, obs: object) -> object:
        raise RuntimeError("the model crashed")


def _counts(engine: Engine) -> tuple[int, int]:
    with session_factory(engine)() as session:
        decisions = session.scalar(select(func.count()).select_from(DecisionRecord)) or 0
        locks = session.scalar(select(func.count()).select_from(CycleLock)) or 0
    return decisions, locks


def test_a_cycle_in_the_callers_session_is_the_callers_to_commit(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    before, _ = _counts(engine)
    with session_factory(engine)() as session:
        outcome = run_full_cycle(session, policy="rules", as_of=result.as_of)
        assert outcome.decisions
        session.rollback()
    assert _counts(engine) == (before, 0)  # nothing kept, the lock released
    with session_scope(engine) as session:
        outcome = run_full_cycle(session, policy="rules", as_of=result.as_of)
    assert _counts(engine) == (before + len(outcome.decisions), 0)


def test_a_failed_cycle_is_recorded_and_keeps_no_decision(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    before, _ = _counts(engine)
    with pytest.raises(RuntimeError, match="the model crashed"):
        run_full_cycle(engine, policy=_BrokenPolicy(), as_of=result.as_of)  # type: ignore[arg-type]
    assert _counts(engine) == (before, 0)
    with session_factory(engine)() as session:
        failed = session.scalars(
            select(AuditLog).where(AuditLog.action == "cycle_failed").order_by(AuditLog.id.desc())
        ).first()
        assert failed is not None and "the model crashed" in failed.details["error"]


def test_the_cycle_says_what_it_decided_with(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    outcome = run_full_cycle(engine, policy="rules", as_of=result.as_of, thresholds=EAGER)
    assert "governance: built-in defaults; thresholds: given thresholds" in outcome.summary()


class _Insists:
    """A policy that always proposes one action with certainty (a deterministic proposer
    that cannot rank the others)."""

    name = "insists"
    version = "1"

    def __init__(self, action: str) -> None:
        self.action = action_index(action)

    def decide(self, obs: object) -> Decision:
        return Decision(self.action, 0.99, np.eye(N_ACTIONS)[self.action], self.name)

    def decide_batch(self, obs: object) -> list[Decision]:
        return [self.decide(row) for row in np.asarray(obs)]

    def save(self, path: str | Path) -> Path:
        raise NotImplementedError


def test_feasible_actions_exclude_what_governance_blocks_and_what_has_nothing_to_do(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    governance = parse_governance("actions:\n  orphan_cleanup: {allowed: false}\n")
    with session_factory(engine)() as session:
        allowed, excluded = feasible_actions(session, result.as_of, governance)
        assert allowed[NOOP] and allowed[action_index("data_fix")]
        assert excluded["orphan_cleanup"] == "governance.allowed"
        execute(session, "data_fix", result.as_of, cycle_id=None)  # repairs all it can
        session.commit()
        later = result.as_of + timedelta(hours=1)
        allowed, excluded = feasible_actions(session, later, governance)
    assert not allowed[action_index("data_fix")]
    assert excluded["data_fix"] == "governance.cooldown"  # 12 h between two repairs
    with session_factory(engine)() as session:
        allowed, excluded = feasible_actions(session, later + timedelta(hours=12), governance)
    assert excluded["data_fix"] == "nothing_to_do"
    assert set(excluded) == {ACTION_NAMES[i] for i in np.flatnonzero(~allowed)}


def test_a_cycles_plan_book_plans_once_until_something_executes(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    with session_factory(engine)() as session:
        book = PlanBook(session, result.as_of)
        first = book("orphan_cleanup")
        assert first.rows > 0 and book("orphan_cleanup") is first  # the mask's plan, reused
        execute(session, "orphan_cleanup", result.as_of, cycle_id=None)
        assert book("orphan_cleanup") is first  # a stale plan until the book is told
        book.forget()
        assert book("orphan_cleanup").rows < first.rows  # what executed is counted


def test_the_policy_chooses_only_among_feasible_actions(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    governance = parse_governance("actions:\n  scale_infra: {allowed: false}\n")
    outcome = run_full_cycle(
        engine,
        dry_run=False,
        policy=_Insists("scale_infra"),
        as_of=result.as_of,
        governance=governance,
        thresholds=EAGER,
    )
    proposed = next(d for d in outcome.decisions if d.source == "policy")
    assert proposed.action == "noop"  # its only choice was refused: it holds
    with session_factory(engine)() as session:
        entries = session.scalars(select(AuditLog).where(AuditLog.action == "decision"))
        details = next(
            e.details for e in entries if e.details["decision_id"] == proposed.decision_id
        )
        assert details["excluded"]["scale_infra"] == "governance.allowed"
        record = session.get(DecisionRecord, proposed.decision_id)
        assert record is not None and record.propensities[action_index("scale_infra")] == 0.0
    allowed = run_full_cycle(
        engine,
        dry_run=False,
        policy=_Insists("scale_infra"),
        as_of=result.as_of + timedelta(hours=4),
        thresholds=EAGER,
    )
    assert next(d for d in allowed.decisions if d.source == "policy").action == "scale_infra"


def test_a_fortnightly_cooldown_holds_past_a_week(seeded: tuple[Engine, SeedResult]) -> None:
    # ship_feature may run once a fortnight live; the guardrails once looked back one week
    # only, so the rules shipped weekly in the closed loop while a masked policy could not.
    engine, result = seeded
    ships = {}
    for days in (0, 8, 13, 14):
        outcome = run_full_cycle(
            engine,
            dry_run=False,
            policy=_Insists("ship_feature"),
            as_of=result.as_of + timedelta(days=days, minutes=1 if days == 14 else 0),
            thresholds=EAGER,
        )
        ships[days] = next(d for d in outcome.decisions if d.source == "policy").action
    assert ships == {0: "ship_feature", 8: "noop", 13: "noop", 14: "ship_feature"}


def test_governance_looks_back_as_far_as_its_longest_cooldown() -> None:
    assert Governance().lookback == timedelta(days=14)  # ship_feature, shift_marketing
    longer = parse_governance("actions:\n  funnel_fix: {cooldown_hours: 720}\n")
    assert longer.lookback == timedelta(days=30)
    none = parse_governance(
        "defaults:\n  cooldown_hours: 0\nactions:\n"
        + "".join(f"  {name}: {{cooldown_hours: 0}}\n" for name in ACTION_NAMES)
    )
    assert none.lookback == timedelta(hours=24)  # max_per_day still counts a day
