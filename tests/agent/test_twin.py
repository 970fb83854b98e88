"""The closed loop on a real SQLite file: a few simulated days per mode."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agent.db import make_engine
from agent.models import Execution, User
from agent.twin import START, TRAJECTORY_KPIS, _effects_as_actions, run_closed_loop
from environment.actions import ACTION_NAMES


def test_the_agent_acts_on_the_database_and_the_simulator_reads_it_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    result = run_closed_loop(url, days=3, seed=4, mode="rules", users=800)
    assert result.days == 3 and len(result.trajectory) == 3
    assert set(TRAJECTORY_KPIS) <= set(result.final_kpis)
    assert result.cycles == 3 and sum(result.executions.values()) > 0
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
