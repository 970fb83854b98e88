"""The orchestrator: one cycle of observe, detect, decide, guard, act, audit.

:func:`run_full_cycle` is the full pass (every few hours): the policy's decision plus one
self-healing decision per detected remediation issue (:mod:`agent.healing`);
:func:`monitor_and_respond` is the lighter hourly pass that handles only critical issues. Both:

- hold the database's cycle lock (:mod:`agent.lock`), so two triggers at once cannot both
  run: the second raises :class:`~agent.lock.CycleRunning`;
- record every decision (a ``decisions`` row, with its verdict) and audit every decision,
  verdict, execution, approval request and the cycle itself;
- let the policy choose only among the actions that could execute now
  (:func:`feasible_actions`: not blocked by governance, with rows to act on), so its decision
  is its best feasible one rather than a refusal; the excluded actions and their rules are in
  the decision's audit entry;
- execute each action through :mod:`agent.actuators`; each decision (its row, its execution
  with the undo record, its audit entries) is one savepoint, so a failed decision leaves none
  of its rows; a dry run (the default) plans and audits but changes no product table.

**Transactions.** Given a :class:`~sqlalchemy.orm.Session`, a cycle works inside the caller's
transaction: it flushes the cycle row, the decisions, executions, approvals and audit entries,
and never commits; the caller commits (or rolls back, which undoes the whole cycle; recording
the failure is then the caller's). The lock is released when the caller's transaction ends.
Given an :class:`~sqlalchemy.Engine`, a cycle is its own unit of work: one transaction
committed at its end (:func:`agent.db.session_scope`), and on failure a ``failed`` cycle row
with its ``cycle_failed`` audit entry in a transaction of its own.

The agent's clock is ``as_of`` (default: now, UTC): decisions, executions and audit entries are
stamped with it, so a simulated business (:mod:`agent.twin`) runs on simulated time.

The policy, governance and thresholds are resolved once per cycle by
:func:`agent.cycle_config.resolve_cycle_config` (an argument, else the settings, else the
built-in default); when loading the policy fails, the cycle goes on with ``rules`` and records
why in its audit entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from agent import actuators, audit, lock
from agent.actuators import executions_by_action
from agent.alerts import raise_alert
from agent.approvals import request_approval
from agent.cycle_config import (
    CycleConfig,
    PolicyLoader,
    resolve_cycle_config,
    resolve_governance,
    resolve_policy,
    resolve_thresholds,
)
from agent.db import session_scope
from agent.decision_log import record_decision
from agent.detect import Issue, detect
from agent.guardrails import (
    Governance,
    GuardContext,
    GuardVerdict,
    Verdict,
    evaluate_decision,
    governance_block,
)
from agent.healing import (
    Candidate,
    healing_candidates,
    pending_treatments,
    resolve,
    treatments,
)
from agent.kill_switch import kill_switch_state, set_kill_switch
from agent.learning import LearningReport, learn
from agent.lock import LOCK_NAME, CycleRunning, cycle_lock
from agent.models import Approval, Cycle, DecisionRecord
from agent.observe import KpiSnapshot, as_utc_naive, evidence_shortfalls, observe
from agent.recent_actions import cycles_since_last
from agent.settings import CHAMPION_URI, Settings, get_settings
from environment.actions import ACTION_NAMES, N_ACTIONS, NOOP, action_index
from policies.base import Episodic, Policy, decide_within

NOTHING_TO_DO = "nothing_to_do"
"""The rule of a decision whose actuator has no row to act on: excluded from the policy's
choice (:func:`feasible_actions`), and passed without an execution when self-healing proposes
it."""
APPROVAL_TTL = timedelta(hours=48)
"""How long a held decision waits for a human before it expires."""
HISTORY_CYCLES = 42
"""Policy decisions replayed into an episodic policy (a week of 4-hour cycles)."""
FULL, MONITOR = "full", "monitor"
"""The two kinds of cycle."""


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
    start; ``issues_treated``: issues an action executed by this cycle addresses;
    ``issues_healed``: issues an earlier cycle treated that this cycle's observation no longer
    detects (treated is not healed: :mod:`agent.healing`);
    ``optimizations_applied``: optimization and decision actions executed;
    ``policy_fallback``: the policy asked for failed to load and ``rules`` decided
    (``policy_note`` says why); ``holds``: why every decision that would have executed was held
    for approval instead (empty: none was); ``learning``: the learning step's report
    (:meth:`agent.learning.LearningReport.to_dict`; empty for the monitor pass)."""

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
    issues_treated: list[str] = field(default_factory=list)
    optimizations_applied: list[str] = field(default_factory=list)
    decisions: list[DecisionOutcome] = field(default_factory=list)
    kpis: dict[str, float] = field(default_factory=dict)
    governance_source: str = ""
    thresholds_source: str = ""
    policy_fallback: bool = False
    holds: tuple[str, ...] = ()
    learning: dict[str, Any] = field(default_factory=dict)

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
            f"{len(self.issues_found)} issues; treated {self.issues_treated or 'none'} (healed "
            "once a later observation shows them resolved); healed since the last cycle "
            f"{self.issues_healed or 'none'}; optimizations {self.optimizations_applied or 'none'}",
            f"governance: {self.governance_source}; thresholds: {self.thresholds_source}",
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


