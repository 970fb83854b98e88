"""The rules baseline: each rule fires on its breach, cooldowns and guards hold it back."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import environment
from environment import actions as A
from environment.kpis import encode
from policies.rules import RulesConfig, RulesPolicy


@pytest.fixture(scope="module")
def healthy() -> dict[str, float]:
    """KPIs with every rule quiet: targets met, hygiene clean."""
    env = environment.make_env("steady")
    _, info = env.reset(seed=0)
    kpis = dict(info["true_kpis"])
    kpis.update(
        activation_rate=0.6,
        d7_retention=0.3,
        signup_to_activation=0.45,
        conversion_rate=0.06,
        ltv_cac=5.0,
        health_score=90.0,
        data_quality_issue_rate=0.001,
        orphaned_records=100.0,
        billing_failure_rate=0.05,
        failed_payment_backlog=0.002,
        at_risk_share=0.10,
        message_pressure=0.0,
        churn_rate=0.03,
    )
    return kpis


def decide(policy: RulesPolicy, kpis: dict[str, float]) -> tuple[str, float]:
    decision = policy.decide(encode(kpis))
    return decision.action_name, decision.confidence


def test_healthy_business_gets_noop_with_full_confidence(healthy: dict[str, float]) -> None:
    assert decide(RulesPolicy(), healthy) == ("noop", pytest.approx(1.0))


@pytest.mark.parametrize(
    ("changes", "action"),
    [
        ({"failed_payment_backlog": 0.02}, "payment_retry"),
        ({"data_quality_issue_rate": 0.02}, "data_fix"),
        ({"orphaned_records": 6_000.0}, "orphan_cleanup"),
        ({"health_score": 60.0}, "scale_infra"),
        ({"at_risk_share": 0.35}, "retention_campaign"),
        ({"signup_to_activation": 0.30}, "onboarding_boost"),
        ({"d7_retention": 0.15}, "onboarding_boost"),
        ({"conversion_rate": 0.03}, "upgrade_prompt"),
        ({"ltv_cac": 2.0, "churn_rate": 0.03}, "shift_marketing"),
    ],
)
def test_each_breach_gets_its_remedy(
    healthy: dict[str, float], changes: dict[str, float], action: str
) -> None:
    name, confidence = decide(RulesPolicy(), {**healthy, **changes})
    if action == "retention_campaign":  # the roadmap rule sees the same breach against the
        assert name == "ship_feature"  # 15% target: a feature ships first, then
        policy = RulesPolicy()  # the campaign while it is in flight
        policy.record(A.SHIP_FEATURE)
        name, confidence = decide(policy, {**healthy, **changes})
    assert name == action
    assert 0.0 < confidence < 1.0


def test_the_worst_breach_wins_and_confidence_is_its_severity(
    healthy: dict[str, float],
) -> None:
    kpis = {**healthy, "failed_payment_backlog": 0.006, "data_quality_issue_rate": 0.02}
    name, confidence = decide(RulesPolicy(), kpis)
    assert name == "data_fix"  # 1 - 0.005/0.02 = 0.75 beats 1 - 0.005/0.006 = 0.17
    assert confidence == pytest.approx(0.75, abs=1e-3)


def test_no_retry_during_a_payment_outage(healthy: dict[str, float]) -> None:
    kpis = {**healthy, "failed_payment_backlog": 0.02, "billing_failure_rate": 0.5}
    name, confidence = decide(RulesPolicy(), kpis)
    assert name == "noop"
    assert confidence == pytest.approx(1.0 - (1.0 - 0.005 / 0.02), abs=1e-3)


def test_messages_are_held_while_pressure_is_high(healthy: dict[str, float]) -> None:
    kpis = {**healthy, "conversion_rate": 0.03, "message_pressure": 2.0}
    assert decide(RulesPolicy(), kpis)[0] != "upgrade_prompt"


def test_health_is_blamed_on_dirty_data_before_capacity(healthy: dict[str, float]) -> None:
    kpis = {**healthy, "health_score": 60.0, "orphaned_records": 5_000.0}
    assert decide(RulesPolicy(), kpis)[0] == "orphan_cleanup"


def test_cooldown_holds_an_action_back_then_releases_it(healthy: dict[str, float]) -> None:
    policy = RulesPolicy()
    kpis = {**healthy, "failed_payment_backlog": 0.02}
    assert decide(policy, kpis)[0] == "payment_retry"
    policy.record(A.PAYMENT_RETRY)
    cooldown = dict(policy.config.cooldowns)["payment_retry"]
    for _ in range(cooldown - 1):
        assert decide(policy, kpis)[0] == "noop"
        policy.record(A.NOOP)
    assert decide(policy, kpis)[0] == "payment_retry"
    policy.reset()
    assert decide(policy, kpis)[0] == "payment_retry"


def test_rules_read_only_the_observation(healthy: dict[str, float]) -> None:
    """A decision is a function of the observation and the cooldown memory, nothing else.

    The rules run an episode of the ``mixed`` scenario; each step's memory (a copy of the
    policy) and observation are kept. Replayed afterwards, in reverse order, on a read-only
    copy of the observation and with the environment gone, every decision is the same: a rule
    that read the environment, the clock, a global draw or the order of calls would differ.
    That the observation is read at all: changing one KPI in it changes the decision.
    """
    env = environment.make_env("mixed")
    obs, _ = env.reset(seed=3)
    policy = RulesPolicy()
    policy.reset()
    episode: list[tuple[RulesPolicy, np.ndarray, tuple[int, float]]] = []
    for _ in range(120):
        memory = copy.deepcopy(policy)
        decision = policy.decide(obs)
        episode.append((memory, obs.copy(), (decision.action, decision.confidence)))
        policy.record(decision.action)
        obs, _, terminated, truncated, _ = env.step(decision.action)
        if terminated or truncated:
            break
    env.close()
    del env
    actions = {expected[0] for _, _, expected in episode}
    assert len(actions) >= 3, "the episode must exercise several rules"
    for memory, seen, expected in reversed(episode):
        frozen = seen.copy()
        frozen.setflags(write=False)
        replayed = memory.decide(frozen)
        assert (replayed.action, replayed.confidence) == expected

    quiet = encode(healthy)
    breached = encode({**healthy, "orphaned_records": 6_000.0})
    assert RulesPolicy().decide(quiet).action == A.NOOP
    assert RulesPolicy().decide(breached).action == A.ORPHAN_CLEANUP


def test_rules_beat_noop_on_every_scenario() -> None:
    from policies.evaluation import compare, evaluate
    from policies.simple import NoopPolicy

    seeds = [0, 1]
    rules = evaluate(RulesPolicy(), environment.SCENARIO_NAMES, seeds, record_kpis=False)
    noop = evaluate(NoopPolicy(), environment.SCENARIO_NAMES, seeds, record_kpis=False)
    diff = compare(rules, noop)
    assert all(e.mean > 0 for e in diff.per_scenario.values())
    assert not rules.failed.any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation_target": 0.0}, r"RulesConfig.activation_target=0.0"),
        ({"at_risk_target": 1.5}, r"RulesConfig.at_risk_target=1.5"),
        ({"health_target": -5.0}, r"RulesConfig.health_target=-5.0"),
        ({"orphan_threshold": float("inf")}, r"RulesConfig.orphan_threshold=inf"),
        ({"cooldowns": (("payment_retry", -1),)}, r"cooldowns entry \('payment_retry', -1\)"),
        ({"cooldowns": (("teleport", 3),)}, r"cooldowns entry \('teleport', 3\)"),
        ({"cooldowns": (("noop", 3),)}, r"cooldowns entry \('noop', 3\)"),
    ],
)
def test_bad_configs_name_the_field_and_value(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RulesConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("action", [13, -1, 2.0, "noop"])
def test_record_rejects_bad_actions(action: object) -> None:
    with pytest.raises(ValueError, match="action"):
        RulesPolicy().record(action)  # type: ignore[arg-type]


def test_config_round_trips_through_a_dict() -> None:
    config = RulesConfig(orphan_threshold=900.0, cooldowns=(("data_fix", 3),))
    assert RulesConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown RulesConfig fields \['bogus'\]"):
        RulesConfig.from_dict({"bogus": 1})
    assert np.all(RulesConfig().cooldown_steps() >= 0)
