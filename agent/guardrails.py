"""Guardrails: whether a decision may execute, as pure functions over plain values.

No database session, MLflow or FastAPI here: the orchestrator gathers the facts (kill switch,
recent executions, rows a plan would touch) into a :class:`GuardContext`, and
:func:`evaluate_decision` answers with a :class:`GuardVerdict` naming the rule that decided.

Rules apply in this order; the first that fires decides:

1. ``kill_switch`` — the switch is on (:mod:`agent.kill_switch`: a Setting, or
   ``AUTOPILOT_KILL_SWITCH``): ``blocked``, with the reason.
2. ``governance.*`` — from the governance file (:func:`load_governance`):
   ``allowed`` (the action is not allowed: ``blocked``), ``max_per_day`` (executions in the
   trailing 24 h: ``blocked``), ``cooldown`` (too soon after the last execution: ``blocked``),
   ``blast_radius`` (the plan touches more rows than ``max_rows`` or more than ``max_share`` of
   the population: ``blocked``), ``requires_approval`` (always needs a human, e.g. prices:
   ``needs_approval``).
3. ``confidence`` — below the action's threshold: ``needs_approval``. Thresholds default to
   0.75 for self-healing actions (data and payment repair, infrastructure) and 0.80 for every
   other automatic action, and are overridden by the file ``autopilot thresholds`` writes.
4. ``dry_run`` — the default everywhere: the plan is recorded, nothing changes: ``dry_run``.

Otherwise the verdict is ``executed`` (rule ``passed``). ``noop`` decisions always pass
(rule ``noop``): there is nothing to guard.

Governance file (YAML)::

    version: 1
    defaults:              # apply to every action unless overridden
      allowed: true
      requires_approval: false
      max_per_day: 6       # executions in any trailing 24 h; null = unlimited
      cooldown_hours: 4    # minimum time between two executions of the action
      max_rows: 50000      # blast radius, absolute; null = unlimited
      max_share: 0.25      # blast radius, share of the population the action targets
    actions:
      price_increase: {requires_approval: true, max_per_day: 1, cooldown_hours: 168}
      ship_feature: {allowed: false}

Every action starts from :data:`BUILT_IN_LIMITS` (a campaign or prompt at most weekly, one
retry round a day, engineering actions one at a time, prices only with a human and weekly);
the file's ``defaults`` then apply to every action, and its ``actions`` entries on top.

A malformed file is rejected with the file, line and what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from environment.actions import ACTION_NAMES, NOOP, PACING, check_action

SELF_HEALING_ACTIONS = frozenset({"data_fix", "orphan_cleanup", "payment_retry", "scale_infra"})
SELF_HEALING_THRESHOLD = 0.75
AUTO_REMEDIATION_THRESHOLD = 0.80


class Verdict(StrEnum):
    """What happened to a decision."""

    EXECUTED = "executed"
    DRY_RUN = "dry_run"
    NEEDS_APPROVAL = "needs_approval"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The outcome of the guardrails: the verdict, the rule that decided, and why."""

    verdict: Verdict
    rule: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ActionRule:
    """Governance for one action; see the module docstring for each field."""

    allowed: bool = True
    requires_approval: bool = False
    max_per_day: int | None = 6
    cooldown_hours: float = 4.0
    max_rows: int | None = 50_000
    max_share: float | None = 0.25

    def __post_init__(self) -> None:
        if self.max_per_day is not None and self.max_per_day < 0:
            raise ValueError(f"max_per_day={self.max_per_day} must be >= 0 or null")
        if not (math.isfinite(self.cooldown_hours) and self.cooldown_hours >= 0):
            raise ValueError(f"cooldown_hours={self.cooldown_hours} must be a number >= 0")
        if self.max_rows is not None and self.max_rows < 0:
            raise ValueError(f"max_rows={self.max_rows} must be >= 0 or null")
        if self.max_share is not None and not 0.0 <= self.max_share <= 1.0:
            raise ValueError(f"max_share={self.max_share} must be in [0, 1] or null")


BUILT_IN_LIMITS: dict[str, dict[str, Any]] = {
    name: {
        "max_per_day": pacing.max_per_day,
        "cooldown_hours": pacing.cooldown_hours,
        **({"requires_approval": True} if pacing.requires_approval else {}),
    }
    for name, pacing in PACING.items()
}
"""Per-action limits applied on top of the defaults unless the governance file sets the
action itself: the safety floors of :data:`environment.actions.PACING`."""


def _default_rules(base: ActionRule | None = None) -> dict[str, ActionRule]:
    """``base`` (or the defaults) for every action, with :data:`BUILT_IN_LIMITS` on top."""
    base = base or ActionRule()
    rules = dict.fromkeys(ACTION_NAMES, base)
    for name, limits in BUILT_IN_LIMITS.items():
        rules[name] = replace(base, **limits)
    return rules


