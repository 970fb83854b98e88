"""The cycle's memory of its own actions: cycles since each action last executed, read from
the executions table, encoded exactly as the simulator encodes its state."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from agent.models import DecisionRecord, Execution
from agent.orchestrator import run_full_cycle
from agent.recent_actions import CYCLE, HORIZON, cycles_between, cycles_since_last
from agent.seed import SeedResult
from environment.kpis import (
    N_KPIS,
    N_OBS,
    RECENT_ACTION_NAMES,
    RECENT_HORIZON_CYCLES,
    encode_recent_actions,
)

NOW = datetime(2026, 12, 1, 12, 0)


def _execution(action: str, started_at: datetime, **overrides: object) -> Execution:
    fields: dict[str, object] = {
        "action": action,
        "mode": "live",
        "status": "executed",
        "started_at": started_at,
        "effect": {},
    }
    fields.update(overrides)
    return Execution(**fields)


@pytest.mark.parametrize(
    ("hours_ago", "cycles"),
    [(0.0, 1), (4.0, 1), (5.9, 1), (6.0, 2), (8.0, 2), (9.9, 2), (10.0, 3), (14.0, 4), (24.0, 6)],
)
def test_cycles_between_rounds_to_whole_cycles_of_at_least_one(
    hours_ago: float, cycles: int
) -> None:
    assert cycles_between(NOW - timedelta(hours=hours_ago), NOW) == cycles


def test_latest_live_execution_per_action_counts(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session:
        session.add_all(
            [
                _execution("data_fix", NOW - 10 * CYCLE),
                _execution("data_fix", NOW - 2 * CYCLE),  # the latest one counts
                _execution("payment_retry", NOW - CYCLE, status="failed"),
                _execution("orphan_cleanup", NOW - CYCLE, undone_at=NOW),
                _execution("funnel_fix", NOW + CYCLE),  # after as_of: not yet
                _execution("scale_infra", NOW - HORIZON),  # at the horizon: long ago
                _execution("ship_feature", NOW - HORIZON + CYCLE),  # just inside
            ]
        )
        session.flush()
        assert cycles_since_last(session, NOW) == {
            "data_fix": 2,
            "ship_feature": RECENT_HORIZON_CYCLES - 1,
        }


def test_the_cycle_and_the_simulator_share_one_encoding(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session:
        session.add(_execution("retention_campaign", NOW - 3 * CYCLE))
        session.flush()
        encoded = encode_recent_actions(cycles_since_last(session, NOW))
    position = RECENT_ACTION_NAMES.index("retention_campaign")
    assert encoded[position] == pytest.approx(3 / RECENT_HORIZON_CYCLES, abs=1e-12)
    assert [x for i, x in enumerate(encoded) if i != position] == [1.0] * (
        len(RECENT_ACTION_NAMES) - 1
    )


def test_a_cycle_observes_its_own_recent_actions(seeded: tuple[Engine, SeedResult]) -> None:
    """The policy's observation in a cycle carries the executions table, as the simulator's
    carries its state: a data fix two cycles ago is 2/180 in its recency entry."""
    engine, result = seeded
    with Session(engine) as session:
        session.add(_execution("data_fix", result.as_of - 2 * CYCLE))
        session.commit()
    outcome = run_full_cycle(engine, policy="rules", as_of=result.as_of)
    with Session(engine) as session:
        obs = session.scalars(
            select(DecisionRecord.context_obs).where(DecisionRecord.cycle_id == outcome.cycle_id)
        ).first()
    assert obs is not None and len(obs) == N_OBS
    recency = obs[N_KPIS:]
    position = RECENT_ACTION_NAMES.index("data_fix")
    assert recency[position] == pytest.approx(2 / RECENT_HORIZON_CYCLES, abs=1e-6)  # float32
    assert all(x == 1.0 for i, x in enumerate(recency) if i != position)
