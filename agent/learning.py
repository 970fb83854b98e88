"""The learning step of each cycle: join delayed rewards, then update online learners.

**Reward join** (:func:`join_rewards`). A decision's join window is the per-action window of
:mod:`agent.decision_log` (``REWARD_WINDOWS``; the deadline is stored on the row). When the
window has closed (``reward_deadline <= as_of``) its reward is computed from the KPIs logged
with the decision and the KPIs **observed at the window's close**: the first observation at or
after the deadline, no later than :data:`OBSERVATION_GRACE` (one cycle) past it. Observations
are the KPI contexts the log holds (every later decision's ``kpis``) and, when the caller has
one, the cycle's own snapshot (``current_kpis`` at ``as_of``). So:

- **on time**: the step after the close finds the close's observation: ``computed``;
- **late**: the step runs long after the close (a stopped scheduler), but an observation within
  the grace exists: still ``computed`` from it, never from later KPIs; the report counts it;
- **never**: no observation within the grace and ``as_of`` is past it, or the reward function
  cannot use the KPIs: :data:`agent.decision_log.DEFAULT_REWARD`, source ``default``.

Decisions with a reward already (reported through the API, or joined earlier) are left alone.
Decisions without a deadline (rows older than migration 0003) can never be joined: they are
reported as **dangling**, with the open ones (window not closed yet).

**The reward function** is a parameter. Until the simulator's shared
``environment.reward.kpi_window_reward`` is on main, the ONE interim implementation is
:func:`interim_kpi_window_reward` (documented there); swap the default when it lands.

**Online learning** (:func:`update_learner`). Only closed windows train (like the Decision
Service: early outcomes must not bias learning), and only rewards that measure something:
``computed`` and ``reported`` (a ``default`` reward is no evidence) of decisions with a logged
propensity. A learner sees each decision once, in the order ``(reward_joined_at, id)``; its
state after each step is a new version in ``learner_snapshots`` (the policy's own ``.npz``
file, the total update count and the event ids of that version's updates), so every version
and the data it saw are recoverable. The watermark of what a learner has seen is the last
event id of its latest version.

Nothing here commits: the caller (the cycle, a command) owns the transaction.
"""

from __future__ import annotations

import bisect
import hashlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from agent.decision_log import (
    CYCLE_STEP,
    DEFAULT_REWARD,
    find_by_event_id,
    iter_logged,
)
from agent.models import DecisionRecord, LearnerSnapshot
from agent.observe import as_utc_naive
from environment.actions import action_index
from environment.params import BusinessParams
from policies.bandits import BANDITS, Bandit
from policies.logged import REWARD_SOURCES, LoggedDecision

KpiWindowReward = Callable[[Mapping[str, float], Mapping[str, float], timedelta], float]
"""``reward(kpis_at_decision, kpis_at_close, window) -> float``; raises ``KeyError`` or
``ValueError`` when the KPIs do not allow one (then the default reward applies)."""

OBSERVATION_GRACE = CYCLE_STEP
"""How long after a window's close an observation still measures it: one cycle."""
LEARNED_SOURCES: tuple[str, ...] = ("computed", "reported")
"""Reward sources a learner trains on (``default`` is no evidence)."""
DEFAULT_LEARNERS: tuple[str, ...] = ("linucb",)
"""The online learners :func:`learn` updates unless told otherwise."""


def interim_kpi_window_reward(
    before: Mapping[str, float], after: Mapping[str, float], window: timedelta
) -> float:
    """INTERIM reward of a window, until ``environment.reward.kpi_window_reward`` lands.

    The environment's step reward is ``value_weight * net revenue / revenue scale +
    alignment_weight * alignment / 100``; what a KPI window shows of it is the change:
    ``value_weight * (mrr_after - mrr_before) / mrr_before + alignment_weight *
    (alignment_after - alignment_before) / 100`` with the weights of
    :class:`~environment.params.BusinessParams`. ``KeyError`` when ``mrr`` or
    ``alignment_score`` is missing; ``ValueError`` when ``mrr_before`` is not positive.
    """
    params = BusinessParams()
    mrr_before = float(before["mrr"])
    if not mrr_before > 0:
        raise ValueError(f"mrr before the window must be > 0, got {mrr_before!r}")
    growth = (float(after["mrr"]) - mrr_before) / mrr_before
    alignment = (float(after["alignment_score"]) - float(before["alignment_score"])) / 100.0
    return params.value_weight * growth + params.alignment_weight * alignment


