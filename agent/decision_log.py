"""The decision log: every decision (a cycle's or an API client's) as one ``decisions`` row, the
reward joined to it later by its ``event_id``, and the JSONL export of the shared contract.

Shaped after the decision services this field has proven (Vowpal Wabbit's decision service,
Azure Personalizer): at decision time log the context, the probabilities over every action,
what was proposed and what actually ran, with the key a reward is joined by; join the reward
by that key later, inside a window that closes.

Reward join windows (:data:`REWARD_WINDOWS`, the ONE home of these numbers; the learning loop
imports them). An action's effect lands after its delay (``delay_steps`` of the catalogue, one
step being one 4-hour cycle) and needs time to show in the KPIs:

- the **default** window is the action's delay plus :data:`OBSERVATION_PERIOD` (one day);
- the **maximum** window is the action's delay plus :data:`LONGEST_OBSERVATION` (seven days);
  a caller may ask for any window in ``(0, maximum]``.

``noop`` (delay 0) gets one day by default, ``ship_feature`` (84 steps, two weeks) fifteen.
After its deadline a decision without a reward gets :data:`DEFAULT_REWARD` with source
``default`` (:func:`apply_default_rewards`, or :func:`report_reward` when a report comes late).

Rewards reported through the API must lie in :data:`REWARD_RANGE`.

Which action ran: :func:`executed_action` is the proposed action when the verdict let it
through (``executed``) and ``noop`` otherwise (held for approval, blocked, dry run). Its logged
probability is ``propensity`` (null when the proposing policy gave it none, and then the record
is not usable for off-policy estimates: ``ope_usable`` false).

Nothing here commits: the caller (a route, a cycle, a command) owns the transaction.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from agent.models import DecisionRecord
from agent.observe import as_utc_naive
from environment.actions import ACTION_NAMES, ACTIONS, NOOP, action_index
from environment.params import BusinessParams
from policies.logged import SOURCES, LoggedDecision, write_jsonl

CYCLE_STEP = timedelta(days=BusinessParams().dt_days)
"""One environment step: one autonomous cycle (4 hours at the default 6 steps a day)."""
OBSERVATION_PERIOD = timedelta(days=1)
"""How long past its delay an action's effect is watched by default."""
LONGEST_OBSERVATION = timedelta(days=7)
"""The longest an action's effect may be watched past its delay."""
DEFAULT_REWARD = 0.0
"""The reward of a decision whose window closed with nothing joined: neutral (no evidence
either way), so a missing report neither rewards nor punishes the action."""
REWARD_RANGE: tuple[float, float] = (-1_000.0, 1_000.0)
"""Inclusive bounds of a reported reward. The environment's step reward is of order 1 (value
over a revenue scale plus alignment / 100, minus 100 when the business fails), so these leave
room for a client's own scale while refusing nonsense."""
EVENT_ID_MAX_LENGTH = 64
"""Longest ``event_id`` (the column is ``String(64)``)."""


@dataclass(frozen=True, slots=True)
class RewardWindow:
    """How long after a decision of one action its reward can be joined."""

    default: timedelta
    maximum: timedelta


REWARD_WINDOWS: Mapping[str, RewardWindow] = {
    spec.name: RewardWindow(
        default=spec.delay_steps * CYCLE_STEP + OBSERVATION_PERIOD,
        maximum=spec.delay_steps * CYCLE_STEP + LONGEST_OBSERVATION,
    )
    for spec in ACTIONS
}
"""Action name -> its reward join window (see the module docstring)."""


class RewardConflict(RuntimeError):
    """A reward was already joined to this decision; the first one stands."""


@dataclass(frozen=True, slots=True)
class RewardResult:
    """What :func:`report_reward` did. ``expired``: the window had closed, so the default
    reward stands (applied now if it was not yet) and the reported value was not used."""

    event_id: str
    reward: float
    reward_source: str
    reward_joined_at: datetime
    expired: bool


