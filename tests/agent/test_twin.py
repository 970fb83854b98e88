"""The closed loop on a real SQLite file: a few simulated days per mode."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import case, func, or_, select, update

from agent.actuators import execute, normalize_event_type
from agent.db import make_engine, session_factory, upgrade
from agent.models import (
    EVENT_TYPES,
    Approval,
    BillingEvent,
    Event,
    Execution,
    Outbox,
    Subscription,
    UsageMetric,
    User,
)
from agent.observe import MARKETING_METRIC, observe
from agent.orchestrator import DecisionOutcome
from agent.seed import unnormalized_event_type
from agent.twin import (
    DEPLOYMENT_CYCLES_PER_DAY,
    MAX_APPROVER_DELAY_HOURS,
    OPERATOR,
    OUTCOMES,
    START,
    TRAJECTORY_KPIS,
    UNREPAIRABLE_EVENT_TYPE,
    _Day,
    _DayWriter,
    _effects_as_actions,
    _outcome,
    run_closed_loop,
    seed_business,
)
from environment.actions import ACTION_NAMES


def test_the_agent_acts_on_the_database_and_the_simulator_reads_it_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    result = run_closed_loop(url, days=3, seed=4, mode="rules", users=800)
    assert result.days == 3 and len(result.trajectory) == 3
    assert set(TRAJECTORY_KPIS) <= set(result.final_kpis)
    assert result.cycles == 3 * DEPLOYMENT_CYCLES_PER_DAY  # a cycle per environment step
    assert sum(result.executions.values()) > 0
    engine = make_engine(url)
    with engine.connect() as connection:
        executed = connection.execute(select(func.count()).select_from(Execution)).scalar_one()
        signups = connection.execute(
            select(func.count()).select_from(User).where(User.email.like("twin%"))
        ).scalar_one()
    read_back = _effects_as_actions(engine, START, START + timedelta(days=4))
    engine.dispose()
    assert executed == sum(result.executions.values())
    assert signups > 0
    # every executed action left an effect the simulator reads back as that action
    assert {ACTION_NAMES[a] for a in read_back} == set(result.executions)


def test_no_agent_executes_nothing_and_same_seed_starts_the_same(tmp_path: Path) -> None:
    none = run_closed_loop(f"sqlite:///{tmp_path / 'a.db'}", days=2, seed=4, mode="none", users=800)
    rules = run_closed_loop(
        f"sqlite:///{tmp_path / 'b.db'}", days=2, seed=4, mode="rules", users=800
    )
    assert none.executions == {} and none.cycles == 0
    # the same seeded business: the first day's simulator state differs only by the actions
    assert none.trajectory[0]["mrr"] == pytest.approx(rules.trajectory[0]["mrr"], rel=0.05)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "chaos"}, "unknown mode 'chaos'; allowed"),
        ({"days": 0}, r"days=0 is outside \[1, 365\]"),
        ({"cycles_per_day": 9}, r"cycles_per_day=9 is outside \[1, 6\]"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_closed_loop(f"sqlite:///{tmp_path / 'x.db'}", **kwargs)  # type: ignore[arg-type]


def test_the_same_seed_replays_exactly(tmp_path: Path) -> None:
    first = run_closed_loop(
        f"sqlite:///{tmp_path / 'a.db'}", days=2, seed=5, mode="rules", users=800
    )
    again = run_closed_loop(
        f"sqlite:///{tmp_path / 'b.db'}", days=2, seed=5, mode="rules", users=800
    )
    assert first.trajectory == again.trajectory
    assert first.executions == again.executions


def test_decisions_are_counted_per_source_and_outcome(tmp_path: Path) -> None:
    result = run_closed_loop(
        f"sqlite:///{tmp_path / 'a.db'}", days=2, seed=4, mode="rules", users=800
    )
    assert set(result.decisions) <= {"policy", "self_healing"}
    for counts in result.decisions.values():
        assert set(counts) <= set(OUTCOMES)
        assert all(type(outcome) is str for outcome in counts)  # plain names, JSON-ready
    executed_by_guardrails = sum(c.get("executed", 0) for c in result.decisions.values())
    # nobody approves: every execution is one the guardrails passed, and "executed" means an
    # execution happened (one with nothing to act on is counted apart)
    assert result.approvals == {}
    assert executed_by_guardrails == sum(result.executions.values())
    assert result.row()["policy_executed"] == result.decisions.get("policy", {}).get("executed", 0)


def test_an_operator_executes_what_nobody_would(tmp_path: Path) -> None:
    nobody = run_closed_loop(
        f"sqlite:///{tmp_path / 'a.db'}", days=3, seed=4, mode="rules", users=800
    )
    held = sum(c.get("needs_approval", 0) for c in nobody.decisions.values())
    assert held > 0, "the seed must hold something for this test to mean anything"
    operator = run_closed_loop(
        f"sqlite:///{tmp_path / 'b.db'}",
        days=3,
        seed=4,
        mode="rules",
        users=800,
        approver_delay_hours=0,
    )
    assert operator.approvals.get("approved", 0) > 0
    assert sum(operator.executions.values()) > sum(
        c.get("executed", 0) for c in operator.decisions.values()
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with engine.connect() as connection:
        approved = connection.execute(
            select(func.count()).select_from(Approval).where(Approval.decided_by == OPERATOR)
        ).scalar_one()
    engine.dispose()
    assert approved == sum(operator.approvals.values()) - operator.approvals.get("expired", 0)


@pytest.mark.parametrize("delay", [-0.001, MAX_APPROVER_DELAY_HOURS, MAX_APPROVER_DELAY_HOURS + 1])
def test_an_operator_slower_than_the_expiry_is_refused(tmp_path: Path, delay: float) -> None:
    with pytest.raises(ValueError, match=r"approver_delay_hours=.* is outside \[0, 48\)"):
        run_closed_loop(f"sqlite:///{tmp_path / 'x.db'}", approver_delay_hours=delay)


def test_an_operator_just_inside_the_expiry_is_accepted(tmp_path: Path) -> None:
    result = run_closed_loop(
        f"sqlite:///{tmp_path / 'x.db'}",
        days=1,
        seed=4,
        mode="none",
        users=800,
        approver_delay_hours=MAX_APPROVER_DELAY_HOURS - 0.001,
    )
    assert result.approver_delay_hours == pytest.approx(MAX_APPROVER_DELAY_HOURS - 0.001)


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_the_twins_defects_are_what_data_fix_repairs(kind: str) -> None:
    # The simulator's data_fix repairs data_fix_share of its defects; the twin's repairable
    # defects must be repairable by the only rewrite data_fix may make (trim, lower case), or
    # a policy learns a repair that never works; the rest must stay unrepairable.
    defect = unnormalized_event_type(kind)
    assert defect not in EVENT_TYPES  # observation counts it as an unknown type
    assert normalize_event_type(defect) == kind
    assert normalize_event_type(UNREPAIRABLE_EVENT_TYPE) is None


@pytest.mark.parametrize(
    ("verdict", "rule", "execution_id", "outcome"),
    [
        ("executed", "passed", 7, "executed"),
        ("executed", "nothing_to_do", None, "nothing_to_do"),  # passed, but changed nothing
        ("needs_approval", "confidence", None, "needs_approval"),
        ("blocked", "governance.cooldown", None, "blocked"),
    ],
)
def test_a_decision_counts_as_executed_only_when_something_executed(
    verdict: str, rule: str, execution_id: int | None, outcome: str
) -> None:
    decision = DecisionOutcome(1, "data_fix", "policy", 0.9, verdict, rule, (), 0, execution_id)
    assert _outcome(decision) == outcome and outcome in OUTCOMES


def test_the_twin_records_the_simulators_monitoring_every_step(tmp_path: Path) -> None:
    # Without these samples the observed health froze at the seed's last one, and a policy
    # trained on the simulator scaled infrastructure daily to lift a number that never moved.
    url = f"sqlite:///{tmp_path / 'health.db'}"
    run_closed_loop(url, days=2, seed=4, mode="none", users=800)
    with make_engine(url).connect() as connection:
        rows = connection.execute(
            select(UsageMetric.name, UsageMetric.recorded_at).where(UsageMetric.recorded_at > START)
        ).all()
    names = {"error_rate", "p95_latency_ms", "failed_job_rate"}
    assert len(rows) == 2 * (DEPLOYMENT_CYCLES_PER_DAY * len(names) + 1)  # + marketing spend
    assert {name for name, _ in rows} == names | {MARKETING_METRIC}
    assert max(at for _, at in rows) == START + timedelta(days=2)  # the last step's end


def test_the_observed_funnel_keeps_following_the_simulator_after_the_seeded_month(
    tmp_path: Path,
) -> None:
    # Once the seeded history aged out, the twin wrote no day-7 returns, conversions or
    # cancellations: observed d7 retention, conversion and churn fell to zero, LTV:CAC grew
    # past 10,000, and a policy trained on the simulator saw a business that does not exist.
    url = f"sqlite:///{tmp_path / 'funnel.db'}"
    result = run_closed_loop(url, days=40, seed=4, mode="none", users=800)
    with session_factory(make_engine(url))() as session:
        kpis = observe(session, START + timedelta(days=40)).kpis
    truth = result.final_kpis
    assert kpis["d7_retention"] == pytest.approx(truth["d7_retention"], abs=0.15)
    assert kpis["conversion_rate"] > 0.01 and kpis["churn_rate"] > 0.01
    assert kpis["mrr"] == pytest.approx(truth["mrr"], rel=0.15)
    assert kpis["ltv_cac"] < 50.0


def test_the_prompt_settings_message_their_audience_as_the_simulator_counts_them(
    tmp_path: Path,
) -> None:
    # The prompts are settings live; their messages are the product's. Without them observed
    # message pressure was a tenth of the simulator's, and a trained policy misread fatigue.
    url = f"sqlite:///{tmp_path / 'prompts.db'}"
    result = run_closed_loop(url, days=2, seed=4, mode="rules", users=800)
    assert result.executions.get("onboarding_boost", 0) >= 1  # the rules' first-day routine
    with make_engine(url).connect() as connection:
        sent = connection.execute(
            select(Outbox.user_id, Outbox.status).where(Outbox.topic == "onboarding_boost")
        ).all()
        unactivated = connection.execute(
            select(func.count()).select_from(User).where(User.activated_at.is_(None))
        ).scalar_one()
    assert len(sent) > 0 and all(status == "sent" for _, status in sent)
    assert len({u for u, _ in sent}) == len(sent) <= unactivated + 800  # once per account


def test_the_observed_accounts_billing_and_orphans_follow_the_simulator(tmp_path: Path) -> None:
    # The twin once wrote only failed charges (observed failure rate 1 on days with one), never
    # shrank the past-due backlog to the simulator's, kept every event of a closed account
    # (orphans 5-9x the simulator's), engaged accounts without telling free from paying (3x
    # the silent paying accounts), changed no plan after an upgrade prompt and kept every
    # unactivated account forever.
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    names = (
        "at_risk_share",
        "billing_failure_rate",
        "failed_payment_backlog",
        "orphaned_records",
        "arpa",
        "activation_rate",
    )
    result = run_closed_loop(url, days=20, seed=4, mode="none", users=1500, trajectory_kpis=names)
    end = START + timedelta(days=20)
    with session_factory(make_engine(url))() as session:
        kpis = observe(session, end).kpis
        charges = session.execute(
            select(
                func.count(), func.sum(case((BillingEvent.status == "failed", 1), else_=0))
            ).where(BillingEvent.kind == "charge", BillingEvent.occurred_at > START)
        ).one()
        closed_but_paying = session.execute(
            select(func.count())
            .select_from(Subscription)
            .join(User, User.id == Subscription.user_id)
            .where(User.deleted_at <= end, Subscription.ended_at.is_(None))
        ).scalar_one()
    truth = result.final_kpis
    assert kpis["at_risk_share"] == pytest.approx(truth["at_risk_share"], abs=0.03)
    assert kpis["orphaned_records"] == pytest.approx(truth["orphaned_records"], rel=0.25)
    assert kpis["failed_payment_backlog"] == pytest.approx(
        truth["failed_payment_backlog"], abs=0.006
    )
    assert kpis["arpa"] == pytest.approx(truth["arpa"], rel=0.03)
    # no unactivated account ever left: observed activation fell behind by a point a week
    assert kpis["activation_rate"] == pytest.approx(truth["activation_rate"], abs=0.015)
    attempts, failed = charges
    mean_rate = sum(day["billing_failure_rate"] for day in result.trajectory) / len(
        result.trajectory
    )
    assert attempts > 20 * 5  # every due charge is written, not only the failed ones
    assert failed / attempts == pytest.approx(mean_rate, abs=0.04)
    assert closed_but_paying == 0  # a closed account's subscription ends with it


def test_a_data_fix_day_repairs_the_simulators_share_of_every_event_defect(tmp_path: Path) -> None:
    # The simulator's data_fix repairs data_fix_share of all its defects; the actuator only the
    # rule-repairable types. Without the writer's share, the unrepairable ones piled up fix
    # after fix and observed data quality read twice the simulator's.
    engine = make_engine(f"sqlite:///{tmp_path / 'repairs.db'}")
    upgrade(engine)
    seeded = seed_business(engine, users=800, seed=4, scenario="steady")
    corrupt = or_(Event.type.is_(None), Event.type.not_in(EVENT_TYPES))
    with engine.begin() as connection:
        ids = connection.execute(select(Event.id).order_by(Event.id).limit(90)).scalars().all()
        for i, event_id in enumerate(ids):
            kind = UNREPAIRABLE_EVENT_TYPE if i % 3 else unnormalized_event_type("logged_in")
            connection.execute(update(Event).where(Event.id == event_id).values(type=kind))
    at = START + timedelta(hours=1)
    with session_factory(engine)() as session:
        execute(session, "data_fix", at, cycle_id=None)
        session.commit()
        undo = session.scalars(select(Execution.undo)).one()
        left = session.scalar(select(func.count()).select_from(Event).where(corrupt))
    repaired = sum(len(f["new"]) for f in undo["fields"] if f["table"] == "events")
    assert repaired >= 30 and left >= 60  # the actuator repaired only what a rule can
    writer = _DayWriter(engine, np.random.default_rng(0), seeded.params)
    day_end = START + timedelta(days=1)
    with engine.begin() as connection:
        day = _Day(connection, START, day_end, seeded.state, seeded.state, writer.rng, {})
        writer._write_repairs(day)
    with session_factory(engine)() as session:
        remaining = session.scalar(select(func.count()).select_from(Event).where(corrupt))
    share = seeded.params.data_fix_share
    assert remaining == pytest.approx((1 - share) * (repaired + left), abs=1)
    with engine.begin() as connection:  # no data_fix the next day: nothing more is repaired
        next_day = _Day(connection, day_end, day_end + timedelta(days=1), seeded.state,
                        seeded.state, writer.rng, {})  # fmt: skip
        writer._write_repairs(next_day)
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Event).where(corrupt)) == remaining