@dataclass(frozen=True, slots=True)
class CycleContext:
    """Everything one cycle's decisions share: which cycle, when, in which mode, for whom,
    decided with what (``config``), the kill switch as read at the start, what was
    observed (``obs``: float32, shape (n_kpis,), the encoded snapshot; ``kpis`` by name), and
    why every decision that would execute is held for approval instead (``holds``; live mode
    only: the evidence is short, or the policy fell back with ``fallback_mode`` ``hold``)."""

    cycle_id: int
    kind: str
    at: datetime
    dry_run: bool
    actor: str
    config: CycleConfig
    kill_switch: bool
    kill_reason: str
    obs: tuple[float, ...]
    kpis: Mapping[str, float]
    holds: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        return "dry_run" if self.dry_run else "live"


# --- the entry points ---------------------------------------------------------------------


def run_full_cycle(
    target: Session | Engine,
    *,
    settings: Settings | None = None,
    dry_run: bool = True,
    as_of: datetime | None = None,
    policy: Policy | str | None = None,
    governance: Governance | str | Path | None = None,
    thresholds: Mapping[str, float] | str | Path | None = None,
    load_policy: PolicyLoader | None = None,
    actor: str = "agent",
) -> CycleResult:
    """One full cycle (see the module docstring for who commits).

    ``settings``: default :func:`~agent.settings.get_settings`; ``policy``, ``governance``,
    ``thresholds``: override the settings (a policy, spec or model URI; a governance or its
    file; a mapping or a thresholds file); ``load_policy``: how model URIs load (without one,
    the champion URI falls back to ``rules``). Raises :class:`~agent.lock.CycleRunning` when
    another cycle holds the lock.
    """
    config = resolve_cycle_config(
        settings=settings,
        policy=policy,
        governance=governance,
        thresholds=thresholds,
        load_policy=load_policy,
    )
    return _cycle(target, FULL, config, settings, dry_run=dry_run, as_of=as_of, actor=actor)


def monitor_and_respond(
    target: Session | Engine,
    *,
    settings: Settings | None = None,
    dry_run: bool = True,
    as_of: datetime | None = None,
    governance: Governance | str | Path | None = None,
    thresholds: Mapping[str, float] | str | Path | None = None,
    actor: str = "agent",
) -> CycleResult:
    """The hourly pass: observe, detect, and act only on critical issues (no policy); the
    arguments and the transactions are those of :func:`run_full_cycle`."""
    config = resolve_cycle_config(
        settings=settings, with_policy=False, governance=governance, thresholds=thresholds
    )
    return _cycle(target, MONITOR, config, settings, dry_run=dry_run, as_of=as_of, actor=actor)


def _cycle(
    target: Session | Engine,
    kind: str,
    config: CycleConfig,
    settings: Settings | None,
    *,
    dry_run: bool,
    as_of: datetime | None,
    actor: str,
) -> CycleResult:
    began = time.perf_counter()
    at = as_utc_naive(as_of)
    settings = settings or get_settings()
    if isinstance(target, Engine):
        result = _run_as_unit_of_work(
            target, kind, config, settings, at=at, dry_run=dry_run, actor=actor
        )
    else:
        result = _run_in_session(
            target, kind, config, settings, at=at, dry_run=dry_run, actor=actor
        )
    result.duration_s = time.perf_counter() - began
    return result