# --- the reward join ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinReport:
    """What :func:`join_rewards` did (event ids, in id order)."""

    computed: tuple[str, ...] = ()
    late: tuple[str, ...] = ()
    """Among ``computed``: joined more than the grace after the close (from the close's KPIs)."""
    defaulted: tuple[str, ...] = ()
    waiting: int = 0
    """Closed, no observation yet, still within the grace: joined by a later step."""
    open: int = 0
    """Window not closed at ``as_of``."""
    dangling: tuple[str, ...] = ()
    """No reward and no deadline: can never be joined."""

    def to_dict(self) -> dict[str, Any]:
        """Counts and ids, JSON-ready."""
        return {
            "computed": len(self.computed),
            "late": len(self.late),
            "defaulted": len(self.defaulted),
            "waiting": self.waiting,
            "open": self.open,
            "dangling": len(self.dangling),
            "defaulted_ids": list(self.defaulted),
            "dangling_ids": list(self.dangling),
        }


class _Observations:
    """KPI observations sorted by time, searchable for the first at or after a moment."""

    def __init__(self, points: list[tuple[datetime, Mapping[str, float]]]) -> None:
        points.sort(key=lambda point: point[0])
        self.times = [point[0] for point in points]
        self.kpis = [point[1] for point in points]

    def first_within(self, start: datetime, grace: timedelta) -> Mapping[str, float] | None:
        index = bisect.bisect_left(self.times, start)
        if index < len(self.times) and self.times[index] <= start + grace:
            return self.kpis[index]
        return None


def _event_id(record: DecisionRecord) -> str:
    return record.event_id or f"decision-{record.id}"


def join_rewards(
    session: Session,
    *,
    as_of: datetime,
    reward_fn: KpiWindowReward = interim_kpi_window_reward,
    current_kpis: Mapping[str, float] | None = None,
) -> JoinReport:
    """Join the reward of every decision whose window closed by ``as_of`` (see the module
    docstring); flushed, not committed."""
    at = as_utc_naive(as_of)
    closed = session.scalars(
        select(DecisionRecord)
        .where(
            DecisionRecord.reward.is_(None),
            DecisionRecord.reward_deadline.is_not(None),
            DecisionRecord.reward_deadline <= at,
        )
        .order_by(DecisionRecord.id)
    ).all()
    observations = _observations(session, closed, at, current_kpis)
    computed: list[str] = []
    late: list[str] = []
    defaulted: list[str] = []
    waiting = 0
    for record in closed:
        assert record.reward_deadline is not None
        value = _computed_reward(record, observations, reward_fn)
        if value is None and at <= record.reward_deadline + OBSERVATION_GRACE:
            waiting += 1
            continue
        source = "default" if value is None else "computed"
        if _join(session, record, DEFAULT_REWARD if value is None else value, source, at):
            (defaulted if value is None else computed).append(_event_id(record))
            if value is not None and at > record.reward_deadline + OBSERVATION_GRACE:
                late.append(_event_id(record))
    open_count = session.scalars(
        select(DecisionRecord.id).where(
            DecisionRecord.reward.is_(None), DecisionRecord.reward_deadline > at
        )
    ).all()
    dangling = session.scalars(
        select(DecisionRecord)
        .where(DecisionRecord.reward.is_(None), DecisionRecord.reward_deadline.is_(None))
        .order_by(DecisionRecord.id)
    ).all()
    return JoinReport(
        computed=tuple(computed),
        late=tuple(late),
        defaulted=tuple(defaulted),
        waiting=waiting,
        open=len(open_count),
        dangling=tuple(_event_id(r) for r in dangling),
    )


def _observations(
    session: Session,
    closed: Sequence[DecisionRecord],
    at: datetime,
    current_kpis: Mapping[str, float] | None,
) -> _Observations:
    points: list[tuple[datetime, Mapping[str, float]]] = []
    if closed:
        earliest = min(r.reward_deadline for r in closed if r.reward_deadline is not None)
        rows = session.execute(
            select(DecisionRecord.decided_at, DecisionRecord.context_kpis).where(
                DecisionRecord.decided_at >= earliest,
                DecisionRecord.decided_at <= at,
            )
        ).all()
        points = [(decided_at, kpis) for decided_at, kpis in rows if kpis]
    if current_kpis is not None:
        points.append((at, dict(current_kpis)))
    return _Observations(points)


def _computed_reward(
    record: DecisionRecord, observations: _Observations, reward_fn: KpiWindowReward
) -> float | None:
    assert record.reward_deadline is not None
    after = observations.first_within(record.reward_deadline, OBSERVATION_GRACE)
    if after is None or not record.context_kpis:
        return None
    try:
        value = float(
            reward_fn(record.context_kpis, after, record.reward_deadline - record.decided_at)
        )
    except (KeyError, ValueError, TypeError):
        return None
    return value if np.isfinite(value) else None


