"""The lookahead oracle: plans without touching the episode, and improves on its baseline."""

from __future__ import annotations

import numpy as np
import pytest

import environment
from environment import actions as A
from policies.evaluation import evaluate
from policies.oracle import LookaheadOracle, OracleConfig
from policies.planner import non_clairvoyant_planner
from policies.rules import RulesPolicy


def test_planning_leaves_the_environment_untouched() -> None:
    env = environment.make_env("mixed")
    obs, _ = env.reset(seed=4)
    before = env.unwrapped.get_state()
    rng_before = env.unwrapped.np_random.bit_generator.state
    oracle = LookaheadOracle(OracleConfig(horizon=12, replan_every=1, noise=True, rollouts=2))
    oracle.attach(env)
    oracle.decide(obs)
    assert env.unwrapped.get_state() == before
    assert env.unwrapped.np_random.bit_generator.state == rng_before


def test_expected_values_cover_the_candidates_only() -> None:
    env = environment.make_env("steady")
    obs, _ = env.reset(seed=0)
    oracle = LookaheadOracle(OracleConfig(horizon=12, replan_every=1))
    oracle.attach(env)
    decision = oracle.decide(obs)
    assert decision.expected_values is not None
    candidates = list(OracleConfig(horizon=12).candidates)
    assert np.isfinite(decision.expected_values[candidates]).all()
    assert A.SHIP_FEATURE not in candidates  # lands after 84 cycles: beyond the horizon
    assert decision.expected_values[decision.action] == np.nanmax(decision.expected_values)
    assert decision.confidence == 1.0  # deterministic rollouts


def test_oracle_needs_an_environment_and_single_rows() -> None:
    oracle = LookaheadOracle()
    obs = np.zeros(30, dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"call attach\(env\) first"):
        oracle.decide(obs)
    with pytest.raises(TypeError, match="plans on an autopilot/SaaSOps-v0 env"):
        oracle.attach(object())
    env = environment.make_env("steady")
    env.reset(seed=0)
    oracle.attach(env)
    with pytest.raises(ValueError, match="one observation at a time; got a batch of 2"):
        oracle.decide_batch(np.zeros((2, 30), dtype=np.float32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizon": 0}, r"OracleConfig.horizon=0"),
        ({"rollouts": 1.5}, r"OracleConfig.rollouts=1.5"),
        ({"gamma": 0.0}, r"OracleConfig.gamma=0.0"),
        ({"noise": 1}, r"OracleConfig.noise=1"),
        ({"replan_every": 0}, r"OracleConfig.replan_every=0"),
    ],
)
def test_bad_configs(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OracleConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.xfail(
    reason="issue 14: with a finite prompt pool the clairvoyant oracle (rules continuation) "
    "scores 1-2% below rules on these seeds (446/450/441/352 vs 465/456/442/359); the "
    "non-clairvoyant planner with rules and noop continuations is the reference now",
    strict=False,
)
def test_oracle_beats_its_continuation_policy() -> None:
    seeds = [0, 1]
    oracle = evaluate(LookaheadOracle(), ["steady", "mixed"], seeds, record_kpis=False)
    rules = evaluate(RulesPolicy(), ["steady", "mixed"], seeds, record_kpis=False)
    assert (oracle.returns > rules.returns).all()


@pytest.mark.slow
def test_the_planner_beats_the_rules_on_average() -> None:
    """Rules and noop continuations, blind to future shocks: above rules on the mean."""
    seeds = [0, 1]
    planner = evaluate(non_clairvoyant_planner(), ["steady", "mixed"], seeds, record_kpis=False)
    rules = evaluate(RulesPolicy(), ["steady", "mixed"], seeds, record_kpis=False)
    assert planner.returns.mean() > rules.returns.mean()


def test_the_planner_does_not_see_future_shocks() -> None:
    env = environment.make_env("mixed")
    env.reset(seed=5)
    planner = non_clairvoyant_planner()
    planner.attach(env)
    state = env.unwrapped.state.copy()  # type: ignore[attr-defined]
    assert any(shock.start > state.t for shock in state.shocks)
    belief = planner._belief(state.copy())
    assert all(shock.start <= state.t for shock in belief.shocks)
    assert planner.config.continuations == ("rules", "noop")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"continuations": ()}, r"OracleConfig.continuations=\(\)"),
        ({"continuations": ("rules", "random")}, "OracleConfig.continuations"),
        ({"clairvoyant": 1}, r"OracleConfig.clairvoyant=1"),
    ],
)
def test_bad_planner_configs(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OracleConfig(**kwargs)  # type: ignore[arg-type]