def _run_as_unit_of_work(
    engine: Engine,
    kind: str,
    config: CycleConfig,
    settings: Settings,
    *,
    at: datetime,
    dry_run: bool,
    actor: str,
) -> CycleResult:
    """The cycle in one transaction of its own; a failure is recorded in another."""
    try:
        with session_scope(engine) as session:
            return _run_in_session(
                session, kind, config, settings, at=at, dry_run=dry_run, actor=actor
            )
    except CycleRunning:
        raise
    except Exception as error:
        with session_scope(engine) as session:
            _record_failure(session, kind, at=at, dry_run=dry_run, actor=actor, error=error)
        raise


def _record_failure(
    session: Session, kind: str, *, at: datetime, dry_run: bool, actor: str, error: Exception
) -> None:
    """A ``failed`` cycle row and its ``cycle_failed`` audit entry (flushed)."""
    message = f"{type(error).__name__}: {error}"
    cycle = Cycle(status="failed", error=message, finished_at=at)
    _record_cycle(
        session,
        cycle,
        kind,
        at=at,
        dry_run=dry_run,
        actor=actor,
        action="cycle_failed",
        details={"error": message},
    )


def _record_cycle(
    session: Session,
    cycle: Cycle,
    kind: str,
    *,
    at: datetime,
    dry_run: bool,
    actor: str,
    action: str,
    details: dict[str, Any],
) -> Cycle:
    """Stamp ``cycle`` (its clock and mode), add it with its audit entry ``action``; flushed."""
    cycle.started_at = cycle.as_of = at
    cycle.mode = "dry_run" if dry_run else "live"
    session.add(cycle)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action=action,
        target=kind,
        details=details,
        cycle_id=cycle.id,
        now=at,
    )
    return cycle


def _run_in_session(
    session: Session,
    kind: str,
    config: CycleConfig,
    settings: Settings,
    *,
    at: datetime,
    dry_run: bool,
    actor: str,
) -> CycleResult:
    """The cycle inside the caller's transaction (flushes, never commits)."""
    engine = lock.engine_of(session)
    holder = lock.acquire(engine)
    _release_when_transaction_ends(session, engine, holder)
    cycle = _start(session, kind, config, at=at, dry_run=dry_run, actor=actor)
    snapshot = observe(session, at)
    learning = (
        learn(session, as_of=at, current_kpis=snapshot.kpis, cycle_id=cycle.id)
        if kind == FULL
        else None
    )
    kill_on, kill_reason = kill_switch_state(session, settings)
    fell_back = policy_fell_back(config)
    if fell_back:
        _alert_fallback(session, cycle.id, config.policy_note, settings=settings)
    context = CycleContext(
        cycle_id=cycle.id,
        kind=kind,
        at=at,
        dry_run=dry_run,
        actor=actor,
        config=config,
        kill_switch=kill_on,
        kill_reason=kill_reason,
        obs=tuple(float(x) for x in snapshot.encode(cycles_since_last(session, at))),
        kpis={k: float(v) for k, v in snapshot.kpis.items()},
        holds=() if dry_run else hold_reasons(snapshot, config, settings),
    )
    result = _decide_and_act(session, context, cycle, snapshot, learning)
    result.policy_fallback = fell_back
    return result


def policy_fell_back(config: CycleConfig) -> bool:
    """Whether the policy asked for failed to load and ``rules`` stands in (the note says why)."""
    return config.policy is not None and bool(config.policy_note)


def hold_reasons(snapshot: KpiSnapshot, config: CycleConfig, settings: Settings) -> tuple[str, ...]:
    """Why a live cycle holds every decision for approval: each evidence shortfall
    (:func:`agent.observe.evidence_shortfalls`), and the policy's fallback to ``rules`` when
    ``settings.fallback_mode`` is ``hold``. Empty: decisions go through the guardrails as usual."""
    reasons = list(evidence_shortfalls(snapshot))
    if policy_fell_back(config) and settings.fallback_mode == "hold":
        reasons.append(f"policy fallback: {config.policy_note} (fallback_mode hold)")
    return tuple(reasons)


