"""The decision API's work: context -> observation -> policy -> guardrails -> decision log.

- The KPIs are encoded by the environment's encoding (:func:`environment.kpis.encode_vector`),
  so an HTTP context reaches the policy exactly as a simulated or SQL-observed one does.
- ``excluded_actions``: the policy's probabilities restricted to the other actions and
  renormalized (uniform over them when the policy gave them no mass); the decision is the
  policy's own when allowed, else the most probable allowed action. The logged probabilities
  are the restricted ones: what the decision was actually drawn from.
- The guardrails are evaluated as if live (``mode: advise``: the caller acts, so ``executed``
  means the guardrails let the action through), with the kill switch and the executions the
  longest cooldown can see; the log records ``noop`` as what ran unless the verdict is ``executed``.
- Idempotency: the body (without ``event_id``) is hashed; a repeated ``event_id`` with the same
  hash gets the stored answer, with another hash a 422. Nothing is decided twice.
- Audit: every request that decides appends ONE entry to the hash-chained trail
  (:func:`agent.audit.append`), action :data:`DECISIONS_AUDIT`, actor the key's name, listing
  each new decision's ``event_id``, action and verdict (a batch of 100 is one entry, not 100:
  the chain is a serial point, and one entry per request keeps a batch as cheap as one
  decide). A repeated ``event_id`` decides nothing and adds nothing. A reward report is one
  entry, :data:`REWARD_AUDIT`. The log rows are written before the entry, so on SQLite the
  request holds the write lock when it reads the chain's head.
- Concurrent writers (several workers, PostgreSQL) would race for the chain's next id, so a
  request first waits for the chain's head row (:func:`lock_chain`: ``SELECT ... FOR UPDATE``
  on PostgreSQL; SQLite's one writer at a time already serializes) and appends after the
  previous writer committed. A writer that takes no such lock (or the very first entry, before
  the head row exists) can still win the race: the loser's transaction fails whole and
  :func:`committed` runs the request's work again on a fresh transaction (at most
  :data:`CHAIN_ATTEMPTS` times, then a 503 asking to retry).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent import audit, decision_log
from agent.guardrails import Governance, GuardContext, evaluate_decision
from agent.models import AuditHead, DecisionRecord
from agent.orchestrator import executions_by_action, kill_switch_state
from api import metrics
from api.policy import LoadedPolicy
from api.problems import Problem
from api.schemas import DecideRequest, utc_text
from environment.actions import ACTION_NAMES, N_ACTIONS, action_index
from environment.kpis import encode_vector
from policies.base import Decision, restrict

DECISIONS_AUDIT = "api_decisions"
"""The audit action of one request's decisions."""
REWARD_AUDIT = "api_reward"
"""The audit action of one reward report."""
CHAIN_ATTEMPTS = 3
"""Tries of one request's transaction when a concurrent writer took the chain's next id."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Guard:
    """What the guardrails need, read once per request (or batch)."""

    governance: Governance
    thresholds: Mapping[str, float]
    context: GuardContext


def guard_for(
    session: Session, governance: Governance, thresholds: Mapping[str, float], now: datetime
) -> Guard:
    """The guardrails' inputs at ``now``: kill switch and the executions governance's
    longest cooldown can see (:attr:`agent.guardrails.Governance.lookback`)."""
    on, reason = kill_switch_state(session)
    context = GuardContext(
        now=now,
        dry_run=False,
        kill_switch=on,
        kill_reason=reason,
        executions=executions_by_action(session, now, governance.lookback),
    )
    return Guard(governance, thresholds, context)


def request_hash(request: DecideRequest) -> str:
    """SHA-256 of the request body without its ``event_id`` (canonical JSON)."""
    body = request.model_dump(mode="json", exclude={"event_id"})
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def restrict_excluded(decision: Decision, excluded: Sequence[str]) -> Decision:
    """``decision`` without the ``excluded`` actions (:func:`policies.base.restrict`)."""
    if not excluded:
        return decision
    allowed = np.ones(N_ACTIONS, dtype=bool)
    allowed[[action_index(name) for name in excluded]] = False
    return restrict(decision, allowed)


def stored_answer(record: DecisionRecord | Mapping[str, Any], body_hash: str) -> dict[str, Any]:
    """The stored answer of a repeated ``event_id`` (a logged row or one about to be); 422
    when the body differs."""
    row = record if isinstance(record, Mapping) else vars(record)
    response: dict[str, Any] | None = row.get("response")
    if row.get("request_hash") != body_hash or response is None:
        raise Problem(
            422,
            f"event_id {row.get('event_id')!r} was already used with a different request; "
            "a repeated event_id must repeat its body exactly",
        )
    return response


def decide_one(
    request: DecideRequest,
    obs: np.ndarray,
    decision: Decision,
    loaded: LoadedPolicy,
    guard: Guard,
    now: datetime,
    body_hash: str,
) -> dict[str, Any]:
    """Guard one policy decision; returns its decision-log row (with the answer)."""
    restricted = restrict_excluded(decision, request.excluded_actions)
    index, confidence = restricted.action, float(restricted.confidence)
    probabilities = restricted.propensities.tolist()
    outcome = evaluate_decision(
        index, confidence, guard.governance, guard.thresholds, guard.context
    )
    verdict = str(outcome.verdict)  # the Verdict's name (a StrEnum): "executed", "blocked", ...
    action = ACTION_NAMES[index]
    event_id = request.event_id or decision_log.new_event_id()
    deadline = decision_log.reward_deadline(action, now)
    reasons = list(outcome.reasons)
    answer = {  # DecideResponse's members, built directly: this runs once per decision
        "event_id": event_id,
        "action": action,
        "confidence": confidence,
        "probabilities": dict(zip(ACTION_NAMES, probabilities, strict=True)),
        "policy": loaded.name,
        "policy_version": loaded.version,
        "verdict": {"verdict": verdict, "rule": outcome.rule, "reasons": reasons},
        "reward_deadline": utc_text(deadline),
    }
    row = decision_log.decision_values(
        source="api",
        decided_at=now,
        policy_name=loaded.name,
        policy_version=loaded.version,
        kpis=request.kpi_values,
        obs=obs.tolist(),
        probabilities=probabilities,
        proposed_action=action,
        confidence=confidence,
        verdict=verdict,
        reasons=[outcome.rule, *reasons],
        event_id=event_id,
        request_hash=body_hash,
        response=answer,
    )
    return row


def observation(request: DecideRequest) -> np.ndarray:
    """The environment's observation of the request's KPIs and recent actions, float32 shape
    (N_OBS,)."""
    return encode_vector(list(request.kpi_values.values()), request.recent_actions)


def decide_many(
    session: Session,
    requests: Sequence[DecideRequest],
    loaded: LoadedPolicy,
    guard: Guard,
    now: datetime,
    actor: str,
) -> tuple[list[dict[str, Any] | Problem], list[dict[str, Any]]]:
    """Answer every request independently (stored answers for repeated event ids, a
    :class:`Problem` for a conflicting one); the new decisions are inserted in one statement
    and audited in one entry by ``actor``, not committed. Returns the answers and the new
    decision-log rows."""
    hashes = [request_hash(r) for r in requests]
    known: dict[str, DecisionRecord | Mapping[str, Any]] = dict(
        decision_log.find_by_event_ids(session, [r.event_id for r in requests if r.event_id])
    )
    fresh = [i for i, r in enumerate(requests) if r.event_id is None or r.event_id not in known]
    obs = np.stack([observation(requests[i]) for i in fresh]) if fresh else None
    decisions = loaded.policy.decide_batch(obs) if obs is not None else []
    slot = {index: position for position, index in enumerate(fresh)}
    out: list[dict[str, Any] | Problem] = []
    rows: list[dict[str, Any]] = []
    for i, request in enumerate(requests):
        try:
            if request.event_id in known:
                out.append(stored_answer(known[request.event_id], hashes[i]))
                continue
            at = slot[i]
            row = decide_one(request, obs[at], decisions[at], loaded, guard, now, hashes[i])  # type: ignore[index]
            if request.event_id is not None:
                known[request.event_id] = row  # a repeat later in the batch is idempotent
            rows.append(row)
            out.append(row["response"])
        except Problem as problem:
            out.append(problem)
    if rows:
        lock_chain(session)
    decision_log.record_decisions(session, rows)
    audit_decisions(session, actor, rows, loaded, now)
    return out, rows


def lock_chain(session: Session) -> None:
    """Wait until no other transaction is appending to the audit chain, and keep others
    waiting until this one ends: a row lock on the chain's head. Not on SQLite, which has no
    row locks: its single writer already serializes the appends (see the module docstring)."""
    if session.get_bind().dialect.name == "sqlite":
        return
    session.execute(select(AuditHead.name).where(AuditHead.name == audit.CHAIN).with_for_update())


def count_decisions(rows: Sequence[Mapping[str, Any]]) -> None:
    """Add committed decision-log rows to ``autopilot_decisions_total``."""
    counted = Counter((row["action"], row["verdict"]) for row in rows)
    for (action, verdict), n in counted.items():
        metrics.DECISIONS.labels("api", action, verdict).inc(n)


def audit_decisions(
    session: Session,
    actor: str,
    rows: Sequence[Mapping[str, Any]],
    loaded: LoadedPolicy,
    now: datetime,
) -> None:
    """One audit entry for the new decisions of one request (none when there are none)."""
    if not rows:
        return
    decided = [
        {"event_id": row["event_id"], "action": row["action"], "verdict": row["verdict"]}
        for row in rows
    ]
    audit.append(
        session,
        actor=actor,
        action=DECISIONS_AUDIT,
        target=decided[0]["event_id"] if len(decided) == 1 else f"{len(decided)} decisions",
        details={"policy": f"{loaded.name} {loaded.version}", "decisions": decided},
        now=now,
    )


def audit_reward(
    session: Session, actor: str, value: float, result: decision_log.RewardResult
) -> None:
    """The audit entry of one reward report: what was reported and what stands."""
    audit.append(
        session,
        actor=actor,
        action=REWARD_AUDIT,
        target=result.event_id,
        details={
            "reported": value,
            "reward": result.reward,
            "source": result.reward_source,
            "expired": result.expired,
        },
        now=result.reward_joined_at,
    )


def committed(session: Session, work: Callable[[], T]) -> T:
    """``work()`` then commit; when a concurrent writer made the transaction fail (the chain's
    next id or an ``event_id`` taken meanwhile), roll back and run ``work`` again, at most
    :data:`CHAIN_ATTEMPTS` times; then a 503 asking the client to retry."""
    for _ in range(CHAIN_ATTEMPTS):
        try:
            result = work()
            session.commit()
            return result
        except (IntegrityError, audit.AuditError):
            session.rollback()
    raise Problem(
        503,
        f"the audit trail was busy with concurrent writers {CHAIN_ATTEMPTS} times; retry",
        headers={"Retry-After": "1"},
    )
