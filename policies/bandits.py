"""Bandits in NumPy: epsilon-greedy, UCB1, LinUCB (disjoint) and linear Thompson sampling.

All four learn online from ``update(obs, action, reward, propensity)``, where ``reward`` is the
environment's per-step reward: they are myopic by construction (a contextual bandit assumes an
action does not change the next context), which is their limit on this environment.

**Models.** UCB1 is context-free: a running mean and variance per action. The other three share
a disjoint linear model (:class:`RidgeArms`): per action ``a`` a ridge regression of the reward
on the features ``x = [1, obs]`` (``d = N_OBS + 1``)::

    A_a = lambda I + sum x x^T,   b_a = sum r x,   theta_a = A_a^{-1} b_a

kept as ``A_a^{-1}`` and updated in O(d^2) by Sherman-Morrison::

    A^{-1} <- A^{-1} - (A^{-1} x)(A^{-1} x)^T / (1 + x^T A^{-1} x)

The noise scale ``sigma`` is estimated from the fitted residuals, kept exactly in O(d) per
update: for ridge, ``sum (r - theta^T x)^2 = sum r^2 - theta^T b - lambda |theta|^2``, and
``sigma^2 = (SSE + 1) / (n - sum_a min(n_a, d) + 1)`` (one pseudo-observation of unit
variance keeps it defined and wide before data), so confidences are in reward units without
tuning.

**Which propensity.** Every bandit reports the probability with which it would pick each
action: epsilon-greedy's mixture, UCB1's and LinUCB's point mass, and Thompson's posterior
probability of being best, estimated from ``samples`` posterior draws. ``update`` validates the
logged propensity but does not weight by it: per-action regression given the context stays
consistent under any logging policy that depends on the context only.

**Confidence** (documented per class): epsilon-greedy, the probability of the chosen action;
UCB1 and LinUCB, ``P(chosen beats the best other action)`` under independent Gaussian
estimates ``N(mean_a, se_a^2)``; Thompson, the posterior probability that the chosen action is
the best one, estimated by sampling.

**Randomness** is keyed by (seed, update count, observation bytes)
(:func:`policies.base.observation_rng`): decisions are reproducible and batch == single.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from environment.actions import N_ACTIONS
from environment.kpis import N_OBS
from policies import storage
from policies.base import (
    ArrayPolicy,
    DecisionArrays,
    Obs,
    PolicyFileError,
    check_action_index,
    check_obs,
    observation_rng,
    one_hot,
    prob_beats_runner_up,
)
from policies.validation import check_range

N_FEATURES = N_OBS + 1
"""Features of the linear models: an intercept and the observation."""


def features(obs: Obs) -> NDArray[np.float64]:
    """``[1, obs]`` per row. obs: shape (n, N_OBS) -> float64, shape (n, N_FEATURES)."""
    return np.hstack([np.ones((len(obs), 1)), obs.astype(np.float64)])


def _check_update(reward: object, propensity: object) -> tuple[float, float]:
    if isinstance(reward, bool) or not isinstance(reward, int | float | np.floating | np.integer):
        raise ValueError(f"reward must be a finite number, got {reward!r}")
    if not math.isfinite(float(reward)):
        raise ValueError(f"reward must be a finite number, got {reward!r}")
    if isinstance(propensity, bool) or not isinstance(
        propensity, int | float | np.floating | np.integer
    ):
        raise ValueError(f"propensity must be a number in (0, 1], got {propensity!r}")
    if not 0.0 < float(propensity) <= 1.0:
        raise ValueError(f"propensity must be in (0, 1], got {propensity!r}")
    return float(reward), float(propensity)


# --- the shared linear model --------------------------------------------------------------


class RidgeArms:
    """Disjoint per-action ridge regressions with Sherman-Morrison updates.

    Shapes: ``a_inv`` (K, d, d), ``b`` (K, d), ``theta`` (K, d), ``counts`` (K,).
    """

    def __init__(self, n_arms: int, dim: int, ridge: float) -> None:
        self.ridge = ridge
        self.a_inv = np.repeat(np.eye(dim)[None] / ridge, n_arms, axis=0)
        self.b = np.zeros((n_arms, dim))
        self.theta = np.zeros((n_arms, dim))
        self.counts = np.zeros(n_arms, dtype=np.int64)
        self.sum_sq = np.zeros(n_arms)
        """Sum of squared rewards per arm (for the residual sum of squares)."""

    def update(self, arm: int, x: NDArray[np.float64], reward: float) -> None:
        """Add one observation ``(x, reward)`` to ``arm``'s regression. x: shape (d,)."""
        self.sum_sq[arm] += reward * reward
        a_inv = self.a_inv[arm]
        ax = a_inv @ x
        a_inv -= np.outer(ax, ax) / (1.0 + float(x @ ax))
        a_inv += a_inv.T  # keep it exactly symmetric against rounding drift
        a_inv *= 0.5
        self.b[arm] += reward * x
        self.theta[arm] = a_inv @ self.b[arm]
        self.counts[arm] += 1

    @property
    def sigma(self) -> float:
        """Residual noise estimate (see the module docstring); 1.0 before any data."""
        theta_b = np.einsum("kd,kd->k", self.theta, self.b)
        sse = self.sum_sq - theta_b - self.ridge * np.einsum("kd,kd->k", self.theta, self.theta)
        dof = float(np.minimum(self.counts, self.theta.shape[1]).sum())
        residual_df = max(float(self.counts.sum()) - dof, 0.0)
        return math.sqrt((max(float(sse.sum()), 0.0) + 1.0) / (residual_df + 1.0))

    def means(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Predicted reward per arm. x: shape (n, d) -> shape (n, K)."""
        return x @ self.theta.T

    def widths(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """``sqrt(x^T A_a^{-1} x)`` per arm (posterior sd / sigma). x: (n, d) -> (n, K)."""
        return np.sqrt(np.maximum(np.einsum("nd,kde,ne->nk", x, self.a_inv, x), 0.0))

    def arrays(self) -> dict[str, NDArray[Any]]:
        """The state as arrays, for saving."""
        return {
            "a_inv": self.a_inv,
            "b": self.b,
            "counts": self.counts,
            "sum_sq": self.sum_sq,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[Any]], ridge: float) -> RidgeArms:
        """Inverse of :meth:`arrays`; shapes are checked."""
        a_inv, b, counts = arrays["a_inv"], arrays["b"], arrays["counts"]
        k, d = b.shape
        if a_inv.shape != (k, d, d) or counts.shape != (k,) or (k, d) != (N_ACTIONS, N_FEATURES):
            raise ValueError(
                f"array shapes a_inv {a_inv.shape}, b {b.shape}, counts {counts.shape} do not "
                f"fit {N_ACTIONS} actions x {N_FEATURES} features"
            )
        model = cls(k, d, ridge)
        model.a_inv = a_inv.astype(np.float64)
        model.b = b.astype(np.float64)
        model.counts = counts.astype(np.int64)
        model.sum_sq = arrays["sum_sq"].astype(np.float64)
        if model.sum_sq.shape != (k,):
            raise ValueError(f"sum_sq has shape {model.sum_sq.shape}, expected ({k},)")
        model.theta = np.einsum("kde,ke->kd", model.a_inv, model.b)
        return model


# --- configs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EpsilonGreedyConfig:
    """Epsilon-greedy over the linear model."""

    epsilon: float = 0.1
    """Probability of a uniformly random action."""
    ridge: float = 1.0
    """Ridge penalty ``lambda`` of each action's regression."""
    seed: int = 0
    """Seed of the exploration draws."""

    def __post_init__(self) -> None:
        check_range(self, "epsilon", 0.0, 1.0)
        check_range(self, "ridge", 0.0, open_low=True)
        check_range(self, "seed", 0, integer=True)


@dataclass(frozen=True, slots=True)
class UCB1Config:
    """UCB1 (context-free): score ``mean + exploration * sqrt(2 ln t / n_a)``."""

    exploration: float = 1.0
    """Scale of the bonus in reward units (UCB1's proof assumes rewards in [0, 1]; the
    environment's per-step rewards span about one unit, so 1 is the textbook value)."""

    def __post_init__(self) -> None:
        check_range(self, "exploration", 0.0)


@dataclass(frozen=True, slots=True)
class LinUCBConfig:
    """LinUCB (disjoint): score ``mean + alpha * sigma * sqrt(x^T A^{-1} x)``."""

    alpha: float = 1.0
    """Width of the optimism bonus in posterior standard deviations."""
    ridge: float = 1.0
    """Ridge penalty ``lambda``."""

    def __post_init__(self) -> None:
        check_range(self, "alpha", 0.0)
        check_range(self, "ridge", 0.0, open_low=True)


@dataclass(frozen=True, slots=True)
class ThompsonConfig:
    """Linear Thompson sampling: ``theta_a ~ N(theta_hat_a, (scale sigma)^2 A_a^{-1})``."""

    scale: float = 1.0
    """Posterior width multiplier ``v / sigma`` (1: the Bayesian posterior)."""
    ridge: float = 1.0
    """Ridge penalty ``lambda`` (the prior precision)."""
    samples: int = 128
    """Posterior draws per decision for the propensities and the confidence."""
    seed: int = 0
    """Seed of the posterior draws."""

    def __post_init__(self) -> None:
        check_range(self, "scale", 0.0, open_low=True)
        check_range(self, "ridge", 0.0, open_low=True)
        check_range(self, "samples", 1, 100_000, integer=True)
        check_range(self, "seed", 0, integer=True)


ConfigT = TypeVar("ConfigT")


def _config_from_dict(cls: type[ConfigT], data: dict[str, Any]) -> ConfigT:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; allowed: {sorted(known)}")
    return cls(**data)


# --- policies -------------------------------------------------------------------------------

BanditT = TypeVar("BanditT", bound="Bandit")


class Bandit(ArrayPolicy):
    """Shared plumbing of the four bandits: versioning, update validation, save and load."""

    kind: ClassVar[str]
    config_class: ClassVar[type]
    array_names: ClassVar[tuple[str, ...]]

    def __init__(self, config: Any, version: str = "0") -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config: Any = config
        self.name = self.kind
        self.version = version
        self.n_updates = 0

    def update(self, obs: Obs, action: int, reward: float, propensity: float) -> None:
        """Learn from one logged step (see the module docstring on propensities)."""
        row = check_obs(obs)
        arm = check_action_index(action)
        value, _ = _check_update(reward, propensity)
        self._learn(row, arm, value)
        self.n_updates += 1

    def _learn(self, obs: Obs, action: int, reward: float) -> None:
        raise NotImplementedError

    def _state_arrays(self) -> dict[str, NDArray[Any]]:
        raise NotImplementedError

    def _restore(self, arrays: dict[str, NDArray[Any]]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """One ``.npz`` archive: the config, version and update count, and the model arrays."""
        meta = {
            "config": asdict(self.config),
            "version": self.version,
            "n_updates": self.n_updates,
        }
        return storage.save_npz(path, self.kind, meta, self._state_arrays())

    @classmethod
    def load(cls: type[BanditT], path: str | Path) -> BanditT:
        """Read an archive written by :meth:`save`."""
        meta, arrays = storage.load_npz(path, cls.kind, cls.array_names)
        try:
            config: Any = _config_from_dict(cls.config_class, dict(meta["config"]))
            policy = cls(config, version=str(meta.get("version", "0")))
            policy.n_updates = int(meta["n_updates"])
            policy._restore(arrays)
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as error:
            raise PolicyFileError(
                f"{cls.kind} policy file {str(path)!r} is corrupt: {error}"
            ) from None
        return policy


class _LinearBandit(Bandit):
    array_names = ("a_inv", "b", "counts", "sum_sq")

    def __init__(self, config: Any, version: str = "0") -> None:
        super().__init__(config, version)
        self.model = RidgeArms(N_ACTIONS, N_FEATURES, config.ridge)

    def _learn(self, obs: Obs, action: int, reward: float) -> None:
        self.model.update(action, features(obs[None, :])[0], reward)

    def _state_arrays(self) -> dict[str, NDArray[Any]]:
        return self.model.arrays()

    def _restore(self, arrays: dict[str, NDArray[Any]]) -> None:
        self.model = RidgeArms.from_arrays(arrays, self.config.ridge)


class EpsilonGreedyBandit(_LinearBandit):
    """Greedy on the linear model's predicted reward; uniformly random with probability
    ``epsilon``. Propensities ``epsilon / K + (1 - epsilon) [a = greedy]``.

    Confidence: the propensity of the chosen action (``1 - epsilon + epsilon / K`` when it
    exploits, ``epsilon / K`` when it explores).
    """

    kind = "epsilon_greedy"
    config_class = EpsilonGreedyConfig

    def __init__(self, config: EpsilonGreedyConfig | None = None, version: str = "0") -> None:
        super().__init__(config or EpsilonGreedyConfig(), version)

    def _decide_arrays(self, obs: Obs) -> DecisionArrays:
        eps = self.config.epsilon
        means = self.model.means(features(obs))
        greedy = means.argmax(axis=1)
        actions = greedy.copy()
        for i, row in enumerate(obs):
            rng = observation_rng(self.config.seed, self.n_updates, row)
            if rng.random() < eps:
                actions[i] = rng.integers(N_ACTIONS)
        propensities = np.full((len(obs), N_ACTIONS), eps / N_ACTIONS)
        propensities[np.arange(len(obs)), greedy] += 1.0 - eps
        confidences = propensities[np.arange(len(obs)), actions]
        return DecisionArrays(actions.astype(np.int64), confidences, propensities, means)


class UCB1Bandit(Bandit):
    """UCB1 over context-free per-action means; untried actions first (lowest index).

    Confidence: ``P(chosen beats the best other action)`` with ``N(mean_a, s_a^2 / n_a)``
    estimates (sample variance; 1 for fewer than 2 pulls; an untried action's mean is 0 with
    a standard error of 1e6, i.e. unknown).
    """

    kind = "ucb1"
    config_class = UCB1Config
    array_names = ("counts", "means", "m2")

    def __init__(self, config: UCB1Config | None = None, version: str = "0") -> None:
        super().__init__(config or UCB1Config(), version)
        self.counts = np.zeros(N_ACTIONS, dtype=np.int64)
        self.means = np.zeros(N_ACTIONS)
        self.m2 = np.zeros(N_ACTIONS)
        """Welford's sum of squared deviations per action."""

    def _learn(self, obs: Obs, action: int, reward: float) -> None:
        self.counts[action] += 1
        delta = reward - self.means[action]
        self.means[action] += delta / self.counts[action]
        self.m2[action] += delta * (reward - self.means[action])

    def _decide_arrays(self, obs: Obs) -> DecisionArrays:
        n = len(obs)
        counts = self.counts
        untried = np.flatnonzero(counts == 0)
        if untried.size:
            action = int(untried[0])
        else:
            total = float(counts.sum())
            bonus = self.config.exploration * np.sqrt(2.0 * math.log(total) / counts)
            action = int((self.means + bonus).argmax())
        variance = np.where(counts >= 2, self.m2 / np.maximum(counts - 1, 1), 1.0)
        se = np.where(counts > 0, np.sqrt(variance / np.maximum(counts, 1)), 1e6)
        actions = np.full(n, action, dtype=np.int64)
        confidence = prob_beats_runner_up(self.means[None], se[None], actions[:1])
        return DecisionArrays(
            actions, np.repeat(confidence, n), one_hot(actions), np.tile(self.means, (n, 1))
        )

    def _state_arrays(self) -> dict[str, NDArray[Any]]:
        return {"counts": self.counts, "means": self.means, "m2": self.m2}

    def _restore(self, arrays: dict[str, NDArray[Any]]) -> None:
        for name in self.array_names:
            if arrays[name].shape != (N_ACTIONS,):
                raise ValueError(f"{name} must have shape ({N_ACTIONS},)")
        self.counts = arrays["counts"].astype(np.int64)
        self.means = arrays["means"].astype(np.float64)
        self.m2 = arrays["m2"].astype(np.float64)


class LinUCBBandit(_LinearBandit):
    """LinUCB with disjoint linear models (Li et al. 2010, algorithm 1), deterministic.

    Confidence: ``P(chosen beats the best other action)`` with estimates
    ``N(theta_a . x, (sigma w_a)^2)``, ``w_a = sqrt(x^T A_a^{-1} x)``.
    """

    kind = "linucb"
    config_class = LinUCBConfig

    def __init__(self, config: LinUCBConfig | None = None, version: str = "0") -> None:
        super().__init__(config or LinUCBConfig(), version)

    def _decide_arrays(self, obs: Obs) -> DecisionArrays:
        x = features(obs)
        means = self.model.means(x)
        sd = self.model.sigma * self.model.widths(x)
        actions = (means + self.config.alpha * sd).argmax(axis=1).astype(np.int64)
        confidences = prob_beats_runner_up(means, sd, actions)
        return DecisionArrays(actions, confidences, one_hot(actions), means)


class ThompsonBandit(_LinearBandit):
    """Linear Thompson sampling (Agrawal & Goyal 2013) with disjoint models.

    Per row, ``samples`` posterior draws of each action's expected reward
    ``theta_a . x ~ N(theta_hat_a . x, (scale sigma w_a)^2)`` (exact for a Gaussian posterior
    over ``theta_a``, and O(K) per draw instead of O(K d^2)). The action is the best under
    draw 0; the propensities are the share of draws in which each action is best (draw 0
    included, so the chosen action's is at least ``1 / samples``).

    Confidence: that share for the chosen action, i.e. the posterior probability that the
    chosen action is the best one, estimated by sampling.
    """

    kind = "thompson"
    config_class = ThompsonConfig

    def __init__(self, config: ThompsonConfig | None = None, version: str = "0") -> None:
        super().__init__(config or ThompsonConfig(), version)

    def _decide_arrays(self, obs: Obs) -> DecisionArrays:
        n, m = len(obs), self.config.samples
        x = features(obs)
        means = self.model.means(x)
        sd = self.config.scale * self.model.sigma * self.model.widths(x)
        z = np.stack(
            [
                observation_rng(self.config.seed, self.n_updates, row).standard_normal(
                    (m, N_ACTIONS)
                )
                for row in obs
            ]
        )
        draws = means[:, None, :] + sd[:, None, :] * z
        best = draws.argmax(axis=2)
        actions = best[:, 0].astype(np.int64)
        propensities = (best[:, :, None] == np.arange(N_ACTIONS)).mean(axis=1)
        confidences = propensities[np.arange(n), actions]
        return DecisionArrays(actions, confidences, propensities, means)


BANDITS: dict[str, type[Bandit]] = {
    cls.kind: cls for cls in (EpsilonGreedyBandit, UCB1Bandit, LinUCBBandit, ThompsonBandit)
}
"""Every bandit class by its registry name."""