def _alert_fallback(session: Session, cycle_id: int, note: str, *, settings: Settings) -> None:
    """The ``policy_fallback`` alert of a cycle whose policy fell back to ``rules`` (on the
    wall clock, like every alert: one per cooldown however fast simulated time runs)."""
    raise_alert(
        session,
        "policy_fallback",
        "policy_fallback",
        note,
        "error",
        details={"cycle_id": cycle_id},
        settings=settings,
    )


def _release_when_transaction_ends(session: Session, engine: Engine, holder: str) -> None:
    """Release the cycle lock once the session's outermost transaction commits, rolls back or
    closes: the cycle's rows are then visible (or gone) to whoever takes the lock next."""

    held = [True]  # a listener cannot be removed while its event runs: it disarms instead

    def release(_session: Session, transaction: SessionTransaction) -> None:
        if held[0] and transaction.parent is None and not transaction.nested:
            held[0] = False
            lock.release(engine, holder)

    event.listen(session, "after_transaction_end", release)


def _start(
    session: Session, kind: str, config: CycleConfig, *, at: datetime, dry_run: bool, actor: str
) -> Cycle:
    """The ``running`` cycle row and its ``cycle_started`` audit entry (flushed)."""
    policy = config.policy
    details = {
        "mode": "dry_run" if dry_run else "live",
        "policy": f"{policy.name} {policy.version}" if policy else None,
        "policy_note": config.policy_note,
        "governance": config.governance.source,
        "thresholds": config.thresholds_source,
    }
    return _record_cycle(
        session,
        Cycle(status="running"),
        kind,
        at=at,
        dry_run=dry_run,
        actor=actor,
        action="cycle_started",
        details=details,
    )


# --- deciding -----------------------------------------------------------------------------


@dataclass
class PlanBook:
    """The plans of one cycle's decisions at its time ``at``, each action planned once: the
    mask (:func:`feasible_actions`) and the guardrails of the decisions that follow read the
    same plan. A plan only reads, but an execution changes what the next plan counts, so
    :meth:`forget` clears the book after each one."""

    session: Session
    at: datetime
    plans: dict[str, actuators.Plan] = field(default_factory=dict)

    def __call__(self, action: str) -> actuators.Plan:
        if action not in self.plans:
            self.plans[action] = actuators.plan(self.session, action, self.at)
        return self.plans[action]

    def forget(self) -> None:
        self.plans.clear()


def feasible_actions(
    session: Session,
    at: datetime,
    governance: Governance,
    plans: Callable[[str], actuators.Plan] | None = None,
) -> tuple[NDArray[np.bool_], dict[str, str]]:
    """Which actions could execute at ``at`` whatever the confidence: the policy's mask.

    ``noop`` always; any other action unless governance blocks it
    (:func:`agent.guardrails.governance_block`, its plan's rows and population giving the
    blast radius) or its actuator has no row to act on (``nothing_to_do``). Returns the bool
    mask (shape (N_ACTIONS,)) and, per excluded action, the rule that excludes it. The kill
    switch, approvals and confidence are left to the guardrails: they hold or stop a decision
    the policy made, they do not change what it would choose. ``plans``: where the plans come
    from (the cycle's :class:`PlanBook`; default a fresh :func:`agent.actuators.plan` each).
    """
    plans = plans or PlanBook(session, at)
    executions = executions_by_action(session, at, governance.lookback)
    allowed = np.ones(N_ACTIONS, dtype=bool)
    excluded: dict[str, str] = {}
    for index, name in enumerate(ACTION_NAMES):
        if index == NOOP:
            continue
        excluded_by = _infeasible(plans, name, at, governance, executions)
        if excluded_by is not None:
            allowed[index] = False
            excluded[name] = excluded_by
    return allowed, excluded