@dataclass(frozen=True, slots=True)
class Governance:
    """Per-action rules for every action of the catalogue."""

    rules: Mapping[str, ActionRule] = field(default_factory=_default_rules)
    source: str = "built-in defaults"

    @property
    def lookback(self) -> timedelta:
        """How far back the guardrails must see executions: the longest cooldown, and at
        least the 24 h of ``max_per_day``."""
        hours = max((rule.cooldown_hours for rule in self.rules.values()), default=0.0)
        return timedelta(hours=max(hours, 24.0))

    def rule(self, action: str) -> ActionRule:
        """The rule for ``action``; ``ValueError`` naming the allowed actions."""
        try:
            return self.rules[action]
        except KeyError:
            raise ValueError(f"unknown action {action!r}; allowed: {list(ACTION_NAMES)}") from None


def default_threshold(action: str) -> float:
    """The seed's confidence threshold: 0.75 for self-healing actions, 0.80 otherwise."""
    return SELF_HEALING_THRESHOLD if action in SELF_HEALING_ACTIONS else AUTO_REMEDIATION_THRESHOLD


def default_thresholds() -> dict[str, float]:
    """:func:`default_threshold` for every action."""
    return {name: default_threshold(name) for name in ACTION_NAMES}


@dataclass(frozen=True, slots=True)
class GuardContext:
    """The facts the guardrails need about now.

    - ``executions``: per action, the times of its earlier executions (any order).
    - ``rows``: rows or users the planned execution would touch; ``population``: how many the
      action could touch in all (the base of ``max_share``; 0 when not applicable).
    """

    now: datetime
    dry_run: bool = True
    kill_switch: bool = False
    kill_reason: str = ""
    executions: Mapping[str, Sequence[datetime]] = field(default_factory=dict)
    rows: int = 0
    population: int = 0


def evaluate_decision(
    action: int,
    confidence: float,
    governance: Governance,
    thresholds: Mapping[str, float],
    context: GuardContext,
) -> GuardVerdict:
    """Apply the guardrails, in order, to one decision (see the module docstring).

    Raises ``ValueError`` for an action outside the catalogue or a confidence that is not a
    number in [0, 1]: a NaN must never slip past the threshold comparison.
    """
    name = ACTION_NAMES[check_action(action)]
    if isinstance(confidence, bool) or not (
        isinstance(confidence, int | float) and 0.0 <= confidence <= 1.0
    ):
        raise ValueError(f"confidence={confidence!r} must be a number in [0, 1]")
    if action == NOOP:
        return GuardVerdict(Verdict.EXECUTED, "noop", ("noop: nothing to execute",))
    if context.kill_switch:
        reason = context.kill_reason or "kill switch is on"
        return GuardVerdict(Verdict.BLOCKED, "kill_switch", (f"paused: {reason}",))
    rule = governance.rule(name)
    blocked = governance_block(name, governance, context)
    if blocked is not None:
        return blocked
    if rule.requires_approval:
        return GuardVerdict(
            Verdict.NEEDS_APPROVAL,
            "governance.requires_approval",
            (f"{name} always needs a human ({governance.source})",),
        )
    threshold = thresholds.get(name, default_threshold(name))
    if confidence < threshold:
        return GuardVerdict(
            Verdict.NEEDS_APPROVAL,
            "confidence",
            (f"confidence {confidence:.3f} below the {name} threshold {threshold:.3f}",),
        )
    if context.dry_run:
        return GuardVerdict(
            Verdict.DRY_RUN, "dry_run", (f"dry run: {name} would touch {context.rows} rows",)
        )
    return GuardVerdict(Verdict.EXECUTED, "passed", ("every guardrail passed",))


def governance_block(
    name: str, governance: Governance, context: GuardContext
) -> GuardVerdict | None:
    """The first governance rule that blocks ``name`` in ``context``, or None: the refusals
    no confidence and no approver can lift (``allowed``, ``max_per_day``, ``cooldown``,
    ``blast_radius``). The cycle asks it for every action before its policy decides, so the
    policy chooses among what could execute (:func:`agent.orchestrator.feasible_actions`)."""
    rule = governance.rule(name)
    if not rule.allowed:
        return _blocked("governance.allowed", f"{name} is not allowed by governance")
    times = sorted(context.executions.get(name, ()))
    recent = [t for t in times if context.now - t < timedelta(hours=24)]
    if rule.max_per_day is not None and len(recent) >= rule.max_per_day:
        return _blocked(
            "governance.max_per_day",
            f"{name} already executed {len(recent)} times in 24 h (max {rule.max_per_day})",
        )
    if times and context.now - times[-1] < timedelta(hours=rule.cooldown_hours):
        waited = (context.now - times[-1]).total_seconds() / 3600
        return _blocked(
            "governance.cooldown",
            f"{name} last executed {waited:.1f} h ago (cooldown {rule.cooldown_hours:g} h)",
        )
    if rule.max_rows is not None and context.rows > rule.max_rows:
        return _blocked(
            "governance.blast_radius",
            f"{name} would touch {context.rows} rows (max {rule.max_rows})",
        )
    if (
        rule.max_share is not None
        and context.population > 0
        and context.rows / context.population > rule.max_share
    ):
        share = context.rows / context.population
        return _blocked(
            "governance.blast_radius",
            f"{name} would touch {share:.1%} of {context.population} (max {rule.max_share:.0%})",
        )
    return None


