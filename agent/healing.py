"""Self-healing: the decisions detection proposes on its own, beside the policy's.

Each detected issue whose kind is in :data:`HEALABLE_ISSUE_KINDS` proposes its remediation
action (one proposal per action) with the confidence of its severity
(:data:`SEVERITY_CONFIDENCE`); the guardrails then treat it like any other decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent import actuators
from agent.detect import Issue, Severity
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
    (float, shape (n_actions,)), the proposer's name and version, and the issue it heals."""

    action: str
    confidence: float
    source: str
    propensities: list[float]
    policy_name: str
    policy_version: str
    issue: str | None = None


def one_hot(action: str) -> list[float]:
    """Propensities of a deterministic proposer: 1 for ``action``, 0 elsewhere."""
    out = [0.0] * N_ACTIONS
    out[action_index(action)] = 1.0
    return out


def heals(issue: Issue) -> bool:
    """Whether an actuator addresses ``issue`` (data fixes repair emails only)."""
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