def new_event_id() -> str:
    """A fresh, unique ``event_id`` (32 hex digits)."""
    return uuid.uuid4().hex


def reward_deadline(action: str, decided_at: datetime, window: timedelta | None = None) -> datetime:
    """When the reward window of ``action`` decided at ``decided_at`` closes (naive UTC).

    ``window``: default the action's default window; must be in ``(0, maximum]``. Raises
    ``ValueError`` naming the action and the allowed range.
    """
    limits = REWARD_WINDOWS[ACTION_NAMES[action_index(action)]]
    chosen = limits.default if window is None else window
    if not timedelta(0) < chosen <= limits.maximum:
        raise ValueError(f"reward window {chosen} for {action!r} is outside (0, {limits.maximum}]")
    return as_utc_naive(decided_at, "decided_at") + chosen


def executed_action(proposed: str, verdict: str) -> str:
    """What ran after the guardrails: ``proposed`` when the verdict is ``executed``, else
    ``noop`` (held, blocked or a dry run)."""
    action_index(proposed)
    return proposed if verdict == "executed" else ACTION_NAMES[NOOP]


def _propensity_of(action: str, probabilities: Sequence[float]) -> float | None:
    value = float(probabilities[action_index(action)])
    return value if value > 0.0 else None


def record_decision(session: Session, **fields: Any) -> DecisionRecord:
    """Add one decision to the log (flushed, not committed) and return its row; ``fields``
    are :func:`decision_values`' arguments."""
    record = DecisionRecord(**decision_values(**fields))
    session.add(record)
    session.flush()
    return record


