"""Self-healing: the decisions detection proposes on its own, beside the policy's, and when
an issue counts as healed.

Each detected issue whose kind is in :data:`HEALABLE_ISSUE_KINDS` proposes its remediation
action (one proposal per action) with the confidence of its severity
(:data:`SEVERITY_CONFIDENCE`); the guardrails then treat it like any other decision.

**Treated is not healed.** An executed action that addresses an issue *treats* it
(:func:`treatments`); the issue is *healed* only when a later cycle's observation no longer
detects it (:func:`resolve`). Until then the treatment is *pending*: each cycle's
``cycle_finished`` audit entry carries the pending treatments (``details["pending"]``), the next
cycle reads them back (:func:`pending_treatments`), reports the resolved ones as healed and
carries the others on (one per issue, the latest treatment kept), however many dry runs or
failed cycles come between.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from agent import actuators
from agent.detect import Issue, Severity
from agent.models import AuditLog
from environment.actions import N_ACTIONS, action_index

HEALABLE_ISSUE_KINDS = frozenset(
    {"system_health", "data_quality", "orphaned_records", "failed_payments", "users_at_risk"}
)
"""Issue kinds (of :mod:`agent.detect`) that propose a remediation action; not to be confused
with :data:`agent.guardrails.SELF_HEALING_ACTIONS`, the actions with the lower threshold."""
SEVERITY_CONFIDENCE = {
    Severity.CRITICAL: 0.97,
    Severity.HIGH: 0.92,
    Severity.MEDIUM: 0.85,
    Severity.LOW: 0.70,
}
"""Confidence of a self-healing decision: how sure detection is that acting (and paying the
action's cost) helps. With the built-in thresholds, data and payment repair (0.75) heal from
medium severity on and a retention campaign (0.80) too; a low-severity issue waits for a human
(in the closed loop, healing every small backlog daily spent the simulated business's cash)."""
DETECTOR_NAME = "detector"
DETECTOR_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A proposed decision before the guardrails: the action, how sure its proposer is, who
    proposed it (``policy`` or ``self_healing``), the propensities over every action
    (float, shape (n_actions,)), the proposer's name and version, the issue it heals, and the
    actions it could not choose with the rule that excluded each (the policy's feasibility
    mask, :func:`agent.orchestrator.feasible_actions`)."""

    action: str
    confidence: float
    source: str
    propensities: list[float]
    policy_name: str
    policy_version: str
    issue: str | None = None
    excluded: Mapping[str, str] = field(default_factory=dict)


def one_hot(action: str) -> list[float]:
    """Propensities of a deterministic proposer: 1 for ``action``, 0 elsewhere."""
    out = [0.0] * N_ACTIONS
    out[action_index(action)] = 1.0
    return out


def heals(issue: Issue) -> bool:
    """Whether an actuator addresses ``issue`` (data fixes repair emails and event types
    only: :data:`agent.actuators.FIXABLE_DEFECTS`)."""
    if issue.kind not in HEALABLE_ISSUE_KINDS or issue.action not in actuators.ACTUATED:
        return False
    return issue.kind != "data_quality" or issue.detail in actuators.FIXABLE_DEFECTS


def healing_candidates(issues: Sequence[Issue], *, only_critical: bool) -> list[Candidate]:
    """One candidate per remediation action among ``issues`` (the first, most severe, issue
    of an action sets its confidence); ``only_critical``: the monitor pass, which heals
    critical issues only."""
    seen: set[str] = set()
    out: list[Candidate] = []
    for issue in issues:  # most severe first, so each action takes its worst issue's confidence
        if not heals(issue):
            continue
        if only_critical and issue.severity is not Severity.CRITICAL:
            continue
        if issue.action in seen:
            continue
        seen.add(issue.action)
        out.append(
            Candidate(
                action=issue.action,
                confidence=SEVERITY_CONFIDENCE[issue.severity],
                source="self_healing",
                propensities=one_hot(issue.action),
                policy_name=DETECTOR_NAME,
                policy_version=DETECTOR_VERSION,
                issue=f"{issue.kind}:{issue.detail}",
            )
        )
    return out


# --- treated, then healed -----------------------------------------------------------------

FINISHED_ACTION = "cycle_finished"
"""The audit action whose details carry a cycle's pending treatments."""


class Executed(Protocol):
    """What :func:`treatments` reads of a cycle's decision outcome."""

    @property
    def action(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def verdict(self) -> str: ...
    @property
    def execution_id(self) -> int | None: ...
    @property
    def issue(self) -> str | None: ...


def issue_key(issue: Issue) -> str:
    """An issue's identity across cycles: ``kind:detail``."""
    return f"{issue.kind}:{issue.detail}"


@dataclass(frozen=True, slots=True)
class Treatment:
    """An executed action addressing an issue: the issue (``kind:detail``), the action, its
    execution, and the cycle that executed it."""

    issue: str
    action: str
    execution_id: int
    cycle_id: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "issue": self.issue,
            "action": self.action,
            "execution_id": self.execution_id,
            "cycle_id": self.cycle_id,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Treatment | None:
        """A treatment read back from an audit entry; ``None`` for anything malformed."""
        try:
            return cls(
                str(raw["issue"]), str(raw["action"]), int(raw["execution_id"]),
                int(raw["cycle_id"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None


def treatments(
    outcomes: Iterable[Executed], issues: Sequence[Issue], cycle_id: int
) -> list[Treatment]:
    """The issues this cycle's executed actions address: a self-healing decision its own
    issue, a policy decision every issue it heals (:func:`heals`) with the same action."""
    out: dict[str, Treatment] = {}
    for o in outcomes:
        if o.execution_id is None or o.verdict != "executed":
            continue
        if o.source == "policy":
            keys = [issue_key(i) for i in issues if i.action == o.action and heals(i)]
        else:
            keys = [o.issue] if o.issue else []
        for key in keys:
            out[key] = Treatment(key, o.action, o.execution_id, cycle_id)
    return list(out.values())


def pending_treatments(session: Session, before_cycle: int) -> list[Treatment]:
    """The treatments still awaiting a resolving observation, as the last cycle that finished
    before cycle ``before_cycle`` left them (empty when none did)."""
    details = session.scalars(
        select(AuditLog.details)
        .where(AuditLog.action == FINISHED_ACTION, AuditLog.cycle_id < before_cycle)
        .order_by(AuditLog.id.desc())
        .limit(1)
    ).first()
    raw = details.get("pending", []) if isinstance(details, dict) else []
    found = [Treatment.from_dict(item) for item in raw] if isinstance(raw, list) else []
    return [t for t in found if t is not None]


def resolve(
    pending: Sequence[Treatment], issues: Sequence[Issue], treated_now: Sequence[Treatment]
) -> tuple[list[Treatment], list[Treatment]]:
    """(healed, still pending): of ``pending``, those whose issue the current observation
    (``issues``) no longer detects are healed; the rest, with this cycle's own treatments
    (``treated_now``, which replace an older treatment of the same issue), stay pending."""
    present = {issue_key(i) for i in issues}
    healed = [t for t in pending if t.issue not in present]
    still: dict[str, Treatment] = {t.issue: t for t in pending if t.issue in present}
    still.update({t.issue: t for t in treated_now})
    return healed, list(still.values())
