"""Paired evaluation: statistics, pairing, online learning, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import environment
from environment.kpis import N_KPIS
from policies.bandits import LinUCBBandit
from policies.evaluation import (
    compare,
    evaluate,
    fit_online,
    mean_ci,
    stratified_ci,
    t_quantile,
)
from policies.rules import RulesPolicy
from policies.simple import NoopPolicy, RandomPolicy


@pytest.mark.parametrize(
    ("df", "expected"),
    [
        (1, 12.7062),
        (2, 4.3027),
        (3, 3.1824),
        (5, 2.5706),
        (9, 2.2622),
        (29.5, 2.0437),
        (30, 2.0423),
        (120, 1.9799),
        (math.inf, 1.95996),
    ],
)
def test_t_quantile_matches_tables(df: float, expected: float) -> None:
    # the tables print four decimals (five for the normal): half a unit in the last place
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-5)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=5e-5)


@pytest.mark.parametrize("df", [1.0, 1.5, 2.0, 7.3, 29.9, 30.0, 500.0])
@pytest.mark.parametrize("p", [0.001, 0.025, 0.5, 0.9, 0.975])
def test_t_quantile_is_scipy_stats(df: float, p: float) -> None:
    assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("p", "df", "match"),
    [
        (0.0, 3.0, r"p=0\.0 must be in \(0, 1\)"),
        (1.0, 3.0, r"p=1\.0 must be in \(0, 1\)"),
        (0.5, 0.999, r"df=0\.999 must be >= 1"),  # df=1.0 itself is in the scipy test
        (0.5, math.nan, r"df=nan must be >= 1"),
    ],
)
def test_t_quantile_rejects_bad_levels_and_degrees(p: float, df: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        t_quantile(p, df)


def test_mean_ci_and_stratified_ci() -> None:
    estimate = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert estimate.mean == 2.5
    assert estimate.half_width == pytest.approx(3.1824 * np.std([1, 2, 3, 4], ddof=1) / 2, 1e-3)
    strata = np.array([[1.0, 3.0], [10.0, 14.0]])
    overall = stratified_ci(strata)
    assert overall.mean == pytest.approx((2.0 + 12.0) / 2)
    assert overall.low < overall.mean < overall.high
    assert math.isnan(mean_ci([5.0]).half_width)


def test_the_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(2_000):
        estimate = mean_ci(rng.normal(3.0, 2.0, size=10))
        covered += estimate.low <= 3.0 <= estimate.high
    assert 0.93 < covered / 2_000 < 0.97


@pytest.fixture(scope="module")
def paired() -> tuple[object, object]:
    seeds = [0, 1, 2]
    scenarios = ["steady", "payment_outage"]
    return (
        evaluate(RulesPolicy(), scenarios, seeds),
        evaluate(NoopPolicy(), scenarios, seeds),
    )


def test_result_shapes_and_trajectories(paired: tuple[object, object]) -> None:
    rules, _ = paired
    horizon = environment.MAX_EPISODE_STEPS
    assert rules.returns.shape == (2, 3)  # type: ignore[attr-defined]
    assert rules.kpi_trajectories.shape == (2, 3, horizon + 1, N_KPIS)  # type: ignore[attr-defined]
    assert (rules.lengths == horizon).all()  # type: ignore[attr-defined]
    assert rules.action_counts.sum(axis=2).tolist() == rules.lengths.tolist()  # type: ignore[attr-defined]
    trajectory = rules.kpi_trajectory("steady", "mrr")  # type: ignore[attr-defined]
    assert trajectory.shape == (3, horizon + 1)
    assert np.isfinite(trajectory).all()
    assert sum(rules.action_shares().values()) == pytest.approx(1.0)  # type: ignore[attr-defined]
    assert "steady" in rules.table()  # type: ignore[attr-defined]


def test_same_seeds_same_starts_so_results_pair(paired: tuple[object, object]) -> None:
    rules, noop = paired
    np.testing.assert_array_equal(
        rules.kpi_trajectories[:, :, 0],  # type: ignore[attr-defined]
        noop.kpi_trajectories[:, :, 0],  # type: ignore[attr-defined]
    )
    comparison = compare(rules, noop)  # type: ignore[arg-type]
    np.testing.assert_allclose(comparison.differences, rules.returns - noop.returns)  # type: ignore[attr-defined]
    assert comparison.overall.low > 0  # rules beat noop, clearly
    assert comparison.a_wins == 1.0
    assert "relative" in comparison.table()


def test_evaluation_is_reproducible() -> None:
    a = evaluate(RandomPolicy(seed=1), ["mixed"], [5], record_kpis=False)
    b = evaluate(RandomPolicy(seed=1), ["mixed"], [5], record_kpis=False)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert a.kpi_trajectories is None


def test_compare_needs_the_same_episodes(paired: tuple[object, object]) -> None:
    rules, _ = paired
    other = evaluate(NoopPolicy(), ["steady", "payment_outage"], [0, 1], record_kpis=False)
    with pytest.raises(ValueError, match="same scenarios and seeds"):
        compare(rules, other)  # type: ignore[arg-type]


def test_online_learning_in_evaluation_leaves_the_policy_alone() -> None:
    bandit = LinUCBBandit()
    result = evaluate(bandit, ["steady"], [0], learn=True, record_kpis=False)
    assert bandit.n_updates == 0
    assert result.lengths[0, 0] > 0


def test_fit_online_trains_in_place() -> None:
    bandit = LinUCBBandit()
    history = fit_online(bandit, ["steady", "mixed"], episodes=2, seed=10_000)
    assert history.shape == (2,)
    assert bandit.n_updates > 100  # an untrained bandit may sink the business early


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scenarios": ["atlantis"]}, ValueError, r"unknown scenarios \['atlantis'\]"),
        ({"scenarios": []}, ValueError, r"scenarios=\[\] is invalid: must be one or more of"),
        ({"scenarios": ["steady", "steady"]}, ValueError, "scenarios must be distinct"),
        ({"seeds": []}, ValueError, r"seeds=\[\] is invalid: must be a count >= 1 or a list"),
        ({"seeds": [0, -1]}, ValueError, r"seeds\[1\]=-1 is invalid: must be an integer >= 0"),
        ({"seeds": [0.5]}, ValueError, r"seeds\[0\]=0.5 is invalid: must be an integer >= 0"),
        ({"seeds": [1, 1]}, ValueError, "seeds must be distinct"),
        ({"learn": True}, TypeError, "learn=True needs an OnlineLearner; 'noop'"),
        ({"policy": "rules"}, TypeError, "expected a Policy"),
    ],
)
def test_bad_evaluation_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {"policy": NoopPolicy(), "scenarios": ["steady"], "seeds": [0]}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        evaluate(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"policy": NoopPolicy()}, TypeError, "fit_online needs an OnlineLearner"),
        ({"episodes": 0}, ValueError, "episodes=0 is invalid: must be an integer >= 1"),
        ({"seed": -1}, ValueError, "seed=-1 is invalid: must be an integer >= 0"),
    ],
)
def test_bad_fit_online_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {"policy": LinUCBBandit(), "scenarios": ["steady"]}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        fit_online(**arguments)  # type: ignore[arg-type]