def record_decisions(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows of :func:`decision_values` in one statement (not committed)."""
    if rows:
        session.execute(insert(DecisionRecord), [dict(row) for row in rows])


def decision_values(
    *,
    source: str,
    decided_at: datetime,
    policy_name: str,
    policy_version: str,
    kpis: Mapping[str, float],
    obs: Sequence[float],
    probabilities: Sequence[float],
    proposed_action: str,
    confidence: float,
    verdict: str,
    reasons: Sequence[str],
    executed: str | None = None,
    event_id: str | None = None,
    cycle_id: int | None = None,
    execution_id: int | None = None,
    reward_window: timedelta | None = None,
    request_hash: str | None = None,
    response: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of one decision-log row, validated.

    ``executed``: the action that ran; default :func:`executed_action` of the proposal and
    verdict. ``event_id``: default a fresh one. Raises ``ValueError`` for an unknown source or
    action, an over-long event id, or probabilities that are not one per action.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown decision source {source!r}; allowed: {list(SOURCES)}")
    ran = executed if executed is not None else executed_action(proposed_action, verdict)
    action_index(ran)
    if len(probabilities) != len(ACTION_NAMES):
        raise ValueError(
            f"probabilities must have one entry per action ({len(ACTION_NAMES)}), "
            f"got {len(probabilities)}"
        )
    key = event_id if event_id is not None else new_event_id()
    if not 0 < len(key) <= EVENT_ID_MAX_LENGTH:
        raise ValueError(f"event_id must have 1 to {EVENT_ID_MAX_LENGTH} characters, got {key!r}")
    at = as_utc_naive(decided_at, "decided_at")
    propensity = _propensity_of(ran, probabilities)
    return {
        "event_id": key,
        "cycle_id": cycle_id,
        "decided_at": at,
        "source": source,
        "policy_name": policy_name,
        "policy_version": policy_version,
        "context_kpis": {name: float(value) for name, value in kpis.items()},
        "context_obs": [float(x) for x in obs],
        "propensities": [float(p) for p in probabilities],
        "action": proposed_action,
        "executed_action": ran,
        "propensity": propensity,
        "ope_usable": propensity is not None,
        "confidence": float(confidence),
        "verdict": verdict,
        "verdict_reasons": list(reasons),
        "execution_id": execution_id,
        "reward_deadline": reward_deadline(proposed_action, at, reward_window),
        "request_hash": request_hash,
        "response": response,
    }


def find_by_event_ids(session: Session, event_ids: Iterable[str]) -> dict[str, DecisionRecord]:
    """The logged decisions with these ``event_id`` values, by event id."""
    keys = list(set(event_ids))
    if not keys:
        return {}
    rows = session.scalars(select(DecisionRecord).where(DecisionRecord.event_id.in_(keys)))
    return {row.event_id: row for row in rows if row.event_id is not None}


def find_by_event_id(session: Session, event_id: str) -> DecisionRecord | None:
    """The logged decision with this ``event_id``, if any."""
    return session.execute(
        select(DecisionRecord).where(DecisionRecord.event_id == event_id)
    ).scalar_one_or_none()


def check_reward(value: float) -> float:
    """``value`` as a float if it is finite and within :data:`REWARD_RANGE`, else
    ``ValueError`` naming the range."""
    low, high = REWARD_RANGE
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"reward {value!r} must be a finite number in [{low}, {high}]")
    return number


def _join(
    session: Session, record: DecisionRecord, value: float, source: str, at: datetime
) -> bool:
    """Set the reward of ``record`` unless one is set (a conditional UPDATE, so two writers
    racing cannot both join); returns whether this call joined it."""
    joined = session.execute(
        update(DecisionRecord)
        .where(DecisionRecord.id == record.id, DecisionRecord.reward.is_(None))
        .values(reward=value, reward_source=source, reward_joined_at=at)
    )
    session.refresh(record)
    return bool(joined.rowcount)  # type: ignore[attr-defined]


def report_reward(
    session: Session, event_id: str, value: float, now: datetime | None = None
) -> RewardResult:
    """Join a reported reward to the decision logged as ``event_id`` (flushed, not committed).

    - unknown ``event_id``: ``LookupError``;
    - a reward already reported or computed: :class:`RewardConflict` (the first stands);
    - past the deadline: the default reward is applied (if nothing was joined yet) and the
      result says ``expired``; the caller commits it like any other result.
    """
    number = check_reward(value)
    at = as_utc_naive(now)
    record = find_by_event_id(session, event_id)
    if record is None:
        raise LookupError(f"no decision with event_id {event_id!r}")
    expired = record.reward_deadline is not None and at > record.reward_deadline
    if record.reward is not None and not (expired and record.reward_source == "default"):
        raise RewardConflict(
            f"decision {event_id!r} already has a {record.reward_source} reward "
            f"({record.reward}) joined at {record.reward_joined_at:%Y-%m-%dT%H:%M:%SZ}"
        )
    if expired:
        _join(session, record, DEFAULT_REWARD, "default", at)
    elif not _join(session, record, number, "reported", at):
        raise RewardConflict(f"decision {event_id!r} got a reward concurrently; the first stands")
    assert record.reward is not None and record.reward_source and record.reward_joined_at
    return RewardResult(
        event_id=event_id,
        reward=record.reward,
        reward_source=record.reward_source,
        reward_joined_at=record.reward_joined_at,
        expired=expired,
    )


def apply_default_rewards(session: Session, now: datetime | None = None) -> int:
    """Give :data:`DEFAULT_REWARD` to every decision past its deadline with no reward
    (flushed, not committed); returns how many."""
    at = as_utc_naive(now)
    result = session.execute(
        update(DecisionRecord)
        .where(
            DecisionRecord.reward.is_(None),
            DecisionRecord.reward_deadline.is_not(None),
            DecisionRecord.reward_deadline < at,
        )
        .values(reward=DEFAULT_REWARD, reward_source="default", reward_joined_at=at)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ActionRewards:
    """Decisions of one executed action: how many, how many with a reward by source, and the
    mean of the joined rewards (``None`` when none is joined)."""

    action: str
    decisions: int
    rewarded: dict[str, int]
    mean_reward: float | None


def reward_summary(session: Session) -> list[ActionRewards]:
    """Per executed action (catalogue order): decisions, rewards by source, mean reward."""
    executed = func.coalesce(DecisionRecord.executed_action, DecisionRecord.action)
    rows = session.execute(
        select(
            executed, DecisionRecord.reward_source, func.count(), func.avg(DecisionRecord.reward)
        ).group_by(executed, DecisionRecord.reward_source)
    ).all()
    totals: dict[str, list[Any]] = {}
    for action, source, count, mean in rows:
        entry = totals.setdefault(action, [0, {}, 0.0, 0])
        entry[0] += int(count)
        if source is not None:
            entry[1][source] = int(count)
            entry[2] += float(mean) * int(count)
            entry[3] += int(count)
    return [
        ActionRewards(
            action=name,
            decisions=totals[name][0],
            rewarded=totals[name][1],
            mean_reward=totals[name][2] / totals[name][3] if totals[name][3] else None,
        )
        for name in ACTION_NAMES
        if name in totals
    ]


# --- the JSONL export (the shared decision-log contract) -------------------------------------


def to_logged(record: DecisionRecord) -> LoggedDecision:
    """One row as the contract's record (validated by :class:`~policies.logged.LoggedDecision`;
    a row that breaks the contract raises its ``LogFormatError`` naming the field)."""
    return LoggedDecision(
        event_id=record.event_id or f"decision-{record.id}",
        timestamp=record.decided_at,
        cycle_id=record.cycle_id,
        source=record.source or ("self_healing" if record.policy_name == "detector" else "policy"),
        policy=record.policy_name,
        policy_version=record.policy_version,
        kpis={name: float(value) for name, value in (record.context_kpis or {}).items()},
        obs=tuple(float(x) for x in record.context_obs),
        probabilities=tuple(float(p) for p in record.propensities),
        proposed_action=record.action,
        action=record.executed_action or executed_action(record.action, record.verdict),
        propensity=record.propensity,
        ope_usable=bool(record.ope_usable and record.propensity is not None),
        confidence=float(record.confidence),
        verdict=record.verdict,
        reasons=tuple(str(r) for r in record.verdict_reasons or ()),
        execution_id=record.execution_id,
        reward=record.reward,
        reward_joined_at=record.reward_joined_at,
        reward_source=record.reward_source,
    )


def to_log_record(record: DecisionRecord) -> dict[str, Any]:
    """One row as the contract's JSON object (keys in contract order)."""
    return to_logged(record).to_dict()