def _infeasible(
    plans: Callable[[str], actuators.Plan],
    name: str,
    at: datetime,
    governance: Governance,
    executions: Mapping[str, Sequence[datetime]],
) -> str | None:
    """The rule that excludes ``name`` now, or None. The rules that need no plan are asked
    first (a plan can cost a scan), the blast radius and ``nothing_to_do`` with the plan."""
    pacing = GuardContext(now=at, executions=executions)  # no rows: blast radius cannot fire
    blocked = governance_block(name, governance, pacing)
    if blocked is not None:
        return blocked.rule
    planned = plans(name)
    sized = replace(pacing, rows=planned.rows, population=planned.population)
    blocked = governance_block(name, governance, sized)
    if blocked is not None:
        return blocked.rule
    return NOTHING_TO_DO if planned.rows == 0 else None


def _policy_candidate(
    session: Session,
    policy: Policy,
    context: CycleContext,
    obs: NDArray[np.float32],
    plans: PlanBook,
) -> Candidate:
    """The policy's decision on ``obs`` among the feasible actions, after replaying its
    recent history."""
    _replay_history(session, policy)
    allowed, excluded = feasible_actions(session, context.at, context.config.governance, plans)
    decided = decide_within(policy, obs, allowed)
    return Candidate(
        action=decided.action_name,
        confidence=float(decided.confidence),
        source="policy",
        propensities=[float(p) for p in np.asarray(decided.propensities)],
        policy_name=policy.name,
        policy_version=str(decided.policy_version),
        excluded=excluded,
    )


def _candidates(
    session: Session,
    context: CycleContext,
    snapshot: KpiSnapshot,
    issues: list[Issue],
    plans: PlanBook,
) -> list[Candidate]:
    """The policy's candidate (full cycles) first, then self-healing for other actions."""
    policy = context.config.policy
    obs = np.asarray(context.obs, dtype=np.float32)
    out = [] if policy is None else [_policy_candidate(session, policy, context, obs, plans)]
    proposed = {c.action for c in out}
    healing = healing_candidates(issues, only_critical=context.kind == MONITOR)
    return out + [c for c in healing if c.action not in proposed]


def _decide_and_act(
    session: Session,
    context: CycleContext,
    cycle: Cycle,
    snapshot: KpiSnapshot,
    learning: LearningReport | None,
) -> CycleResult:
    issues = detect(session, snapshot, sample_size=0)
    policy = context.config.policy
    outcomes: list[DecisionOutcome] = []
    plans = PlanBook(session, context.at)
    for candidate in _candidates(session, context, snapshot, issues, plans):
        outcome = _handle(session, context, candidate, plans)
        outcomes.append(outcome)
        if isinstance(policy, Episodic) and candidate.source == "policy":
            executed = outcome.verdict == Verdict.EXECUTED
            policy.record(action_index(candidate.action) if executed else NOOP)
    treated = treatments(outcomes, issues, cycle.id)
    healed_now, pending = resolve(pending_treatments(session, cycle.id), issues, treated)
    healed = [t.issue for t in healed_now]
    optimizations = [
        o.action
        for o in outcomes
        if o.execution_id is not None and o.action in actuators.SETTING_ACTIONS
    ]
    kpis = dict(context.kpis)
    issue_dicts = [i.to_dict() for i in issues]
    learned = learning.to_dict() if learning is not None else {}
    cycle.status = "finished"
    cycle.finished_at = context.at
    cycle.kpis = kpis
    cycle.issues = issue_dicts
    audit.append(
        session,
        actor=context.actor,
        action="cycle_finished",
        target=context.kind,
        details={
            "issues": len(issues),
            "healed": [t.to_dict() for t in healed_now],
            "treated": [t.to_dict() for t in treated],
            "pending": [t.to_dict() for t in pending],
            "optimizations": optimizations,
            "decisions": [o.decision_id for o in outcomes],
            "health": kpis.get("health_score"),
            "alignment": kpis.get("alignment_score"),
            "policy_fallback": policy_fell_back(context.config),
            "policy_note": context.config.policy_note,
            "holds": list(context.holds),
            "learning": learned,
        },
        cycle_id=cycle.id,
        now=context.at,
    )
    session.flush()
    return CycleResult(
        cycle_id=cycle.id,
        kind=context.kind,
        mode=context.mode,
        as_of=context.at,
        duration_s=0.0,
        health_before=kpis.get("health_score", float("nan")),
        alignment_before=kpis.get("alignment_score", float("nan")),
        policy_name=policy.name if policy else "detector",
        policy_version=policy.version if policy else "1",
        policy_note=context.config.policy_note,
        issues_found=issue_dicts,
        issues_healed=healed,
        issues_treated=[t.issue for t in treated],
        optimizations_applied=optimizations,
        decisions=outcomes,
        kpis=kpis,
        governance_source=context.config.governance.source,
        thresholds_source=context.config.thresholds_source,
        holds=context.holds,
        learning=learned,
    )


