"""The High-Confidence Policy Improvement gate: refusals, and its error rate over many logs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from environment.actions import N_ACTIONS
from environment.kpis import N_OBS
from policies.gate import GateConfig, high_confidence_gate, one_sided_lower_bound
from policies.logged import BanditFeedback

EXPLORE = 0.5
NOISE = 1.0


def one_hot_rows(n: int, action: int) -> NDArray[np.float64]:
    out = np.zeros((n, N_ACTIONS))
    out[:, action] = 1.0
    return out


def gate_log(
    rng: np.random.Generator, n: int, gaps: dict[int, float]
) -> tuple[BanditFeedback, NDArray[np.float64]]:
    """The champion always picks action 0; the log is the champion with 50% uniform
    exploration. True mean reward: ``0.3 * obs[0] + gaps[a]`` (gap 0 for action 0, -0.2 for
    unlisted actions), plus N(0, 1) noise. Returns the log and the champion's distribution."""
    obs = rng.uniform(0, 1, (n, N_OBS))
    champion = one_hot_rows(n, 0)
    behaviour = (1 - EXPLORE) * champion + EXPLORE / N_ACTIONS
    actions = (rng.random(n)[:, None] > behaviour.cumsum(axis=1)).sum(axis=1)
    gap = np.array([gaps.get(a, 0.0 if a == 0 else -0.2) for a in range(N_ACTIONS)])
    rewards = 0.3 * obs[:, 0] + gap[actions] + rng.normal(0, NOISE, n)
    rows = np.arange(n)
    feedback = BanditFeedback(
        obs.astype(np.float32), actions, rewards, behaviour[rows, actions], behaviour
    )
    return feedback, champion


LOOSE = GateConfig(min_samples=100, min_ess=10.0)


def test_a_worse_challenger_is_promoted_at_most_at_rate_delta() -> None:
    """300 logs of 400 decisions, the challenger (action 1) worse by 0.02 (just below the
    champion: the hardest worse case). Promoted at most delta = 5% of the time plus a binomial
    tolerance: 3 standard deviations of a Binomial(300, 0.05) count, i.e. <= 26 of 300."""
    rng = np.random.default_rng(0)
    promoted = 0
    for rep in range(300):
        feedback, champion = gate_log(rng, 400, {1: -0.02})
        config = GateConfig(min_samples=100, min_ess=10.0, seed=rep)
        result = high_confidence_gate(feedback, champion, {"worse": one_hot_rows(400, 1)}, config)
        promoted += result.promoted
    limit = 300 * 0.05 + 3 * math.sqrt(300 * 0.05 * 0.95)
    assert promoted <= limit


def test_a_clearly_better_challenger_is_promoted_once_the_log_is_large() -> None:
    """Better by 0.5 (half a noise sd): rarely at 100 decisions, almost always at 10 000."""
    rng = np.random.default_rng(1)
    rates = {}
    for n in (100, 10_000):
        wins = 0
        for rep in range(40):
            feedback, champion = gate_log(rng, n, {2: 0.5})
            config = GateConfig(min_samples=100, min_ess=10.0, seed=rep)
            result = high_confidence_gate(
                feedback, champion, {"better": one_hot_rows(n, 2)}, config
            )
            wins += result.promoted
        rates[n] = wins / 40
    assert rates[10_000] >= 0.95
    assert rates[100] < rates[10_000]


def test_the_gate_picks_the_better_of_two_challengers() -> None:
    feedback, champion = gate_log(np.random.default_rng(2), 4000, {1: -0.3, 2: 0.5})
    result = high_confidence_gate(
        feedback,
        champion,
        {"worse": one_hot_rows(4000, 1), "better": one_hot_rows(4000, 2)},
        LOOSE,
    )
    assert result.promoted and result.candidate == "better"
    assert result.lower_bound > 0
    assert result.n_selection + result.n_test == 4000
    assert result.predicted["better"] > result.predicted["worse"]


def test_refusals_name_their_reason() -> None:
    rng = np.random.default_rng(3)
    feedback, champion = gate_log(rng, 400, {2: 0.5})
    under = high_confidence_gate(
        feedback.subset(np.arange(99)), champion[:99], {"better": one_hot_rows(99, 2)}, LOOSE
    )
    assert not under.promoted and "only 99 usable" in under.reason
    at = high_confidence_gate(
        feedback.subset(np.arange(100)), champion[:100], {"better": one_hot_rows(100, 2)}, LOOSE
    )
    assert "only" not in at.reason  # exactly min_samples: the gate looks
    big, big_champion = gate_log(rng, 10_000, {2: 0.5})  # the bound passes, the ESS (~200) not
    starved = high_confidence_gate(
        big,
        big_champion,
        {"better": one_hot_rows(10_000, 2)},
        GateConfig(min_samples=100, min_ess=1000.0),
    )
    assert not starved.promoted and "effective sample size" in starved.reason
    same = high_confidence_gate(feedback, champion, {"same": champion}, LOOSE)
    assert not same.promoted and same.candidate is None and "no solution found" in same.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delta": 0.0}, "delta=0.0"),
        ({"delta": 0.6}, "delta=0.6"),
        ({"min_samples": 3}, "min_samples=3"),
        ({"min_ess": 0.5}, "min_ess=0.5"),
        ({"selection_share": 1.0}, "selection_share=1.0"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_bad_config_is_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GateConfig(**kwargs)  # type: ignore[arg-type]


def test_the_lower_bound_by_hand() -> None:
    terms = np.array([1.0, 2.0, 3.0])  # mean 2, sd 1, t_{0.95, 2} = 2.919986
    assert one_sided_lower_bound(terms, 0.05) == pytest.approx(
        2 - 2.919986 / math.sqrt(3), abs=1e-5
    )
    with pytest.raises(ValueError, match="at least 2 terms"):
        one_sided_lower_bound(terms[:1], 0.05)
