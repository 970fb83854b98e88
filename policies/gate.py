"""A safe promotion gate on logged data: High-Confidence Policy Improvement.

After Thomas, Theocharous & Ghavamzadeh (2015), "High Confidence Policy Improvement" (ICML):
a candidate replaces the champion only when, with confidence ``1 - delta``, it is better, so a
worse challenger is promoted at most at rate ``delta``. The steps:

1. **Enough data.** Fewer than ``min_samples`` usable logged decisions: no solution found.
2. **Split** the log at random (seeded) into a selection part (``selection_share``) and a
   safety-test part. Everything the test uses is fitted on the selection part (the reward
   model), so the test's per-decision terms are independent of the choice.
3. **Select** on the selection part: for each challenger, the paired doubly-robust difference
   terms ``d_i = DR_i(challenger) - DR_i(champion)`` (Dudík et al. 2011; same rows, same
   reward model), and its *predicted* lower bound on a test set of the test part's size,
   ``mean(d) - 2 t_{1-delta, m-1} sd(d) / sqrt(m)`` (the paper's doubled width, so a candidate
   is not chosen that the test will surely refuse). The candidate is the challenger with the
   highest prediction; if it is not above zero: no solution found.
4. **Test** on the safety part: the one-sided ``1 - delta`` Student-t lower bound of the
   candidate's mean difference ``mean(d) - t_{1-delta, m-1} sd(d) / sqrt(m)`` (the paper's
   "HCPI t-test", exact for normal terms and asymptotically otherwise). Promote only if it is
   above zero and the candidate's importance weights on the test part have an effective sample
   size of at least ``min_ess``. Otherwise: no solution found, the champion stays.

"The lower bound of the challenger's value exceeds the champion's estimate" is taken on the
paired difference (same contexts, same reward model), which is what makes the rate of wrongly
promoting a worse challenger at most ``delta`` (to the t approximation); a bound on the
challenger alone against a point estimate of the champion would ignore the champion's error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from policies.base import check_range, config_error
from policies.evaluation import t_quantile
from policies.logged import BanditFeedback
from policies.ope import (
    DEFAULT_MIN_ESS,
    DoublyRobust,
    RidgeRewardModel,
    check_action_dist,
    effective_sample_size,
    importance_weights,
)

Array = NDArray[np.float64]

DEFAULT_DELTA = 0.05
"""The gate's error rate: a worse challenger is promoted at most this often."""
DEFAULT_MIN_SAMPLES = 200
"""Fewer usable logged decisions than this and the gate does not look (no solution found)."""
SELECTION_SHARE = 0.5
"""Share of the log used to select the candidate; the rest is the safety test."""
SELECTION_WIDTH_FACTOR = 2.0
"""Thomas et al. (2015) double the bound's width when predicting the test's outcome."""


