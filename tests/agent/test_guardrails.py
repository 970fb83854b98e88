"""Guardrails, table-driven: every rule, every verdict, and the governance file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.guardrails import (
    ActionRule,
    Governance,
    GovernanceError,
    GuardContext,
    Verdict,
    default_thresholds,
    evaluate_decision,
    load_governance,
    parse_governance,
)
from agent.kill_switch import KILL_SWITCH_ENV
from agent.settings import Settings
from environment.actions import action_index

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOURS = timedelta(hours=1)


def ctx(**changes: object) -> GuardContext:
    base: dict[str, object] = {"now": NOW, "dry_run": False}
    base.update(changes)
    return GuardContext(**base)  # type: ignore[arg-type]


STRICT = Governance(
    rules={
        **Governance().rules,
        "data_fix": ActionRule(max_per_day=2, cooldown_hours=3, max_rows=100, max_share=0.5),
        "ship_feature": ActionRule(allowed=False),
    }
)

CASES = [
    # (id, action, confidence, context, verdict, rule)
    ("noop passes even when paused", "noop", 0.0, ctx(kill_switch=True), Verdict.EXECUTED, "noop"),
    ("kill switch", "data_fix", 1.0, ctx(kill_switch=True), Verdict.BLOCKED, "kill_switch"),
    ("not allowed", "ship_feature", 1.0, ctx(), Verdict.BLOCKED, "governance.allowed"),
    (
        "daily limit",
        "data_fix",
        1.0,
        ctx(executions={"data_fix": [NOW - 20 * HOURS, NOW - 10 * HOURS]}),
        Verdict.BLOCKED,
        "governance.max_per_day",
    ),
    (
        "old executions do not count",
        "data_fix",
        1.0,
        ctx(executions={"data_fix": [NOW - 30 * HOURS, NOW - 25 * HOURS]}),
        Verdict.EXECUTED,
        "passed",
    ),
    (
        "cooldown",
        "data_fix",
        1.0,
        ctx(executions={"data_fix": [NOW - 2 * HOURS]}),
        Verdict.BLOCKED,
        "governance.cooldown",
    ),
    ("rows", "data_fix", 1.0, ctx(rows=101), Verdict.BLOCKED, "governance.blast_radius"),
    (
        "share",
        "data_fix",
        1.0,
        ctx(rows=60, population=100),
        Verdict.BLOCKED,
        "governance.blast_radius",
    ),
    ("share at limit", "data_fix", 1.0, ctx(rows=50, population=100), Verdict.EXECUTED, "passed"),
    (
        "prices need a human",
        "price_increase",
        1.0,
        ctx(),
        Verdict.NEEDS_APPROVAL,
        "governance.requires_approval",
    ),
    ("low confidence", "data_fix", 0.74, ctx(), Verdict.NEEDS_APPROVAL, "confidence"),
    ("self-healing threshold", "data_fix", 0.75, ctx(), Verdict.EXECUTED, "passed"),
    (
        "remediation threshold",
        "retention_campaign",
        0.79,
        ctx(),
        Verdict.NEEDS_APPROVAL,
        "confidence",
    ),
    ("dry run", "data_fix", 0.9, ctx(dry_run=True), Verdict.DRY_RUN, "dry_run"),
    (
        "dry run is checked last",
        "data_fix",
        0.5,
        ctx(dry_run=True),
        Verdict.NEEDS_APPROVAL,
        "confidence",
    ),
    ("live and confident", "retention_campaign", 0.95, ctx(), Verdict.EXECUTED, "passed"),
]


@pytest.mark.parametrize(
    ("action", "confidence", "context", "verdict", "rule"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_guardrail_table(
    action: str, confidence: float, context: GuardContext, verdict: Verdict, rule: str
) -> None:
    result = evaluate_decision(
        action_index(action), confidence, STRICT, default_thresholds(), context
    )
    assert (result.verdict, result.rule) == (verdict, rule)
    assert result.reasons


@pytest.mark.parametrize(
    ("action", "confidence", "message"),
    [
        (-1, 0.9, "invalid action -1"),
        (13, 0.9, "invalid action 13"),
        (2, float("nan"), "confidence=nan must be a number in"),
        (2, 1.5, "confidence=1.5 must be a number in"),
        (2, -0.1, "confidence=-0.1 must be a number in"),
    ],
)
def test_bad_decisions_are_rejected(action: int, confidence: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_decision(action, confidence, STRICT, default_thresholds(), ctx())


def test_thresholds_file_overrides_defaults() -> None:
    thresholds = {**default_thresholds(), "data_fix": 0.95}
    result = evaluate_decision(action_index("data_fix"), 0.9, STRICT, thresholds, ctx())
    assert result.verdict is Verdict.NEEDS_APPROVAL
    assert "0.950" in result.reasons[0]


def test_kill_switch_reason_is_reported() -> None:
    result = evaluate_decision(
        action_index("data_fix"), 1.0, STRICT, {}, ctx(kill_switch=True, kill_reason="incident 42")
    )
    assert result.reasons == ("paused: incident 42",)


@pytest.mark.parametrize(
    ("value", "on"), [("1", True), ("ON", True), ("true", True), ("0", False), ("off", False)]
)
def test_kill_switch_environment_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, on: bool
) -> None:
    monkeypatch.setenv(KILL_SWITCH_ENV, value)
    assert Settings().kill_switch is on


def test_governance_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "governance.yaml"
    path.write_text(
        "version: 1\n"
        "defaults:\n"
        "  max_per_day: 3\n"
        "  max_share: null\n"
        "actions:\n"
        "  ship_feature: {allowed: false}\n"
        "  data_fix:\n"
        "    max_rows: 10\n"
    )
    governance = load_governance(path)
    assert governance.rule("data_fix") == ActionRule(
        max_per_day=3, cooldown_hours=12.0, max_rows=10, max_share=None
    )
    assert not governance.rule("ship_feature").allowed
    assert governance.rule("price_decrease").requires_approval
    assert governance.rule("retention_campaign").max_per_day == 3  # the file's defaults win
    assert governance.rule("retention_campaign").cooldown_hours == 168.0  # built in
    assert governance.rule("price_increase").cooldown_hours == 168.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "actions:\n  data_fix:\n    max_rows: ten\n",
            r"g.yaml:3: actions.data_fix.max_rows='ten'",
        ),
        ("version: 1\nfoo: 1\n", r"g.yaml:2: unknown key 'foo'"),
        ("actions:\n  nuke: {}\n", r"g.yaml:2: unknown action 'nuke'; allowed"),
        ("defaults:\n  max_share: 2\n", r"g.yaml:2: defaults: max_share=2 must be in \[0, 1\]"),
        ("defaults: [1, 2]\n", r"g.yaml:1: defaults must be a mapping"),
        ("a: [\n", r"g.yaml:\d+: not valid YAML"),
        ("defaults:\n  speed: 3\n", r"g.yaml:2: unknown setting defaults.speed"),
        ("defaults:\n  allowed: 1\n", r"defaults.allowed=1 has the wrong type"),
        ("version: 2\n", r"g.yaml:1: version must be 1"),
        ("actions:\n  data_fix: {}\n  data_fix: {}\n", r"g.yaml:3: duplicate key 'data_fix'"),
    ],
)
def test_malformed_governance_names_the_line(text: str, message: str) -> None:
    with pytest.raises(GovernanceError, match=message):
        parse_governance(text, source="g.yaml")


def test_built_in_limits_space_out_messages_and_need_humans_for_prices() -> None:
    rules = Governance().rules
    assert rules["retention_campaign"].cooldown_hours >= 7 * 24
    assert rules["upgrade_prompt"].cooldown_hours >= 7 * 24
    assert rules["price_increase"].requires_approval
    assert rules["price_decrease"].requires_approval
    week_later = ctx(executions={"retention_campaign": [NOW - 100 * HOURS]})
    verdict = evaluate_decision(
        action_index("retention_campaign"), 1.0, Governance(), {}, week_later
    )
    assert verdict.rule == "governance.cooldown"


def test_missing_governance_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_governance(tmp_path / "nope.yaml")