def _blocked(rule: str, reason: str) -> GuardVerdict:
    return GuardVerdict(Verdict.BLOCKED, rule, (reason,))


# --- the governance file ------------------------------------------------------------------


class GovernanceError(ValueError):
    """A malformed governance file; the message names the file, the line and the problem."""


_RULE_FIELDS = {f.name: f for f in fields(ActionRule)}


def load_governance(path: str | Path) -> Governance:
    """Read and validate a governance file (see the module docstring for its schema)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"governance file {path} does not exist") from None
    return parse_governance(text, source=str(path))


def parse_governance(text: str, source: str = "<governance>") -> Governance:
    """Validate governance YAML ``text``; errors say ``source:line: problem``."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else "?"
        raise GovernanceError(f"{source}:{line}: not valid YAML: {error}") from None
    if root is None:
        return Governance(source=source)
    top = _mapping(root, source, "the file")
    unknown = set(top) - {"version", "defaults", "actions"}
    if unknown:
        key = sorted(unknown)[0]
        raise GovernanceError(
            f"{source}:{_line(top[key][0])}: unknown key {key!r}; allowed: version, defaults, "
            "actions"
        )
    if "version" in top and _scalar(top["version"][1]) != 1:
        raise GovernanceError(f"{source}:{_line(top['version'][1])}: version must be 1")
    defaults: dict[str, Any] = {}
    if "defaults" in top:
        defaults = _changes(top["defaults"][1], ActionRule(), source, "defaults")
    rules = {name: replace(rule, **defaults) for name, rule in _default_rules().items()}
    if "actions" in top:
        actions = _mapping(top["actions"][1], source, "actions")
        for name, (key_node, value_node) in actions.items():
            if name not in ACTION_NAMES:
                raise GovernanceError(
                    f"{source}:{_line(key_node)}: unknown action {name!r}; allowed: "
                    f"{list(ACTION_NAMES)}"
                )
            changes = _changes(value_node, rules[name], source, f"actions.{name}")
            rules[name] = replace(rules[name], **changes)
    return Governance(rules=rules, source=source)


def _changes(node: yaml.Node, base: ActionRule, source: str, where: str) -> dict[str, Any]:
    """The settings of a mapping node, checked by applying them to ``base``."""
    entries = _mapping(node, source, where)
    changes: dict[str, Any] = {}
    for key, (key_node, value_node) in entries.items():
        if key not in _RULE_FIELDS:
            raise GovernanceError(
                f"{source}:{_line(key_node)}: unknown setting {where}.{key}; allowed: "
                f"{sorted(_RULE_FIELDS)}"
            )
        value = _scalar(value_node)
        if not _type_ok(key, value):
            raise GovernanceError(
                f"{source}:{_line(value_node)}: {where}.{key}={value!r} has the wrong type; "
                f"expected {_RULE_FIELDS[key].type}"
            )
        changes[key] = value
    try:
        replace(base, **changes)
    except ValueError as error:
        raise GovernanceError(f"{source}:{_line(node)}: {where}: {error}") from None
    return changes


def _type_ok(key: str, value: object) -> bool:
    if key in ("allowed", "requires_approval"):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if value is None:
        return key in ("max_per_day", "max_rows", "max_share")
    if key in ("max_per_day", "max_rows"):
        return isinstance(value, int)
    return isinstance(value, int | float)


def _mapping(node: yaml.Node, source: str, where: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise GovernanceError(f"{source}:{_line(node)}: {where} must be a mapping")
    entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = str(_scalar(key_node))
        if key in entries:
            raise GovernanceError(f"{source}:{_line(key_node)}: duplicate key {key!r} in {where}")
        entries[key] = (key_node, value_node)
    return entries


def _scalar(node: yaml.Node) -> Any:
    """The Python value of a node, by the rules of ``yaml.safe_load``."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1