@dataclass(frozen=True, slots=True)
class GateConfig:
    """The gate's settings: ``delta`` in (0, 0.5], ``min_samples`` >= 4 (two per split),
    ``min_ess`` >= 1, ``selection_share`` in (0, 1), ``seed`` >= 0 for the split."""

    delta: float = DEFAULT_DELTA
    min_samples: int = DEFAULT_MIN_SAMPLES
    min_ess: float = DEFAULT_MIN_ESS
    selection_share: float = SELECTION_SHARE
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self, "delta", 0.0, 0.5, open_low=True)
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int):
            raise config_error(self, "min_samples", self.min_samples, "an integer >= 4")
        if self.min_samples < 4:
            raise config_error(self, "min_samples", self.min_samples, "an integer >= 4")
        check_range(self, "min_ess", 1.0)
        check_range(self, "selection_share", 0.0, 1.0, open_low=True)
        if self.selection_share >= 1.0:
            raise config_error(self, "selection_share", self.selection_share, "in (0, 1)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise config_error(self, "seed", self.seed, "an integer >= 0")


@dataclass(frozen=True, slots=True)
class GateResult:
    """The gate's decision and its evidence.

    ``candidate``: the challenger selected (``None`` when none was); ``lower_bound``: the
    test's ``1 - delta`` lower bound of candidate - champion (``nan`` when not reached);
    ``difference``: the test's mean difference; ``predicted``: each challenger's predicted
    bound on the selection part; ``ess``: the candidate's ESS on the test part.
    """

    promoted: bool
    reason: str
    candidate: str | None
    lower_bound: float
    difference: float
    champion_value: float
    candidate_value: float
    ess: float
    n_selection: int
    n_test: int
    delta: float
    predicted: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        out = asdict(self)
        out["predicted"] = dict(self.predicted)
        return out


def one_sided_lower_bound(terms: Array, delta: float, width_factor: float = 1.0) -> float:
    """``mean - width_factor * t_{1-delta, n-1} * sd / sqrt(n)`` of i.i.d. terms (n >= 2)."""
    n = len(terms)
    if n < 2:
        raise ValueError(f"a lower bound needs at least 2 terms, got {n}")
    spread = float(terms.std(ddof=1)) / math.sqrt(n)
    return float(terms.mean()) - width_factor * t_quantile(1.0 - delta, n - 1) * spread


def dr_terms(feedback: BanditFeedback, action_dist: Array, model: RidgeRewardModel) -> Array:
    """Per-decision doubly-robust terms of a target policy (their mean is DR): shape (n,)."""
    u, _ = DoublyRobust().terms(feedback, action_dist, model.predict(feedback.obs))
    return u


def high_confidence_gate(
    feedback: BanditFeedback,
    champion_dist: Array,
    challenger_dists: Mapping[str, Array],
    config: GateConfig | None = None,
) -> GateResult:
    """Decide whether one of the challengers replaces the champion (see the module docstring).

    ``champion_dist`` and each of ``challenger_dists``: ``pi(a | x_i)`` on the logged
    contexts, shape (n, N_ACTIONS). A pure function of its inputs and ``config.seed``.
    """
    config = config or GateConfig()
    if not challenger_dists:
        raise ValueError("challenger_dists must name at least one challenger")
    n = feedback.n_rounds
    champion = check_action_dist(champion_dist, n)
    challengers = {name: check_action_dist(d, n) for name, d in challenger_dists.items()}
    if n < config.min_samples:
        return _refusal(
            config,
            f"only {n} usable logged decisions; the gate needs at least {config.min_samples}",
        )
    selection, test = _split(n, config)
    select_part, test_part = feedback.subset(selection), feedback.subset(test)
    model = RidgeRewardModel.fit(select_part)
    champion_select = dr_terms(select_part, champion[selection], model)
    predicted = {
        name: one_sided_lower_bound(
            dr_terms(select_part, dist[selection], model) - champion_select,
            config.delta,
            SELECTION_WIDTH_FACTOR * math.sqrt(len(selection) / len(test)),
        )
        for name, dist in challengers.items()
    }
    candidate = max(predicted, key=lambda name: predicted[name])
    common: dict[str, Any] = {
        "n_selection": len(selection),
        "n_test": len(test),
        "delta": config.delta,
        "predicted": predicted,
    }
    if not predicted[candidate] > 0:
        return GateResult(
            promoted=False,
            reason=(
                f"no solution found: the best challenger {candidate!r} is predicted a lower "
                f"bound of {predicted[candidate]:+.4g} <= 0 on the selection part"
            ),
            candidate=None,
            lower_bound=math.nan,
            difference=math.nan,
            champion_value=math.nan,
            candidate_value=math.nan,
            ess=math.nan,
            **common,
        )
    champion_test = dr_terms(test_part, champion[test], model)
    candidate_test = dr_terms(test_part, challengers[candidate][test], model)
    differences = candidate_test - champion_test
    bound = one_sided_lower_bound(differences, config.delta)
    ess = effective_sample_size(importance_weights(test_part, challengers[candidate][test]))
    evidence: dict[str, Any] = {
        "candidate": candidate,
        "lower_bound": bound,
        "difference": float(differences.mean()),
        "champion_value": float(champion_test.mean()),
        "candidate_value": float(candidate_test.mean()),
        "ess": ess,
        **common,
    }
    level = f"{1 - config.delta:g}"
    if ess < config.min_ess:
        reason = (
            f"no solution found: {candidate!r} has an effective sample size of {ess:.1f} on "
            f"the test part, below {config.min_ess:g}"
        )
        return GateResult(promoted=False, reason=reason, **evidence)
    if bound > 0:
        reason = (
            f"{candidate!r} beats the champion with confidence {level}: difference "
            f"{differences.mean():+.4g}, lower bound {bound:+.4g} > 0"
        )
        return GateResult(promoted=True, reason=reason, **evidence)
    reason = (
        f"no solution found: the {level} lower bound of {candidate!r} - champion is "
        f"{bound:+.4g} <= 0 (difference {differences.mean():+.4g})"
    )
    return GateResult(promoted=False, reason=reason, **evidence)


def _split(n: int, config: GateConfig) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Random disjoint (selection, test) row indices, each of at least 2 rows."""
    order = np.random.default_rng(config.seed).permutation(n)
    cut = min(max(2, round(n * config.selection_share)), n - 2)
    return np.sort(order[:cut]), np.sort(order[cut:])


def _refusal(config: GateConfig, reason: str) -> GateResult:
    return GateResult(
        promoted=False,
        reason=f"no solution found: {reason}",
        candidate=None,
        lower_bound=math.nan,
        difference=math.nan,
        champion_value=math.nan,
        candidate_value=math.nan,
        ess=math.nan,
        n_selection=0,
        n_test=0,
        delta=config.delta,
        predicted={},
    )
