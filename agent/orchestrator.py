"""The orchestrator: one cycle of observe, detect, decide, guard, act, audit.

:func:`run_full_cycle` is the full pass (every few hours): the policy's decision plus one
self-healing decision per detected remediation issue; :func:`monitor_and_respond` is the
lighter hourly pass that handles only critical issues. Both:

- hold the database's cycle lock (a row of ``cycle_locks`` whose primary key is the lock name),
  so two triggers at once cannot both run: the second raises :class:`CycleRunning`. A lock left
  by a crashed holder expires after :data:`LOCK_TTL`;
- record every decision (a ``decisions`` row, with its verdict) and audit every decision,
  verdict, execution, approval request and the cycle itself;
- execute each action through :mod:`agent.actuators`, in one transaction with its decision row
  and audit entries; a dry run (the default) plans and audits but changes no product table.

The agent's clock is ``as_of`` (default: now, UTC): decisions, executions and audit entries are
stamped with it, so a simulated business (:mod:`agent.twin`) runs on simulated time.

The policy: an explicit :class:`~policies.base.Policy` or spec, else the MLflow registry's
champion (:data:`CHAMPION_URI`, overridable by ``$AUTOPILOT_POLICY_URI``), else ``rules``; when
loading fails the cycle logs why, records it in the cycle's audit entry, and goes on with
``rules``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from agent import actuators, audit
from agent.detect import Issue, Severity, detect
from agent.guardrails import (
    Governance,
    GuardContext,
    GuardVerdict,
    Verdict,
    default_thresholds,
    evaluate_decision,
    kill_switch_from_env,
    load_governance,
)
from agent.models import Approval, Cycle, CycleLock, DecisionRecord, Execution, Setting
from agent.observe import as_utc_naive, observe
from environment.actions import ACTION_NAMES, N_ACTIONS, NOOP, action_index
from policies.base import Episodic, Policy

log = logging.getLogger(__name__)

CHAMPION_URI = "models:/autopilot-policy@champion"
POLICY_URI_ENV = "AUTOPILOT_POLICY_URI"
GOVERNANCE_ENV = "AUTOPILOT_GOVERNANCE"
THRESHOLDS_ENV = "AUTOPILOT_THRESHOLDS"
KILL_SWITCH_KEY = "kill_switch"
LOCK_NAME = "cycle"
LOCK_TTL = timedelta(minutes=30)
APPROVAL_TTL = timedelta(hours=48)
HISTORY_CYCLES = 42
"""Policy decisions replayed into an episodic policy (a week of 4-hour cycles)."""
SELF_HEALING_KINDS = frozenset(
    {"system_health", "data_quality", "orphaned_records", "failed_payments", "users_at_risk"}
)
SEVERITY_CONFIDENCE = {
    Severity.CRITICAL: 0.97,
    Severity.HIGH: 0.92,
    Severity.MEDIUM: 0.85,
    Severity.LOW: 0.70,
}
"""Confidence of a self-healing decision: how sure detection is that acting (and paying the
action's cost) helps. With the seed's thresholds, data and payment repair (0.75) heal from
medium severity on and a retention campaign (0.80) too; a low-severity issue waits for a human
(in the closed loop, healing every small backlog daily spent the simulated business's cash)."""


class CycleRunning(RuntimeError):
    """Another cycle holds this database's cycle lock."""


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """One decision of a cycle: who proposed it, the verdict and what it led to."""

    decision_id: int
    action: str
    source: str
    confidence: float
    verdict: str
    rule: str
    reasons: tuple[str, ...]
    rows: int
    execution_id: int | None = None
    approval_id: int | None = None
    issue: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "action": self.action,
            "source": self.source,
            "confidence": round(self.confidence, 4),
            "verdict": self.verdict,
            "rule": self.rule,
            "reasons": list(self.reasons),
            "rows": self.rows,
            "execution_id": self.execution_id,
            "approval_id": self.approval_id,
            "issue": self.issue,
        }


@dataclass(slots=True)
class CycleResult:
    """What a cycle did. ``health_before`` / ``alignment_before``: the scores observed at its
    start; ``issues_healed``: issues whose self-healing action executed;
    ``optimizations_applied``: optimization and decision actions executed."""

    cycle_id: int
    kind: str
    mode: str
    as_of: datetime
    duration_s: float
    health_before: float
    alignment_before: float
    policy_name: str
    policy_version: str
    policy_note: str
    issues_found: list[dict[str, Any]] = field(default_factory=list)
    issues_healed: list[str] = field(default_factory=list)
    optimizations_applied: list[str] = field(default_factory=list)
    decisions: list[DecisionOutcome] = field(default_factory=list)
    kpis: dict[str, float] = field(default_factory=dict)

    @property
    def executions(self) -> list[int]:
        return [d.execution_id for d in self.decisions if d.execution_id is not None]

    def summary(self) -> str:
        """A few lines for the command line."""
        lines = [
            f"cycle {self.cycle_id} ({self.kind}, {self.mode}) at {self.as_of:%Y-%m-%d %H:%M} "
            f"in {self.duration_s:.2f} s; policy {self.policy_name} {self.policy_version}"
            + (f" ({self.policy_note})" if self.policy_note else ""),
            f"health {self.health_before:.1f}, alignment {self.alignment_before:.1f}; "
            f"{len(self.issues_found)} issues, healed {self.issues_healed or 'none'}, "
            f"optimizations {self.optimizations_applied or 'none'}",
        ]
        for d in self.decisions:
            extra = (
                f" execution {d.execution_id}"
                if d.execution_id
                else f" approval {d.approval_id}"
                if d.approval_id
                else ""
            )
            lines.append(
                f"  {d.source:12} {d.action:18} conf {d.confidence:.2f} rows {d.rows:>6} -> "
                f"{d.verdict} [{d.rule}]{extra}: {'; '.join(d.reasons)}"
            )
        return "\n".join(lines)


# --- the lock -----------------------------------------------------------------------------


def _engine_of(target: Session | Engine) -> Engine:
    if isinstance(target, Engine):
        return target
    bind = target.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


@contextmanager
def cycle_lock(engine: Engine, now: datetime, name: str = LOCK_NAME) -> Iterator[str]:
    """Hold the database's cycle lock (see the module docstring); raises :class:`CycleRunning`
    naming the holder when another process has it."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    wall = as_utc_naive(None)
    row = {"name": name, "holder": holder, "acquired_at": wall, "expires_at": wall + LOCK_TTL}
    try:
        with engine.begin() as connection:
            connection.execute(
                delete(CycleLock).where(CycleLock.name == name, CycleLock.expires_at < wall)
            )
            connection.execute(insert(CycleLock).values(**row))
    except IntegrityError:
        with engine.connect() as connection:
            current = connection.execute(
                select(CycleLock.holder, CycleLock.acquired_at).where(CycleLock.name == name)
            ).first()
        who = f"{current[0]} since {current[1]:%Y-%m-%d %H:%M:%S}" if current else "another process"
        raise CycleRunning(f"a cycle is already running on this database ({who})") from None
    except OperationalError as error:
        if "locked" in str(error).lower():
            raise CycleRunning(
                "a cycle is already running on this database (it is busy writing)"
            ) from None
        raise
    try:
        yield holder
    finally:
        with engine.begin() as connection:
            connection.execute(
                delete(CycleLock).where(CycleLock.name == name, CycleLock.holder == holder)
            )


# --- policy, governance, kill switch ------------------------------------------------------


def resolve_policy(policy: Policy | str | None) -> tuple[Policy, str]:
    """(policy, note): ``policy`` itself, the policy a spec or URI names, or the champion;
    ``rules`` when loading fails, with the reason as the note."""
    from policies.rules import RulesPolicy  # the registry would import torch: load it lazily

    if policy is not None and not isinstance(policy, str):
        return policy, ""
    uri = policy or os.environ.get(POLICY_URI_ENV) or CHAMPION_URI
    try:
        if uri == "rules":
            return RulesPolicy(), ""
        if ":" not in uri and "/" not in uri:
            from policies.registry import load_policy

            return load_policy(uri), ""
        from experiments.models import load_policy_uri

        return load_policy_uri(uri), ""
    except LookupError as error:
        note = f"no champion at {uri} ({error}); using rules"
        log.info(note)
    except Exception as error:  # a corrupt model must not stop the loop
        note = f"loading policy {uri} failed ({type(error).__name__}: {error}); fell back to rules"
        log.warning(note)
    return RulesPolicy(), note


def resolve_governance(governance: Governance | str | Path | None) -> Governance:
    """``governance``, the file it names, ``$AUTOPILOT_GOVERNANCE``, or the defaults."""
    if isinstance(governance, Governance):
        return governance
    path = governance or os.environ.get(GOVERNANCE_ENV)
    return load_governance(path) if path else Governance()


def resolve_thresholds(thresholds: dict[str, float] | str | Path | None) -> dict[str, float]:
    """The seed's thresholds overridden by ``thresholds`` (a mapping or a file written by
    ``autopilot thresholds``; default ``$AUTOPILOT_THRESHOLDS`` or guardrails/thresholds.yaml
    when it exists)."""
    merged = default_thresholds()
    if isinstance(thresholds, dict):
        merged.update(thresholds)
        return merged
    from experiments.thresholds import DEFAULT_THRESHOLDS_PATH, read_thresholds

    path = Path(thresholds or os.environ.get(THRESHOLDS_ENV) or DEFAULT_THRESHOLDS_PATH)
    if thresholds is not None or path.is_file():
        merged.update(read_thresholds(path))
    return merged


def kill_switch_state(session: Session) -> tuple[bool, str]:
    """(on, reason): the environment variable, else the latest ``kill_switch`` setting."""
    on, reason = kill_switch_from_env()
    if on:
        return on, reason
    value = session.execute(
        select(Setting.value)
        .where(Setting.key == KILL_SWITCH_KEY)
        .order_by(Setting.effective_at.desc(), Setting.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if isinstance(value, dict) and value.get("on"):
        return True, f"kill switch set: {value.get('reason') or 'no reason given'}"
    return False, ""


def set_kill_switch(
    session: Session,
    on: bool,
    *,
    reason: str = "",
    by: str = "operator",
    now: datetime | None = None,
) -> None:
    """Turn the kill switch on or off (a setting with history), audited, and commit."""
    moment = as_utc_naive(now)
    try:
        session.add(
            Setting(
                key=KILL_SWITCH_KEY,
                value={"on": on, "reason": reason},
                effective_at=actuators._free_instant(session, KILL_SWITCH_KEY, moment),
                set_by=by,
                note=reason or None,
            )
        )
        audit.append(
            session,
            actor=by,
            action="kill_switch_on" if on else "kill_switch_off",
            target=KILL_SWITCH_KEY,
            details={"reason": reason},
            now=moment,
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise


def executions_by_action(session: Session, now: datetime) -> dict[str, list[datetime]]:
    """Start times of live executions in the last week (not undone), per action."""
    since = now - timedelta(days=7)
    rows = session.execute(
        select(Execution.action, Execution.started_at).where(
            Execution.started_at > since, Execution.status == "executed"
        )
    ).all()
    out: dict[str, list[datetime]] = {}
    for action, started in rows:
        out.setdefault(action, []).append(started)
    return out


# --- the cycle ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    action: str
    confidence: float
    source: str
    propensities: list[float]
    policy_name: str
    policy_version: str
    issue: str | None = None


def _one_hot(action: str) -> list[float]:
    out = [0.0] * N_ACTIONS
    out[action_index(action)] = 1.0
    return out


def heals(issue: Issue) -> bool:
    """Whether an actuator addresses ``issue`` (data fixes repair emails only)."""
    if issue.kind not in SELF_HEALING_KINDS or issue.action not in actuators.ACTUATED:
        return False
    return issue.kind != "data_quality" or issue.detail in actuators.FIXABLE_DEFECTS


def _healing_candidates(issues: list[Issue], only_critical: bool) -> list[_Candidate]:
    seen: set[str] = set()
    out: list[_Candidate] = []
    for issue in issues:  # most severe first, so each action takes its worst issue's confidence
        if not heals(issue):
            continue
        if only_critical and issue.severity is not Severity.CRITICAL:
            continue
        if issue.action in seen:
            continue
        seen.add(issue.action)
        out.append(
            _Candidate(
                action=issue.action,
                confidence=SEVERITY_CONFIDENCE[issue.severity],
                source="self_healing",
                propensities=_one_hot(issue.action),
                policy_name="detector",
                policy_version="1",
                issue=f"{issue.kind}:{issue.detail}",
            )
        )
    return out


def _replay_history(session: Session, policy: Policy) -> None:
    """Rebuild an episodic policy's memory (cooldowns) from the recent policy decisions."""
    if not isinstance(policy, Episodic):
        return
    rows = session.execute(
        select(DecisionRecord.action, DecisionRecord.verdict)
        .where(DecisionRecord.policy_name == policy.name)
        .order_by(DecisionRecord.id.desc())
        .limit(HISTORY_CYCLES)
    ).all()
    policy.reset()
    for action, verdict in reversed(rows):
        policy.record(action_index(action) if verdict == Verdict.EXECUTED else NOOP)


