"""The agent's memory of its own actions, as the observation carries it.

Every policy is a function of its observation (DESIGN.md): what it must know about its own
recent actions (cooldowns, fatigue) is the observation's recent-action part, encoded by
:func:`environment.kpis.encode_recent_actions`. The simulator fills it from its state, the API
from a request's ``recent_actions``, and the cycle from the executions table through
:func:`cycles_since_last`, so the three are one encoding.

A cycle is :data:`environment.actions.CYCLE_HOURS` long: an execution ``h`` hours before
``as_of`` is ``max(1, floor(h / CYCLE_HOURS + 1/2))`` cycles ago (halves round up; 1: the
cycle just completed), the simulator's count after one step. Executions undone since, failed
or planned in dry run do not count; older than
:data:`environment.kpis.RECENT_HORIZON_CYCLES` cycles means "long ago".
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agent.models import Execution
from agent.observe import as_utc_naive
from environment.actions import CYCLE_HOURS
from environment.kpis import RECENT_HORIZON_CYCLES

CYCLE = timedelta(hours=CYCLE_HOURS)
HORIZON = CYCLE * RECENT_HORIZON_CYCLES
"""How far back the executions table is read: beyond it every action is "long ago"."""


def cycles_since_last(session: Session, as_of: datetime | None = None) -> dict[str, int]:
    """Per action executed live within :data:`HORIZON` before ``as_of`` (and not undone), the
    cycles since its latest execution; actions absent from the result are "long ago"."""
    now = as_utc_naive(as_of)
    rows = session.execute(
        select(Execution.action, func.max(Execution.started_at))
        .where(
            Execution.status == "executed",
            Execution.undone_at.is_(None),
            Execution.started_at > now - HORIZON,
            Execution.started_at <= now,
        )
        .group_by(Execution.action)
    ).all()
    return {action: cycles_between(last, now) for action, last in rows}


def cycles_between(earlier: datetime, later: datetime) -> int:
    """Whole cycles from ``earlier`` to ``later``, at least 1 (see the module docstring)."""
    return max(1, math.floor((later - earlier) / CYCLE + 0.5))
