"""The training mask (``environment.actions.paced_mask``) is the live guardrails' pacing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.guardrails import Governance, GuardContext, Verdict, evaluate_decision
from environment import actions as A
from environment.kpis import RECENT_HORIZON_CYCLES

START = datetime(2026, 1, 1, tzinfo=UTC)


def blocked(action: int, executed: list[int], cycle: int) -> bool:
    """Whether the built-in guardrails block ``action`` at ``cycle`` after ``executed``."""
    context = GuardContext(
        now=START + timedelta(hours=A.CYCLE_HOURS * cycle),
        dry_run=False,
        executions={
            A.ACTION_NAMES[action]: [START + timedelta(hours=A.CYCLE_HOURS * c) for c in executed]
        },
    )
    verdict = evaluate_decision(action, 1.0, Governance(), {}, context)
    return verdict.verdict is Verdict.BLOCKED


@pytest.mark.parametrize("name", sorted(A.PACING))
def test_acting_whenever_the_mask_allows_is_never_blocked_and_never_too_late(name: str) -> None:
    action = A.action_index(name)
    executed: list[int] = []
    for cycle in range(200):
        since = [RECENT_HORIZON_CYCLES] * A.N_ACTIONS
        if executed:
            since[action] = cycle - executed[-1]
        allowed = A.paced_mask(since, approver=True)[action]
        assert allowed == (not blocked(action, executed, cycle)), (name, cycle, executed)
        if allowed:
            executed.append(cycle)
    assert len(executed) >= 2