def run_full_cycle(
    target: Session | Engine,
    *,
    dry_run: bool = True,
    policy: Policy | str | None = None,
    as_of: datetime | None = None,
    governance: Governance | str | Path | None = None,
    thresholds: dict[str, float] | str | Path | None = None,
    actor: str = "agent",
) -> CycleResult:
    """One full cycle (see the module docstring). ``target``: a session or an engine; the
    cycle commits its own transactions. Raises :class:`CycleRunning` when another cycle holds
    the lock."""
    return _cycle(
        target,
        kind="full",
        dry_run=dry_run,
        policy=policy,
        as_of=as_of,
        governance=governance,
        thresholds=thresholds,
        actor=actor,
    )


def monitor_and_respond(
    target: Session | Engine,
    *,
    dry_run: bool = True,
    as_of: datetime | None = None,
    governance: Governance | str | Path | None = None,
    thresholds: dict[str, float] | str | Path | None = None,
    actor: str = "agent",
) -> CycleResult:
    """The hourly pass: observe, detect, and act only on critical issues (no policy)."""
    return _cycle(
        target,
        kind="monitor",
        dry_run=dry_run,
        policy=None,
        as_of=as_of,
        governance=governance,
        thresholds=thresholds,
        actor=actor,
    )


def _cycle(
    target: Session | Engine,
    *,
    kind: str,
    dry_run: bool,
    policy: Policy | str | None,
    as_of: datetime | None,
    governance: Governance | str | Path | None,
    thresholds: dict[str, float] | str | Path | None,
    actor: str,
) -> CycleResult:
    began = time.perf_counter()
    at = as_utc_naive(as_of)
    rules = resolve_governance(governance)
    limits = resolve_thresholds(thresholds)
    engine = _engine_of(target)
    owns_session = isinstance(target, Engine)
    session = Session(engine, expire_on_commit=False) if owns_session else target
    assert isinstance(session, Session)
    chosen: Policy | None = None
    note = ""
    if kind == "full":
        chosen, note = resolve_policy(policy)
    try:
        with cycle_lock(engine, at):
            return _run_locked(
                session, kind, dry_run, chosen, note, at, rules, limits, actor, began
            )
    finally:
        if owns_session:
            session.close()


