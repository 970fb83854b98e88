"""The materialized business: its SQL KPIs against a plain-Python reference from the rows and
against the simulator's own KPIs; the seeding's input checks and determinism."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from agent.db import SchemaMissing, make_engine, session_scope, upgrade
from agent.models import Event, Subscription, User
from agent.observe import KpiSnapshot, observe
from agent.seed import SeedConfig, SeedResult, scaled_params, seed
from environment.dynamics import steady_start
from environment.kpis import KPI_NAMES, KPI_SPECS, SPEC_BY_NAME
from tests.agent.conftest import SEED_END
from tests.agent.reference import reference_kpis


def snapshot(engine: Engine, result: SeedResult) -> KpiSnapshot:
    with session_scope(engine) as session:
        return observe(session, result.as_of)


def test_sql_kpis_equal_a_plain_python_reference_from_the_rows(
    seeded: tuple[Engine, SeedResult],
) -> None:
    engine, result = seeded
    ours = snapshot(engine, result).kpis
    reference = reference_kpis(engine, result.as_of)
    for name in KPI_NAMES:
        assert ours[name] == pytest.approx(reference[name], rel=1e-9, abs=1e-12), name


def _share_tolerance(value: float, n: float) -> float:
    """Four binomial standard errors, plus 0.02 for the window and rounding differences."""
    return 4.0 * math.sqrt(max(value * (1.0 - value), 0.01) / max(n, 1.0)) + 0.02


def _relative_tolerance(n: float, floor: float = 0.05) -> float:
    """Four Poisson standard errors of a count of ``n``, relative, plus ``floor``."""
    return 4.0 / math.sqrt(max(n, 1.0)) + floor


def test_sql_kpis_match_the_simulators_within_sampling_tolerance(
    seeded: tuple[Engine, SeedResult],
) -> None:
    """The rows are sampled from the simulator's flows, so each KPI agrees with its noise-free
    value up to the sampling error of the counts behind it."""
    engine, result = seeded
    snap = snapshot(engine, result)
    ours, truth, c = snap.kpis, result.true_kpis, snap.counts
    shares = {
        "activation_rate": c["active"],
        "d7_retention": c["matured"],
        "signup_to_activation": c["matured"],
        "billing_failure_rate": c["billing_attempts_1d"],
        "at_risk_share": c["at_risk"] + c["segment_active_free"] + c["segment_paying_engaged"],
    }
    for name, n in shares.items():
        assert abs(ours[name] - truth[name]) <= _share_tolerance(truth[name], n), name
    relative = {
        "conversion_rate": _relative_tolerance(c["conversions_30d"]),
        "cac": _relative_tolerance(c["conversions_30d"]),
        "churn_rate": _relative_tolerance(c["churned_30d"]),
        "ltv_cac": _relative_tolerance(1 / (1 / c["conversions_30d"] + 1 / c["churned_30d"])),
        "failed_payment_backlog": _relative_tolerance(c["segment_past_due"], 0.1),
        "orphaned_records": _relative_tolerance(truth["orphaned_records"], 0.01),
        "data_quality_issue_rate": _relative_tolerance(c["defective_records"], 0.05),
        "message_pressure": _relative_tolerance(c["messages_7d"] / 4, 0.05),
        "mrr": _relative_tolerance(c["paying"], 0.0) / 4 + 0.03,
        "arpa": 0.03,
    }
    for name, tolerance in relative.items():
        assert ours[name] == pytest.approx(truth[name], rel=tolerance), name
    assert ours["health_score"] == pytest.approx(truth["health_score"], abs=1.0)
    assert ours["mrr_growth"] == pytest.approx(truth["mrr_growth"], abs=0.03)
    # Alignment averages each targeted KPI's attainment (value / target, capped at 1): its
    # sampling error is the mean of theirs, each KPI's tolerance over its target.
    share_of_target = {
        **{
            name: _share_tolerance(truth[name], n) / (SPEC_BY_NAME[name].target or 1.0)
            for name, n in shares.items()
        },
        **relative,  # a relative error moves value / target by as much
        "health_score": 1.0 / (SPEC_BY_NAME["health_score"].target or 80.0),
    }
    targeted = [spec.name for spec in KPI_SPECS if spec.target]
    bound = sum(min(share_of_target[name], 1.0) for name in targeted)
    assert ours["alignment_score"] == pytest.approx(
        truth["alignment_score"], abs=100.0 * bound / len(targeted)
    )


def test_defects_and_orphans_are_the_simulators(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    snap = snapshot(engine, result)
    assert abs(snap.counts["defective_records"] - result.state.defects) <= 1.0
    assert abs(snap.kpis["orphaned_records"] - result.state.orphans) <= 1.0
    assert all(
        n > 0
        for kind, n in snap.defects.items()
        if kind
        in {
            "null_email",
            "malformed_email",
            "duplicate_user",
            "unknown_event_type",
            "future_timestamp",
            "missing_workflow_name",
        }
    )


def test_the_business_has_the_requested_size(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    with engine.connect() as c:
        living = c.execute(
            select(func.count()).select_from(User).where(User.deleted_at.is_(None))
        ).scalar_one()
        events = c.execute(select(func.count()).select_from(Event)).scalar_one()
    assert living == pytest.approx(result.state.living_accounts, rel=0.05)
    assert events > 25 * living  # about records_per_account rows per account


def test_scaled_parameters_scale_the_business() -> None:
    params, factor = scaled_params(10_000)
    assert steady_start(params).living_accounts == pytest.approx(10_000, rel=0.01)
    assert params.marketing_per_day == pytest.approx(3_000.0 * factor)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 10, "days": 5}, r"users=10 is outside \[100, 5000000\]"),
        ({"users": 1000, "days": 0}, r"days=0 is outside \[1, 365\]"),
        ({"users": 1000, "days": 400}, r"days=400 is outside \[1, 365\]"),
        ({"users": 1000.5, "days": 5}, "users must be an integer, got 1000.5"),
        ({"users": True, "days": 5}, "users must be an integer, got True"),
        ({"users": 1000, "days": 5, "seed": -1}, r"seed=-1 is outside"),
        (
            {"users": 1000, "days": 5, "scenario": "apocalypse"},
            "unknown scenario 'apocalypse'; allowed: ",
        ),
        (
            {"users": 1000, "days": 5, "end": "2025-01-01"},
            "end must be a datetime, got '2025-01-01'",
        ),
        ({"users": 1000, "days": 5, "batch_size": 0}, r"batch_size=0 is outside"),
    ],
)
def test_bad_seed_configurations_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SeedConfig(**kwargs)  # type: ignore[arg-type]


def test_seeding_refuses_a_database_that_has_users(seeded: tuple[Engine, SeedResult]) -> None:
    engine, _ = seeded
    with pytest.raises(
        ValueError, match=r"already has \d+ users; seed an empty database or pass replace"
    ):
        seed(engine, SeedConfig(users=200, days=2, end=SEED_END))


def test_seeding_needs_the_schema(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    with pytest.raises(SchemaMissing, match="run `autopilot db upgrade"):
        seed(engine, SeedConfig(users=200, days=2, end=SEED_END))


def test_same_seed_same_rows_and_replace_starts_over(tmp_path: Path) -> None:
    config = SeedConfig(
        users=300, days=3, scenario="payment_outage", seed=11, end=datetime(2025, 1, 1)
    )
    results, kpis = [], []
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(engine)
    for replace in (False, True):
        results.append(seed(engine, config, replace=replace))
        kpis.append(snapshot(engine, results[-1]).kpis)
    assert results[0].rows == results[1].rows
    assert kpis[0] == kpis[1]
    with engine.connect() as c:
        assert (
            c.execute(select(func.count()).select_from(Subscription)).scalar_one()
            == results[1].rows["subscriptions"]
        )
