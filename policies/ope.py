"""Off-policy evaluation: the value of a target policy estimated from a logged policy's data.

In the shape of Open Bandit Pipeline's ``ope/estimators.py`` (obp itself does not install on
Python 3.11): every estimator has ``estimate_policy_value`` and ``estimate_interval`` (one
shared bootstrap, :func:`bootstrap_interval`), taking the logged :class:`BanditFeedback`
(contexts ``x_i``, executed actions ``a_i``, rewards ``r_i``, logged propensities
``p_i = pi_0(a_i | x_i)``), the target policy's action distribution ``pi(a | x_i)``
(``action_dist``, shape (n, N_ACTIONS)) and, for the model-based ones, the estimated rewards
``q(x_i, a)`` (shape (n, N_ACTIONS), from :class:`RidgeRewardModel`).

**The estimand.** Rewards here are one-step (the reward of the cycle after the decision, or a
reward joined over the decision's window), so one decision's value is well defined:

    V(pi) = E_{x ~ D} [ sum_a pi(a | x) E[r | x, a] ]

the expected reward of one decision taken by ``pi`` in the contexts the log visited. It is not
the value of running ``pi`` for a whole episode (which would change the contexts).

**The estimators**, with importance weights ``w_i = pi(a_i | x_i) / p_i`` (clipped to
``min(w_i, clip)`` when ``clip`` is set: lower variance for a bias towards the logged policy;
Ionides 2008, as OBP's ``lambda_``):

- DM, direct method: ``mean_i sum_a pi(a|x_i) q(x_i, a)`` (Beygelzimer & Langford 2009).
- IPS: ``mean_i w_i r_i`` (Horvitz & Thompson 1952; Precup et al. 2000).
- SNIPS: ``sum_i w_i r_i / sum_i w_i`` (Swaminathan & Joachims 2015, "The Self-Normalized
  Estimator for Counterfactual Learning").
- DR, doubly robust: ``mean_i [ sum_a pi(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)) ]``
  (Dudík, Langford & Li 2011, "Doubly Robust Policy Evaluation and Learning").
- SNDR, self-normalized DR: ``mean_i sum_a pi(a|x_i) q(x_i, a)
  + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i`` (Kallus & Uehara 2019, "Intrinsically
  Efficient, Stable, and Bounded Off-Policy Evaluation"; OBP's ``SelfNormalizedDoublyRobust``).

Each estimate is a ratio ``sum_i u_i / sum_i v_i`` of per-round terms (``v_i = 1`` for the
plain means, ``v_i = w_i`` for the self-normalized parts), which is what the bootstrap
resamples.

**Effective sample size** of the weights (Kong 1992; Owen 2013, 9.3):
``ESS = (sum_i w_i)^2 / sum_i w_i^2``, between 1 and n; an estimate whose ESS is below
``min_ess`` (:data:`DEFAULT_MIN_ESS`) carries a warning: too few logged decisions look like
the target policy's to trust it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from environment.actions import N_ACTIONS
from policies.bandits import features
from policies.base import PROPENSITY_TOLERANCE, ArrayPolicy, Episodic, Policy, check_range
from policies.logged import BanditFeedback

Array = NDArray[np.float64]

CONFIDENCE = 0.95
"""The level of every interval this module reports."""
DEFAULT_N_BOOTSTRAP = 1000
"""Bootstrap resamples of :meth:`OffPolicyEstimator.estimate_interval`."""
DEFAULT_MIN_ESS = 100.0
"""Below this effective sample size an estimate carries a warning (the setting
``learning_min_ess`` defaults to it)."""
DEFAULT_RIDGE = 1.0
"""The ridge penalty of :class:`RidgeRewardModel` (on features ``[1, obs]`` in [-1, 1])."""


# --- the target policy's distribution, and checks ---------------------------------------------


def action_distribution(policy: Policy, obs: NDArray[np.floating]) -> Array:
    """``pi(a | x_i)`` for every logged context: float64, shape (n, N_ACTIONS).

    ``obs``: shape (n, N_OBS). A policy with a memory of executed actions
    (:class:`~policies.base.Episodic`, the rules' cooldowns) is ``reset()`` first and judged as
    freshly deployed on every context, since the log does not say what it would have executed
    before.
    """
    if isinstance(policy, Episodic):
        policy.reset()
    batch = np.asarray(obs, dtype=np.float32)
    if isinstance(policy, ArrayPolicy):
        return np.asarray(policy.decide_arrays(batch).propensities, dtype=np.float64)
    return np.stack([d.propensities for d in policy.decide_batch(batch)]).astype(np.float64)


def check_action_dist(action_dist: object, n_rounds: int) -> Array:
    """Validate ``pi(a | x_i)``: shape (n_rounds, N_ACTIONS), rows >= 0 summing to 1 (1e-6)."""
    dist = np.asarray(action_dist, dtype=np.float64)
    if dist.shape != (n_rounds, N_ACTIONS):
        raise ValueError(f"action_dist must have shape ({n_rounds}, {N_ACTIONS}), got {dist.shape}")
    if not np.isfinite(dist).all() or (dist < 0).any():
        raise ValueError("action_dist must be finite and >= 0")
    worst = float(np.abs(dist.sum(axis=1) - 1.0).max())
    if worst > PROPENSITY_TOLERANCE:
        raise ValueError(f"action_dist rows must sum to 1; the worst is off by {worst:.3g}")
    return dist


def importance_weights(
    feedback: BanditFeedback, action_dist: Array, clip: float | None = None
) -> Array:
    """``w_i = pi(a_i | x_i) / p_i``, optionally ``min(w_i, clip)``: shape (n,)."""
    rows = np.arange(feedback.n_rounds)
    weights = action_dist[rows, feedback.actions] / feedback.pscores
    return np.minimum(weights, clip) if clip is not None else weights


def effective_sample_size(weights: Array) -> float:
    """``(sum w)^2 / sum w^2`` (Kong 1992); 0 when every weight is 0."""
    squares = float(np.dot(weights, weights))
    return float(weights.sum()) ** 2 / squares if squares > 0 else 0.0


# --- the reward model of DM and DR ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RidgeRewardModel:
    """``q(x, a) = theta_a^T [1, x]``: one ridge regression of the reward per action.

    ``theta_a = (lambda I + X_a^T X_a)^{-1} X_a^T r_a`` over the logged rounds where ``a`` was
    executed (the intercept is penalized too, so an action never executed predicts 0, and one
    seen rarely shrinks to 0). ``coefficients``: float64, shape (N_ACTIONS, N_OBS + 1).
    """

    coefficients: Array
    ridge: float = DEFAULT_RIDGE

    @classmethod
    def fit(cls, feedback: BanditFeedback, ridge: float = DEFAULT_RIDGE) -> RidgeRewardModel:
        """Fit on ``feedback``; ``ridge`` > 0."""
        if not (math.isfinite(ridge) and ridge > 0):
            raise ValueError(f"ridge={ridge!r} must be a finite number > 0")
        x = features(feedback.obs)
        coefficients = np.zeros((N_ACTIONS, x.shape[1]))
        penalty = ridge * np.eye(x.shape[1])
        for action in range(N_ACTIONS):
            rows = feedback.actions == action
            if rows.any():
                xa = x[rows]
                coefficients[action] = np.linalg.solve(
                    penalty + xa.T @ xa, xa.T @ feedback.rewards[rows]
                )
        return cls(coefficients, ridge)

    def predict(self, obs: NDArray[np.floating]) -> Array:
        """``q(x_i, a)`` for every context and action: shape (n, N_ACTIONS)."""
        return features(np.asarray(obs, dtype=np.float32)) @ self.coefficients.T


# --- the shared bootstrap ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with a ``confidence`` interval ``[low, high]``."""

    value: float
    low: float
    high: float
    confidence: float = CONFIDENCE


def bootstrap_interval(
    numerators: Array,
    denominators: Array,
    *,
    confidence: float = CONFIDENCE,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of ``sum u / sum v`` over rounds resampled with replacement.

    numerators ``u``, denominators ``v``: shape (n,). Resamples in chunks so memory stays
    ~ 8 MB per chunk whatever n. The point value is the full-sample ratio.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} must be in (0, 1)")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 2:
        raise ValueError(f"n_bootstrap={n_bootstrap!r} must be an integer >= 2")
    n = len(numerators)
    rng = np.random.default_rng(seed)
    chunk = max(1, 1_000_000 // max(n, 1))
    ratios = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, chunk):
        stop = min(start + chunk, n_bootstrap)
        rows = rng.integers(0, n, size=(stop - start, n))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios[start:stop] = numerators[rows].sum(axis=1) / denominators[rows].sum(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(ratios, [tail, 1.0 - tail])
    return Interval(_ratio(numerators, denominators), float(low), float(high), confidence)


def _ratio(numerators: Array, denominators: Array) -> float:
    total = float(denominators.sum())
    return float(numerators.sum()) / total if total != 0 else math.nan


# --- the estimators ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OffPolicyEstimator(ABC):
    """One estimator: ``clip`` (max importance weight, > 0) or ``None`` for none.

    Subclasses give the per-round terms ``(u_i, v_i)`` whose ratio of sums is the estimate.
    """

    clip: float | None = None
    name: ClassVar[str]
    uses_reward_model: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.clip is not None:
            check_range(self, "clip", 0.0, open_low=True)

    @abstractmethod
    def _terms(
        self, feedback: BanditFeedback, action_dist: Array, estimated_rewards: Array | None
    ) -> tuple[Array, Array]:
        """Per-round numerators and denominators, each shape (n,)."""

    def terms(
        self,
        feedback: BanditFeedback,
        action_dist: Array,
        estimated_rewards: Array | None = None,
    ) -> tuple[Array, Array]:
        """Validated per-round ``(u_i, v_i)`` with ``estimate = sum u / sum v``."""
        dist = check_action_dist(action_dist, feedback.n_rounds)
        if self.uses_reward_model:
            if estimated_rewards is None:
                raise ValueError(f"{self.name} needs estimated_rewards (a reward model's q(x, a))")
            estimated_rewards = np.asarray(estimated_rewards, dtype=np.float64)
            if estimated_rewards.shape != dist.shape:
                raise ValueError(
                    f"estimated_rewards must have shape {dist.shape}, got {estimated_rewards.shape}"
                )
        return self._terms(feedback, dist, estimated_rewards)

    def estimate_policy_value(
        self,
        feedback: BanditFeedback,
        action_dist: Array,
        estimated_rewards: Array | None = None,
    ) -> float:
        """The estimate of ``V(pi)`` (see the module docstring)."""
        return _ratio(*self.terms(feedback, action_dist, estimated_rewards))

    def estimate_interval(
        self,
        feedback: BanditFeedback,
        action_dist: Array,
        estimated_rewards: Array | None = None,
        *,
        confidence: float = CONFIDENCE,
        n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
        seed: int = 0,
    ) -> Interval:
        """The estimate with its bootstrap interval (:func:`bootstrap_interval`); the reward
        model is held fixed across resamples, as in OBP."""
        u, v = self.terms(feedback, action_dist, estimated_rewards)
        return bootstrap_interval(u, v, confidence=confidence, n_bootstrap=n_bootstrap, seed=seed)

    def _weights(self, feedback: BanditFeedback, action_dist: Array) -> Array:
        return importance_weights(feedback, action_dist, self.clip)


def _baseline(action_dist: Array, estimated_rewards: Array | None) -> Array:
    """``sum_a pi(a | x_i) q(x_i, a)``: shape (n,)."""
    assert estimated_rewards is not None  # checked by OffPolicyEstimator.terms
    return (action_dist * estimated_rewards).sum(axis=1)


def _residuals(feedback: BanditFeedback, estimated_rewards: Array | None) -> Array:
    """``r_i - q(x_i, a_i)``: shape (n,)."""
    assert estimated_rewards is not None
    return feedback.rewards - estimated_rewards[np.arange(feedback.n_rounds), feedback.actions]


@dataclass(frozen=True)
class DirectMethod(OffPolicyEstimator):
    """DM: ``mean_i sum_a pi(a|x_i) q(x_i, a)``; unbiased only if ``q`` is."""

    name: ClassVar[str] = "dm"
    uses_reward_model: ClassVar[bool] = True

    def _terms(
        self, feedback: BanditFeedback, action_dist: Array, estimated_rewards: Array | None
    ) -> tuple[Array, Array]:
        values = _baseline(action_dist, estimated_rewards)
        return values, np.ones_like(values)


@dataclass(frozen=True)
class InverseProbabilityWeighting(OffPolicyEstimator):
    """IPS: ``mean_i w_i r_i``; unbiased when unclipped and the logged propensities are right."""

    name: ClassVar[str] = "ips"

    def _terms(
        self, feedback: BanditFeedback, action_dist: Array, estimated_rewards: Array | None
    ) -> tuple[Array, Array]:
        return self._weights(feedback, action_dist) * feedback.rewards, np.ones(feedback.n_rounds)


@dataclass(frozen=True)
class SelfNormalizedInverseProbabilityWeighting(OffPolicyEstimator):
    """SNIPS: ``sum_i w_i r_i / sum_i w_i``; consistent, bounded by the rewards' range."""

    name: ClassVar[str] = "snips"

    def _terms(
        self, feedback: BanditFeedback, action_dist: Array, estimated_rewards: Array | None
    ) -> tuple[Array, Array]:
        weights = self._weights(feedback, action_dist)
        return weights * feedback.rewards, weights


@dataclass(frozen=True)
class DoublyRobust(OffPolicyEstimator):
    """DR: ``mean_i [sum_a pi(a|x_i) q(x_i,a) + w_i (r_i - q(x_i,a_i))]``; unbiased when
    either the propensities or the reward model are right."""

    name: ClassVar[str] = "dr"
    uses_reward_model: ClassVar[bool] = True

    def _terms(
        self, feedback: BanditFeedback, action_dist: Array, estimated_rewards: Array | None
    ) -> tuple[Array, Array]:
        weights = self._weights(feedback, action_dist)
        values = _baseline(action_dist, estimated_rewards)
        values = values + weights * _residuals(feedback, estimated_rewards)
        return values, np.ones_like(values)


@dataclass(frozen=True)
class SelfNormalizedDoublyRobust(OffPolicyEstimator):
    """SNDR: ``mean_i sum_a pi(a|x_i) q(x_i,a) + sum_i w_i (r_i - q(x_i,a_i)) / sum_i w_i``.

    Two ratios do not make one ratio of sums; the terms are rescaled so that they do:
    ``u_i = b_i * W / n + w_i e_i`` and ``v_i = w_i`` (``W = sum w``, ``b`` the baseline,
    ``e`` the residual) give ``sum u / sum v = mean b + sum w e / W`` exactly, and the
    bootstrap resamples ``W`` with the rows, which is the estimator on the resample to first
    order.
    """

    name: ClassVar[str] = "sndr"
    uses_reward_model: ClassVar[bool] = True

    def _terms(
        self, feedback: BanditFeedback, action_dist: Array, estimated_rewards: Array | None
    ) -> tuple[Array, Array]:
        weights = self._weights(feedback, action_dist)
        baseline = _baseline(action_dist, estimated_rewards)
        scale = float(weights.sum()) / feedback.n_rounds
        return baseline * scale + weights * _residuals(feedback, estimated_rewards), weights


ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    cls.name: cls
    for cls in (
        DirectMethod,
        InverseProbabilityWeighting,
        SelfNormalizedInverseProbabilityWeighting,
        DoublyRobust,
        SelfNormalizedDoublyRobust,
    )
}
"""Every estimator by its short name, in the order reports list them."""


def parse_estimators(text: str) -> tuple[str, ...]:
    """``"dm,ips"`` -> ``("dm", "ips")``; ``ValueError`` naming an unknown one and the known."""
    names = tuple(item.strip().lower() for item in text.split(",") if item.strip())
    if not names:
        raise ValueError(f"expected a comma-separated list of estimators, got {text!r}")
    unknown = [name for name in names if name not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown estimator {unknown[0]!r}; known: {list(ESTIMATORS)}")
    return names


# --- one report for a target policy -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpeEstimate:
    """One estimator's answer: the value, its interval, the ESS and a warning (or ``None``)."""

    estimator: str
    value: float
    low: float
    high: float
    ess: float
    n_rounds: int
    warning: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "estimator": self.estimator,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "ess": self.ess,
            "n_rounds": self.n_rounds,
            "warning": self.warning,
        }


def ess_warning(ess: float, min_ess: float) -> str | None:
    """The warning text when ``ess < min_ess``, else ``None``."""
    if ess >= min_ess:
        return None
    return (
        f"effective sample size {ess:.1f} is below {min_ess:g}: too few logged decisions "
        "resemble the target policy's to trust this estimate"
    )


def estimate_all(
    feedback: BanditFeedback,
    action_dist: Array,
    estimators: Sequence[str] = tuple(ESTIMATORS),
    *,
    clip: float | None = None,
    min_ess: float = DEFAULT_MIN_ESS,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
    reward_model: RidgeRewardModel | None = None,
) -> list[OpeEstimate]:
    """Each named estimator's value with a 95% interval, the ESS and its warning.

    The reward model (for DM, DR, SNDR) is ``reward_model`` or a :class:`RidgeRewardModel`
    fitted on ``feedback``. The ESS is of the (clipped) weights, shared by all estimators: it
    measures how much of the log the target policy can use, DM included.
    """
    dist = check_action_dist(action_dist, feedback.n_rounds)
    needs_model = any(ESTIMATORS[name].uses_reward_model for name in estimators)
    estimated = None
    if needs_model:
        model = reward_model if reward_model is not None else RidgeRewardModel.fit(feedback)
        estimated = model.predict(feedback.obs)
    ess = effective_sample_size(importance_weights(feedback, dist, clip))
    warning = ess_warning(ess, min_ess)
    out = []
    for name in estimators:
        estimator = ESTIMATORS[name](clip=clip)
        interval = estimator.estimate_interval(
            feedback, dist, estimated, n_bootstrap=n_bootstrap, seed=seed
        )
        out.append(
            OpeEstimate(
                name, interval.value, interval.low, interval.high, ess, feedback.n_rounds, warning
            )
        )
    return out