def _run_locked(
    session: Session,
    kind: str,
    dry_run: bool,
    policy: Policy | None,
    note: str,
    at: datetime,
    governance: Governance,
    thresholds: dict[str, float],
    actor: str,
    began: float,
) -> CycleResult:
    mode = "dry_run" if dry_run else "live"
    cycle = Cycle(started_at=at, as_of=at, mode=mode, status="running")
    try:
        session.add(cycle)
        session.flush()
        audit.append(
            session,
            actor=actor,
            action="cycle_started",
            target=kind,
            details={
                "mode": mode,
                "policy": f"{policy.name} {policy.version}" if policy else None,
                "policy_note": note,
            },
            cycle_id=cycle.id,
            now=at,
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    try:
        result = _decide_and_act(
            session, cycle, kind, dry_run, policy, note, at, governance, thresholds, actor
        )
    except BaseException as error:
        session.rollback()
        session.execute(
            update(Cycle)
            .where(Cycle.id == cycle.id)
            .values(status="failed", error=f"{type(error).__name__}: {error}", finished_at=at)
        )
        audit.append(
            session,
            actor=actor,
            action="cycle_failed",
            target=kind,
            details={"error": f"{type(error).__name__}: {error}"},
            cycle_id=cycle.id,
            now=at,
        )
        session.commit()
        raise
    result.duration_s = time.perf_counter() - began
    return result


def _decide_and_act(
    session: Session,
    cycle: Cycle,
    kind: str,
    dry_run: bool,
    policy: Policy | None,
    note: str,
    at: datetime,
    governance: Governance,
    thresholds: dict[str, float],
    actor: str,
) -> CycleResult:
    snapshot = observe(session, at)
    issues = detect(session, snapshot, sample_size=0)
    obs = snapshot.encode()
    candidates: list[_Candidate] = []
    if policy is not None:
        _replay_history(session, policy)
        decided = policy.decide(obs)
        candidates.append(
            _Candidate(
                action=decided.action_name,
                confidence=float(decided.confidence),
                source="policy",
                propensities=[float(p) for p in np.asarray(decided.propensities)],
                policy_name=policy.name,
                policy_version=str(decided.policy_version),
            )
        )
    proposed = {c.action for c in candidates}
    candidates += [
        c for c in _healing_candidates(issues, kind == "monitor") if c.action not in proposed
    ]
    kill_on, kill_reason = kill_switch_state(session)
    outcomes: list[DecisionOutcome] = []
    for candidate in candidates:
        outcome = _handle(
            session, cycle.id, candidate, obs, snapshot.kpis, at, dry_run,
            (kill_on, kill_reason), governance, thresholds, actor,
        )  # fmt: skip
        outcomes.append(outcome)
        if policy is not None and candidate.source == "policy":
            executed = outcome.verdict == Verdict.EXECUTED
            if isinstance(policy, Episodic):
                policy.record(action_index(candidate.action) if executed else NOOP)
    healed = [
        o.issue
        for o in outcomes
        if o.issue and o.verdict == Verdict.EXECUTED and o.execution_id is not None
    ]
    optimizations = [
        o.action
        for o in outcomes
        if o.execution_id is not None and o.action in actuators.SETTING_ACTIONS
    ]
    # a policy decision that matched an issue's action heals that issue too
    for o in outcomes:
        if o.source == "policy" and o.execution_id is not None:
            healed += [f"{i.kind}:{i.detail}" for i in issues if i.action == o.action and heals(i)]
    kpis = {k: float(v) for k, v in snapshot.kpis.items()}
    issue_dicts = [i.to_dict() for i in issues]
    try:
        cycle.status = "finished"
        cycle.finished_at = at
        cycle.kpis = kpis
        cycle.issues = issue_dicts
        audit.append(
            session,
            actor=actor,
            action="cycle_finished",
            target=kind,
            details={
                "issues": len(issues),
                "healed": healed,
                "optimizations": optimizations,
                "decisions": [o.decision_id for o in outcomes],
                "health": kpis.get("health_score"),
                "alignment": kpis.get("alignment_score"),
            },
            cycle_id=cycle.id,
            now=at,
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return CycleResult(
        cycle_id=cycle.id,
        kind=kind,
        mode=cycle.mode,
        as_of=at,
        duration_s=0.0,
        health_before=kpis.get("health_score", float("nan")),
        alignment_before=kpis.get("alignment_score", float("nan")),
        policy_name=policy.name if policy else "detector",
        policy_version=policy.version if policy else "1",
        policy_note=note,
        issues_found=issue_dicts,
        issues_healed=healed,
        optimizations_applied=optimizations,
        decisions=outcomes,
        kpis=kpis,
    )


def _handle(
    session: Session,
    cycle_id: int,
    candidate: _Candidate,
    obs: Any,
    kpis: dict[str, float],
    at: datetime,
    dry_run: bool,
    kill: tuple[bool, str],
    governance: Governance,
    thresholds: dict[str, float],
    actor: str,
) -> DecisionOutcome:
    """Guard one decision, record it, and execute it or hold it for approval; one
    transaction (retried once when a concurrent writer took the idempotency key)."""
    for attempt in range(2):
        try:
            outcome = _handle_once(
                session, cycle_id, candidate, obs, kpis, at, dry_run, kill, governance,
                thresholds, actor,
            )  # fmt: skip
            session.commit()
            return outcome
        except IntegrityError:
            session.rollback()
            if attempt == 1:
                raise
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _pending_approval(session: Session, action: str, at: datetime) -> int | None:
    """The id of an unexpired pending approval of ``action``, if any (one request at a time)."""
    return session.execute(
        select(Approval.id)
        .join(DecisionRecord, DecisionRecord.id == Approval.decision_id)
        .where(
            Approval.status == "pending",
            DecisionRecord.action == action,
            Approval.expires_at > at,
        )
        .limit(1)
    ).scalar_one_or_none()


def _handle_once(
    session: Session,
    cycle_id: int,
    candidate: _Candidate,
    obs: Any,
    kpis: dict[str, float],
    at: datetime,
    dry_run: bool,
    kill: tuple[bool, str],
    governance: Governance,
    thresholds: dict[str, float],
    actor: str,
) -> DecisionOutcome:
    action = candidate.action
    planned = actuators.plan(session, action, at) if action in actuators.ACTUATED else None
    context = GuardContext(
        now=at,
        dry_run=dry_run,
        kill_switch=kill[0],
        kill_reason=kill[1],
        executions=executions_by_action(session, at),
        rows=planned.rows if planned else 0,
        population=planned.population if planned else 0,
    )
    verdict: GuardVerdict = evaluate_decision(
        action_index(action), candidate.confidence, governance, thresholds, context
    )
    if verdict.verdict == Verdict.EXECUTED and planned is not None and planned.rows == 0:
        verdict = GuardVerdict(Verdict.EXECUTED, "nothing_to_do", (f"{action}: no rows to act on",))
    decision = DecisionRecord(
        cycle_id=cycle_id,
        decided_at=at,
        policy_name=candidate.policy_name,
        policy_version=candidate.policy_version,
        context_obs=[float(x) for x in obs],
        context_kpis={k: float(v) for k, v in kpis.items()},
        propensities=candidate.propensities,
        action=action,
        confidence=candidate.confidence,
        verdict=verdict.verdict.value,
        verdict_reasons=[verdict.rule, *verdict.reasons],
    )
    session.add(decision)
    session.flush()
    plan_details = planned.to_dict() if planned else {"action": action}
    audit.append(
        session,
        actor=actor,
        action="decision",
        target=action,
        details={
            "decision_id": decision.id,
            "source": candidate.source,
            "issue": candidate.issue,
            "confidence": round(candidate.confidence, 6),
            "policy": f"{candidate.policy_name} {candidate.policy_version}",
            "verdict": verdict.verdict.value,
            "rule": verdict.rule,
            "reasons": list(verdict.reasons),
            "plan": plan_details,
        },
        cycle_id=cycle_id,
        now=at,
    )
    execution_id = approval_id = None
    if verdict.verdict == Verdict.EXECUTED and planned is not None and planned.rows > 0:
        outcome = actuators.execute(
            session,
            action,
            at,
            cycle_id=cycle_id,
            actor=actor,
            decision_id=decision.id,
            planned=planned,
        )
        execution_id = outcome.execution.id
        decision.execution_id = execution_id
        if not outcome.created:
            verdict = GuardVerdict(
                Verdict.EXECUTED,
                "idempotent",
                (f"{action} on {planned.target} already executed in this cycle",),
            )
            decision.verdict_reasons = [verdict.rule, *verdict.reasons]
    elif verdict.verdict == Verdict.NEEDS_APPROVAL and dry_run:
        # approving would execute live: a dry run asks nobody
        decision.verdict_reasons = [*decision.verdict_reasons, "dry run: no approval requested"]
    elif verdict.verdict == Verdict.NEEDS_APPROVAL and (
        waiting := _pending_approval(session, action, at)
    ):
        decision.verdict_reasons = [
            *decision.verdict_reasons,
            f"approval {waiting} for {action} is already pending",
        ]
    elif verdict.verdict == Verdict.NEEDS_APPROVAL:
        approval = Approval(
            decision_id=decision.id,
            requested_at=at,
            status="pending",
            expires_at=at + APPROVAL_TTL,
        )
        session.add(approval)
        session.flush()
        approval_id = approval.id
        audit.append(
            session,
            actor=actor,
            action="approval_requested",
            target=action,
            details={"approval_id": approval.id, "decision_id": decision.id},
            cycle_id=cycle_id,
            now=at,
        )
    session.flush()
    return DecisionOutcome(
        decision_id=decision.id,
        action=action,
        source=candidate.source,
        confidence=candidate.confidence,
        verdict=verdict.verdict.value,
        rule=verdict.rule,
        reasons=verdict.reasons,
        rows=planned.rows if planned else 0,
        execution_id=execution_id,
        approval_id=approval_id,
        issue=candidate.issue,
    )


__all__ = [
    "ACTION_NAMES",
    "CHAMPION_URI",
    "CycleResult",
    "CycleRunning",
    "DecisionOutcome",
    "cycle_lock",
    "kill_switch_state",
    "monitor_and_respond",
    "resolve_policy",
    "run_full_cycle",
    "set_kill_switch",
]