def iter_log_records(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = 1_000,
) -> Iterator[dict[str, Any]]:
    """Every logged decision in id order (optionally ``since <= decided_at < until``), as the
    contract's JSON objects, streamed in batches."""
    for record in iter_logged(session, since=since, until=until, batch_size=batch_size):
        yield record.to_dict()


def iter_logged(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = 1_000,
) -> Iterator[LoggedDecision]:
    """Every logged decision in id order (optionally ``since <= decided_at < until``), as
    validated contract records, streamed in batches."""
    last_id = 0
    while True:
        query = (
            select(DecisionRecord)
            .where(DecisionRecord.id > last_id)
            .order_by(DecisionRecord.id)
            .limit(batch_size)
        )
        if since is not None:
            query = query.where(DecisionRecord.decided_at >= as_utc_naive(since, "since"))
        if until is not None:
            query = query.where(DecisionRecord.decided_at < as_utc_naive(until, "until"))
        rows = session.scalars(query).all()
        if not rows:
            return
        for row in rows:
            yield to_logged(row)
        last_id = rows[-1].id
        session.expunge_all()


def export_jsonl(
    session: Session,
    path: str | Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Write the decision log to ``path`` (``.jsonl``, :func:`policies.logged.write_jsonl`:
    through a temporary file renamed at the end, so a failure leaves no half-written log);
    returns how many records."""
    return write_jsonl(path, iter_logged(session, since=since, until=until))