def _join(
    session: Session, record: DecisionRecord, value: float, source: str, at: datetime
) -> bool:
    """Set the reward unless one is set (a conditional UPDATE: a concurrent API report that
    got there first stands); returns whether this call joined it."""
    result = session.execute(
        update(DecisionRecord)
        .where(DecisionRecord.id == record.id, DecisionRecord.reward.is_(None))
        .values(reward=value, reward_source=source, reward_joined_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- online learners and their versions ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LearnerUpdate:
    """What :func:`update_learner` did: the new version (``None``: nothing new to learn)."""

    learner: str
    version: int | None
    updates: int
    n_updates: int


def latest_snapshot(session: Session, learner: str) -> LearnerSnapshot | None:
    """The newest version of ``learner``'s state, if any."""
    return session.scalars(
        select(LearnerSnapshot)
        .where(LearnerSnapshot.learner == learner)
        .order_by(LearnerSnapshot.version.desc())
        .limit(1)
    ).first()


def restore_learner(snapshot: LearnerSnapshot) -> Bandit:
    """The learner a snapshot holds, exactly as it was saved."""
    if hashlib.sha256(snapshot.state).hexdigest() != snapshot.state_sha256:
        raise ValueError(
            f"snapshot {snapshot.learner!r} version {snapshot.version} is corrupt: its state "
            "does not match its SHA-256"
        )
    with tempfile.TemporaryDirectory(prefix="autopilot-learner-") as folder:
        path = Path(folder) / "state.npz"
        path.write_bytes(snapshot.state)
        return BANDITS[snapshot.kind].load(path)


def load_learner(session: Session, learner: str, kind: str | None = None) -> Bandit:
    """``learner``'s latest state, or a fresh bandit of ``kind`` (default: ``learner``, a
    :data:`~policies.bandits.BANDITS` name) when it has none."""
    snapshot = latest_snapshot(session, learner)
    if snapshot is not None:
        return restore_learner(snapshot)
    name = kind or learner
    if name not in BANDITS:
        raise ValueError(f"unknown learner kind {name!r}; known: {list(BANDITS)}")
    fresh: Bandit = BANDITS[name]()  # type: ignore[call-arg]  # each bandit has a default config
    return fresh


def _state_bytes(policy: Bandit) -> bytes:
    with tempfile.TemporaryDirectory(prefix="autopilot-learner-") as folder:
        return policy.save(Path(folder) / "state.npz").read_bytes()


def _unlearned(session: Session, learner: str) -> Sequence[DecisionRecord]:
    """Decisions with a trainable joined reward past the learner's watermark, in order."""
    query = select(DecisionRecord).where(
        DecisionRecord.reward_source.in_(LEARNED_SOURCES),
        DecisionRecord.propensity.is_not(None),
        DecisionRecord.reward_joined_at.is_not(None),
    )
    snapshot = latest_snapshot(session, learner)
    mark = _watermark(session, snapshot)
    if mark is not None:
        joined_at, last_id = mark
        query = query.where(
            or_(
                DecisionRecord.reward_joined_at > joined_at,
                and_(DecisionRecord.reward_joined_at == joined_at, DecisionRecord.id > last_id),
            )
        )
    return session.scalars(query.order_by(DecisionRecord.reward_joined_at, DecisionRecord.id)).all()


def _watermark(session: Session, snapshot: LearnerSnapshot | None) -> tuple[datetime, int] | None:
    """(reward_joined_at, id) of the last decision the learner has seen."""
    while snapshot is not None:
        if snapshot.learned_event_ids:
            last = find_by_event_id(session, str(snapshot.learned_event_ids[-1]))
            if last is None or last.reward_joined_at is None:
                raise ValueError(
                    f"learner {snapshot.learner!r} version {snapshot.version} learned "
                    f"{snapshot.learned_event_ids[-1]!r}, which the log no longer has"
                )
            return last.reward_joined_at, last.id
        snapshot = session.scalars(
            select(LearnerSnapshot).where(
                LearnerSnapshot.learner == snapshot.learner,
                LearnerSnapshot.version == snapshot.version - 1,
            )
        ).first()
    return None


def update_learner(
    session: Session,
    learner: str,
    *,
    as_of: datetime,
    kind: str | None = None,
    cycle_id: int | None = None,
) -> LearnerUpdate:
    """Update ``learner`` (restored from its latest version, or fresh) with every trainable
    reward it has not seen, and store the result as its next version (flushed, not
    committed). No new rewards: no new version."""
    policy = load_learner(session, learner, kind)
    rows = _unlearned(session, learner)
    for row in rows:
        assert row.propensity is not None and row.reward is not None
        policy.update(
            np.asarray(row.context_obs, dtype=np.float32),
            action_index(row.executed_action or row.action),
            float(row.reward),
            float(row.propensity),
        )
    if not rows:
        return LearnerUpdate(learner, None, 0, policy.n_updates)
    previous = latest_snapshot(session, learner)
    version = 1 if previous is None else previous.version + 1
    state = _state_bytes(policy)
    session.add(
        LearnerSnapshot(
            learner=learner,
            version=version,
            kind=policy.kind,
            n_updates=policy.n_updates,
            state=state,
            state_sha256=hashlib.sha256(state).hexdigest(),
            learned_event_ids=[_event_id(row) for row in rows],
            created_at=as_utc_naive(as_of),
            cycle_id=cycle_id,
        )
    )
    session.flush()
    return LearnerUpdate(learner, version, len(rows), policy.n_updates)


# --- views for the API -------------------------------------------------------------------------


def load_log(session: Session, *, since: datetime | None = None) -> list[LoggedDecision]:
    """The decision log (optionally ``decided_at >= since``) as contract records, the input
    of :mod:`policies.feedback` and :mod:`policies.ope`."""
    return list(iter_logged(session, since=since))


def learning_status(session: Session, *, as_of: datetime) -> dict[str, Any]:
    """What ``/api/autonomous/learning`` shows: decisions by reward state (joined by source,
    open, closed but waiting, dangling) and each learner's latest version."""
    at = as_utc_naive(as_of)
    by_source = dict(
        session.execute(
            select(DecisionRecord.reward_source, func.count())
            .where(DecisionRecord.reward_source.is_not(None))
            .group_by(DecisionRecord.reward_source)
        ).all()
    )
    unjoined = DecisionRecord.reward.is_(None)

    def count(*conditions: Any) -> int:
        return int(
            session.scalar(select(func.count()).select_from(DecisionRecord).where(*conditions)) or 0
        )

    latest = (
        select(LearnerSnapshot.learner, func.max(LearnerSnapshot.version))
        .group_by(LearnerSnapshot.learner)
        .subquery()
    )
    learners = session.execute(
        select(LearnerSnapshot).join(
            latest,
            and_(
                LearnerSnapshot.learner == latest.c.learner,
                LearnerSnapshot.version == latest.c[1],
            ),
        )
    ).scalars()
    return {
        "as_of": at.isoformat() + "Z",
        "joined": {source: int(by_source.get(source, 0)) for source in REWARD_SOURCES},
        "open": count(unjoined, DecisionRecord.reward_deadline > at),
        "waiting": count(unjoined, DecisionRecord.reward_deadline <= at),
        "dangling": count(unjoined, DecisionRecord.reward_deadline.is_(None)),
        "learners": [
            {
                "learner": snapshot.learner,
                "version": snapshot.version,
                "kind": snapshot.kind,
                "n_updates": snapshot.n_updates,
                "updated_at": snapshot.created_at.isoformat() + "Z",
            }
            for snapshot in learners
        ],
    }


# --- the step ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LearningReport:
    """One learning step: the reward join and each learner's update."""

    join: JoinReport
    learners: tuple[LearnerUpdate, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "join": self.join.to_dict(),
            "learners": [
                {
                    "learner": u.learner,
                    "version": u.version,
                    "updates": u.updates,
                    "n_updates": u.n_updates,
                }
                for u in self.learners
            ],
        }


def learn(
    session: Session,
    *,
    as_of: datetime,
    learners: Sequence[str] = DEFAULT_LEARNERS,
    reward_fn: KpiWindowReward = interim_kpi_window_reward,
    current_kpis: Mapping[str, float] | None = None,
    cycle_id: int | None = None,
) -> LearningReport:
    """The learning step of a cycle: :func:`join_rewards`, then :func:`update_learner` for
    each of ``learners`` (names of :data:`~policies.bandits.BANDITS`). Flushed, not
    committed: the cycle commits it with the rest of its transaction."""
    join = join_rewards(session, as_of=as_of, reward_fn=reward_fn, current_kpis=current_kpis)
    updates = tuple(
        update_learner(session, name, as_of=as_of, cycle_id=cycle_id) for name in learners
    )
    return LearningReport(join, updates)