def _handle(
    session: Session, context: CycleContext, candidate: Candidate, plans: PlanBook
) -> DecisionOutcome:
    """Guard one decision, record it, and execute it or hold it for approval, in one
    savepoint (retried once when a concurrent writer took the idempotency key)."""
    for attempt in range(2):
        try:
            with session.begin_nested():
                return _handle_once(session, context, candidate, plans)
        except IntegrityError:
            if attempt == 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _handle_once(
    session: Session, context: CycleContext, candidate: Candidate, plans: PlanBook
) -> DecisionOutcome:
    action, at, actor, cycle_id = candidate.action, context.at, context.actor, context.cycle_id
    planned = plans(action) if action in actuators.ACTUATED else None
    guard_context = GuardContext(
        now=at,
        dry_run=context.dry_run,
        kill_switch=context.kill_switch,
        kill_reason=context.kill_reason,
        executions=executions_by_action(session, at, context.config.governance.lookback),
        rows=planned.rows if planned else 0,
        population=planned.population if planned else 0,
    )
    verdict: GuardVerdict = evaluate_decision(
        action_index(action),
        candidate.confidence,
        context.config.governance,
        context.config.thresholds,
        guard_context,
    )
    if verdict.verdict == Verdict.EXECUTED and planned is not None and planned.rows == 0:
        verdict = GuardVerdict(Verdict.EXECUTED, NOTHING_TO_DO, (f"{action}: no rows to act on",))
    if context.holds and verdict.verdict == Verdict.EXECUTED and planned and planned.rows > 0:
        verdict = GuardVerdict(Verdict.NEEDS_APPROVAL, "held", context.holds)
    decision = record_decision(
        session,
        source=candidate.source,
        cycle_id=cycle_id,
        decided_at=at,
        policy_name=candidate.policy_name,
        policy_version=candidate.policy_version,
        obs=context.obs,
        kpis=context.kpis,
        probabilities=candidate.propensities,
        proposed_action=action,
        confidence=candidate.confidence,
        verdict=verdict.verdict,
        reasons=[verdict.rule, *verdict.reasons],
    )
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
            "verdict": verdict.verdict,
            "rule": verdict.rule,
            "reasons": list(verdict.reasons),
            "plan": plan_details,
            **({"excluded": dict(candidate.excluded)} if candidate.excluded else {}),
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
        plans.forget()  # what executed changes what the next plan counts
        execution_id = outcome.execution.id
        decision.execution_id = execution_id
        if not outcome.created:
            verdict = GuardVerdict(
                Verdict.EXECUTED,
                "idempotent",
                (f"{action} on {planned.target} already executed in this cycle",),
            )
            decision.verdict_reasons = [verdict.rule, *verdict.reasons]
    elif verdict.verdict == Verdict.NEEDS_APPROVAL and context.dry_run:
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
        approval = request_approval(
            session, decision, planned, at=at, expires_at=at + APPROVAL_TTL, actor=actor
        )
        approval_id = approval.id
    session.flush()
    return DecisionOutcome(
        decision_id=decision.id,
        action=action,
        source=candidate.source,
        confidence=candidate.confidence,
        verdict=verdict.verdict,
        rule=verdict.rule,
        reasons=verdict.reasons,
        rows=planned.rows if planned else 0,
        execution_id=execution_id,
        approval_id=approval_id,
        issue=candidate.issue,
    )


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


__all__ = [
    "APPROVAL_TTL",
    "CHAMPION_URI",
    "LOCK_NAME",
    "CycleContext",
    "CycleResult",
    "CycleRunning",
    "DecisionOutcome",
    "cycle_lock",
    "executions_by_action",
    "kill_switch_state",
    "monitor_and_respond",
    "resolve_governance",
    "resolve_policy",
    "resolve_thresholds",
    "run_full_cycle",
    "set_kill_switch",
]
