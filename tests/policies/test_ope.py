"""Off-policy estimators: hand-computed values on a tiny log, unbiasedness with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from environment.actions import N_ACTIONS
from environment.kpis import N_OBS
from policies.logged import BanditFeedback
from policies.ope import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    RidgeRewardModel,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    action_distribution,
    bootstrap_interval,
    effective_sample_size,
    estimate_all,
    importance_weights,
    parse_estimators,
)
from policies.simple import NoopPolicy


def row(*head: float) -> list[float]:
    return [*head, *([0.0] * (N_ACTIONS - len(head)))]


def tiny_log() -> tuple[BanditFeedback, NDArray[np.float64], NDArray[np.float64]]:
    """Three rounds; the expected values are worked out by hand in the tests."""
    feedback = BanditFeedback(
        obs=np.zeros((3, N_OBS), dtype=np.float32),
        actions=np.array([0, 1, 0]),
        rewards=np.array([1.0, 0.0, 3.0]),
        pscores=np.array([0.5, 0.25, 0.5]),
        probabilities=np.array([row(0.5, 0.5), row(0.75, 0.25), row(0.5, 0.5)]),
    )
    target = np.array([row(1.0), row(0.5, 0.5), row(0.0, 1.0)])
    q = np.array([row(0.5, 1.0)] * 3)
    return feedback, target, q


# w = [2, 2, 0]; baseline b = [0.5, 0.75, 1.0]; residuals e = [0.5, -1.0, 2.5]
HAND_COMPUTED = [
    (InverseProbabilityWeighting(), (2 * 1 + 0 + 0) / 3),
    (SelfNormalizedInverseProbabilityWeighting(), 2 / 4),
    (DirectMethod(), (0.5 + 0.75 + 1.0) / 3),
    (DoublyRobust(), ((0.5 + 2 * 0.5) + (0.75 - 2 * 1.0) + 1.0) / 3),
    (SelfNormalizedDoublyRobust(), 0.75 + (2 * 0.5 - 2 * 1.0) / 4),
    (InverseProbabilityWeighting(clip=1.5), 1.5 / 3),
    (DoublyRobust(clip=1.5), ((0.5 + 1.5 * 0.5) + (0.75 - 1.5) + 1.0) / 3),
]


@pytest.mark.parametrize(("estimator", "expected"), HAND_COMPUTED)
def test_hand_computed_values(estimator: object, expected: float) -> None:
    feedback, target, q = tiny_log()
    value = estimator.estimate_policy_value(feedback, target, q)  # type: ignore[attr-defined]
    assert value == pytest.approx(expected, abs=1e-12)


def test_weights_and_effective_sample_size() -> None:
    feedback, target, _ = tiny_log()
    weights = importance_weights(feedback, target)
    np.testing.assert_allclose(weights, [2.0, 2.0, 0.0])
    assert effective_sample_size(weights) == pytest.approx(16 / 8)
    assert effective_sample_size(np.ones(7)) == pytest.approx(7.0)
    assert effective_sample_size(np.zeros(3)) == 0.0


def test_the_interval_contains_the_estimate_and_is_reproducible() -> None:
    feedback, target, q = tiny_log()
    first = DoublyRobust().estimate_interval(feedback, target, q, n_bootstrap=200, seed=3)
    again = DoublyRobust().estimate_interval(feedback, target, q, n_bootstrap=200, seed=3)
    assert first == again
    assert first.low <= first.value <= first.high
    assert first.confidence == 0.95


def test_a_constant_has_a_zero_width_interval() -> None:
    interval = bootstrap_interval(np.full(50, 2.0), np.ones(50), n_bootstrap=100)
    assert (interval.value, interval.low, interval.high) == (2.0, 2.0, 2.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f, t, q: DoublyRobust().estimate_policy_value(f, t), "needs estimated_rewards"),
        (lambda f, t, q: DoublyRobust().estimate_policy_value(f, t, q[:2]), "must have shape"),
        (lambda f, t, q: InverseProbabilityWeighting().estimate_policy_value(f, t[:2]), "shape"),
        (lambda f, t, q: InverseProbabilityWeighting().estimate_policy_value(f, t * 2), "sum to 1"),
        (lambda f, t, q: InverseProbabilityWeighting().estimate_policy_value(f, -t), ">= 0"),
        (lambda f, t, q: InverseProbabilityWeighting(clip=0.0), "clip=0.0"),
        (lambda f, t, q: InverseProbabilityWeighting(clip=float("nan")), "clip=nan"),
        (lambda f, t, q: bootstrap_interval(q[0], q[0], n_bootstrap=1), "n_bootstrap=1"),
        (lambda f, t, q: bootstrap_interval(q[0], q[0], confidence=1.0), "confidence=1.0"),
        (lambda f, t, q: parse_estimators("dr,magic"), "unknown estimator 'magic'"),
        (lambda f, t, q: parse_estimators(" , "), "comma-separated"),
        (lambda f, t, q: RidgeRewardModel.fit(f, ridge=0.0), "ridge=0.0"),
    ],
)
def test_bad_inputs_are_named(call: object, message: str) -> None:
    feedback, target, q = tiny_log()
    with pytest.raises(ValueError, match=message):
        call(feedback, target, q)  # type: ignore[operator]


def test_the_ess_warning_boundary() -> None:
    feedback, target, _ = tiny_log()  # ESS = 2
    at = estimate_all(feedback, target, ["ips"], min_ess=2.0, n_bootstrap=10)
    over = estimate_all(feedback, target, ["ips"], min_ess=2.0 + 1e-9, n_bootstrap=10)
    assert at[0].warning is None
    assert over[0].warning is not None and "effective sample size 2.0" in over[0].warning


def test_the_ridge_model_recovers_a_linear_reward() -> None:
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 1, (4000, N_OBS)).astype(np.float32)
    actions = rng.integers(0, 2, 4000)
    theta = rng.normal(size=(2, N_OBS + 1))
    x = np.hstack([np.ones((4000, 1)), obs])
    rewards = (x * theta[actions]).sum(axis=1)
    feedback = BanditFeedback(
        obs, actions, rewards, np.full(4000, 0.5), np.zeros((4000, N_ACTIONS))
    )
    model = RidgeRewardModel.fit(feedback, ridge=1e-6)
    np.testing.assert_allclose(model.coefficients[:2], theta, atol=1e-5)
    assert not model.coefficients[2:].any()  # never executed: predicts 0


def test_action_distribution_of_a_policy() -> None:
    dist = action_distribution(NoopPolicy(), np.full((4, N_OBS), 0.5, dtype=np.float32))
    np.testing.assert_array_equal(dist, np.tile(row(1.0), (4, 1)))


# --- unbiasedness on synthetic logs with a known truth -----------------------------------------

N_ARMS_USED = 4


def synthetic_log(
    rng: np.random.Generator, n: int, theta: NDArray[np.float64]
) -> tuple[BanditFeedback, NDArray[np.float64], float]:
    """Contexts uniform in [0, 1]^N_OBS; the true reward is linear per action plus N(0, 0.5^2)
    noise, with a quadratic term the ridge model cannot fit (so DM is biased, DR is not). The
    behaviour policy: 0.4 on the best arm of a fixed score, 0.2 on each other of 4 arms. The
    target: softmax of another score over the same 4 arms. Returns the log, the target's
    distribution and the truth ``mean_i sum_a pi(a|x_i) E[r|x_i,a]``."""
    obs = rng.uniform(0, 1, (n, N_OBS))
    x = np.hstack([np.ones((n, 1)), obs])
    means = np.zeros((n, N_ACTIONS))
    means[:, :N_ARMS_USED] = x @ theta.T + 2.0 * obs[:, :1] ** 2
    behaviour = np.zeros((n, N_ACTIONS))
    behaviour[:, :N_ARMS_USED] = 0.2
    behaviour[np.arange(n), np.argmax(obs[:, :N_ARMS_USED], axis=1)] = 0.4
    target = np.zeros((n, N_ACTIONS))
    logits = 3.0 * obs[:, N_ARMS_USED : 2 * N_ARMS_USED]
    target[:, :N_ARMS_USED] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    actions = np.array([rng.choice(N_ACTIONS, p=p) for p in behaviour])
    rows = np.arange(n)
    rewards = means[rows, actions] + rng.normal(0.0, 0.5, n)
    feedback = BanditFeedback(
        obs.astype(np.float32), actions, rewards, behaviour[rows, actions], behaviour
    )
    return feedback, target, float((target * means).sum(axis=1).mean())


def test_ips_and_dr_are_unbiased_with_known_truth() -> None:
    """Over 300 logs of 200 decisions, the mean error of IPS, SNIPS, DR and SNDR is within 4
    standard errors of zero (SNIPS and SNDR are biased only at O(1/n), far below that)."""
    rng = np.random.default_rng(42)
    theta = rng.normal(0.0, 1.0, (N_ARMS_USED, N_OBS + 1))
    errors: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    for _ in range(300):
        feedback, target, truth = synthetic_log(rng, 200, theta)
        q = RidgeRewardModel.fit(feedback).predict(feedback.obs)
        for name, cls in ESTIMATORS.items():
            errors[name].append(cls().estimate_policy_value(feedback, target, q) - truth)
    for name in ("ips", "snips", "dr", "sndr"):
        e = np.asarray(errors[name])
        assert abs(e.mean()) < 4 * e.std(ddof=1) / np.sqrt(len(e)), name


def test_dr_stays_unbiased_with_a_wrong_reward_model() -> None:
    """A reward model off by +0.5 everywhere biases DM by +0.5; DR corrects it (its mean
    error over 300 logs is within 4 standard errors of zero)."""
    rng = np.random.default_rng(1)
    theta = rng.normal(0.0, 1.0, (N_ARMS_USED, N_OBS + 1))
    dm, dr = [], []
    for _ in range(300):
        feedback, target, truth = synthetic_log(rng, 200, theta)
        wrong = RidgeRewardModel.fit(feedback).predict(feedback.obs) + 0.5
        dm.append(DirectMethod().estimate_policy_value(feedback, target, wrong) - truth)
        dr.append(DoublyRobust().estimate_policy_value(feedback, target, wrong) - truth)
    assert np.mean(dm) == pytest.approx(0.5, abs=0.05)
    assert abs(np.mean(dr)) < 4 * np.std(dr, ddof=1) / np.sqrt(len(dr))


def test_coverage_of_the_dr_interval_on_synthetic_logs() -> None:
    """The 95% bootstrap interval of DR covers the truth in at least 85 of 100 logs of 300
    (the binomial 0.1% lower tail at 95% is 87)."""
    rng = np.random.default_rng(7)
    theta = rng.normal(0.0, 1.0, (N_ARMS_USED, N_OBS + 1))
    covered = 0
    for _ in range(100):
        feedback, target, truth = synthetic_log(rng, 300, theta)
        q = RidgeRewardModel.fit(feedback).predict(feedback.obs)
        interval = DoublyRobust().estimate_interval(feedback, target, q, n_bootstrap=200)
        covered += interval.low <= truth <= interval.high
    assert covered >= 85
