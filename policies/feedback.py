"""The ML feedback loop's figures, computed from the decision log (pure functions).

These feed the API's ``/api/autonomous/learning`` and ``/api/ml/*`` endpoints and are logged
to MLflow by :mod:`experiments.feedback`. Every function returns a JSON-ready dict.

**What confidence means here.** A decision's ``confidence`` is read as the probability that
executing the chosen action beats holding (``noop``) in that context. Holding's reward in the
same context is not observed, so it is estimated: the outcome of a non-``noop`` decision is
``1[r_i > q(x_i, noop)]``, with ``q`` the log's ridge reward model
(:class:`policies.ope.RidgeRewardModel`, fitted on every usable record). Calibration then
compares the confidences with these outcomes:

- **reliability table**: confidences in ``n_bins`` equal-width bins on [0, 1]; per bin, the
  count, the mean confidence and the outcome rate;
- **Brier score**: ``mean (c_i - o_i)^2`` (Brier 1950);
- **ECE**, expected calibration error: ``sum_b (n_b / n) |mean c_b - mean o_b|``
  (Naeini, Cooper & Hauskrecht 2015; Guo et al. 2017).

**Adoption** of suggestions held for a human: per action and confidence bucket, how many were
approved, rejected, expired or are pending.

**Uplift per action**: the doubly-robust value of "always ``a``" minus "always ``noop``" on
the logged contexts, with a 95% bootstrap interval of the paired per-decision difference
(:func:`policies.ope.bootstrap_interval`) and the ESS of "always ``a``".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from environment.actions import ACTION_NAMES, N_ACTIONS, NOOP, action_index
from policies.logged import BanditFeedback, LoggedDecision, bandit_feedback
from policies.ope import (
    DoublyRobust,
    RidgeRewardModel,
    bootstrap_interval,
    effective_sample_size,
    importance_weights,
)

Array = NDArray[np.float64]

DEFAULT_BINS = 10
"""Bins of the reliability table and the ECE."""
APPROVAL_STATUSES: tuple[str, ...] = ("approved", "rejected", "expired", "pending")
"""What a held suggestion can end as (``agent.models.Approval.status``)."""


def _check_pairs(confidences: Array, outcomes: Array, n_bins: int) -> None:
    if confidences.shape != outcomes.shape or confidences.ndim != 1:
        raise ValueError(
            f"confidences and outcomes must be 1-D of one length, got {confidences.shape} "
            f"and {outcomes.shape}"
        )
    if ((confidences < 0) | (confidences > 1) | ~np.isfinite(confidences)).any():
        raise ValueError("confidences must be finite numbers in [0, 1]")
    if not np.isin(outcomes, (0.0, 1.0)).all():
        raise ValueError("outcomes must be 0 or 1")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins={n_bins!r} must be an integer >= 1")


def reliability_table(
    confidences: Sequence[float] | Array,
    outcomes: Sequence[float] | Array,
    n_bins: int = DEFAULT_BINS,
) -> list[dict[str, float]]:
    """Per bin ``[k/n_bins, (k+1)/n_bins)`` (the last closed): count, mean confidence and
    outcome rate (``nan`` for an empty bin)."""
    c = np.asarray(confidences, dtype=np.float64)
    o = np.asarray(outcomes, dtype=np.float64)
    _check_pairs(c, o, n_bins)
    bins = np.minimum((c * n_bins).astype(int), n_bins - 1)
    table = []
    for k in range(n_bins):
        members = bins == k
        count = int(members.sum())
        table.append(
            {
                "low": k / n_bins,
                "high": (k + 1) / n_bins,
                "count": count,
                "mean_confidence": float(c[members].mean()) if count else math.nan,
                "outcome_rate": float(o[members].mean()) if count else math.nan,
            }
        )
    return table


def brier_score(confidences: Sequence[float] | Array, outcomes: Sequence[float] | Array) -> float:
    """``mean (c - o)^2``; 0 is perfect, 0.25 is a constant 0.5."""
    c = np.asarray(confidences, dtype=np.float64)
    o = np.asarray(outcomes, dtype=np.float64)
    _check_pairs(c, o, 1)
    return float(np.mean((c - o) ** 2)) if len(c) else math.nan


def expected_calibration_error(
    confidences: Sequence[float] | Array,
    outcomes: Sequence[float] | Array,
    n_bins: int = DEFAULT_BINS,
) -> float:
    """``sum_b (n_b / n) |mean c_b - mean o_b|`` over the reliability table's bins."""
    table = reliability_table(confidences, outcomes, n_bins)
    total = sum(row["count"] for row in table)
    if total == 0:
        return math.nan
    return float(
        sum(
            row["count"] / total * abs(row["mean_confidence"] - row["outcome_rate"])
            for row in table
            if row["count"]
        )
    )


def beats_holding(feedback: BanditFeedback, model: RidgeRewardModel) -> NDArray[np.bool_]:
    """``r_i > q(x_i, noop)`` per decision: shape (n,)."""
    return feedback.rewards > model.predict(feedback.obs)[:, NOOP]


def calibration_report(
    records: Sequence[LoggedDecision], n_bins: int = DEFAULT_BINS
) -> dict[str, object]:
    """Reliability table, Brier score and ECE of the non-``noop`` usable decisions (see the
    module docstring for the outcome)."""
    usable = [r for r in records if r.ope_usable and r.reward is not None]
    acting = [r for r in usable if r.action != ACTION_NAMES[NOOP]]
    if not acting:
        return {"n": 0, "brier": math.nan, "ece": math.nan, "table": []}
    feedback, _ = bandit_feedback(usable)
    model = RidgeRewardModel.fit(feedback)
    rows = np.array([r.action != ACTION_NAMES[NOOP] for r in usable])
    outcomes = beats_holding(feedback, model)[rows].astype(np.float64)
    confidences = np.array([r.confidence for r in acting])
    return {
        "n": len(acting),
        "brier": brier_score(confidences, outcomes),
        "ece": expected_calibration_error(confidences, outcomes, n_bins),
        "table": reliability_table(confidences, outcomes, n_bins),
    }


def execution_values(
    records: Sequence[LoggedDecision],
) -> tuple[NDArray[np.int64], Array, Array]:
    """(actions, confidences, values) of the executed non-``noop`` usable decisions, with
    ``value_i = r_i - q(x_i, noop)``: the estimated value of executing over holding, the
    evidence :func:`experiments.thresholds.optimal_thresholds` takes. Held decisions show only
    holding's outcome (they train ``q``), so the values come from executed ones."""
    usable = [r for r in records if r.ope_usable and r.reward is not None]
    feedback, _ = bandit_feedback(usable)
    hold = RidgeRewardModel.fit(feedback).predict(feedback.obs)[:, NOOP]
    acting = feedback.actions != NOOP
    confidences = np.array([r.confidence for r in usable], dtype=np.float64)
    return (
        feedback.actions[acting].astype(np.int64),
        confidences[acting],
        (feedback.rewards - hold)[acting],
    )


def adoption_report(
    suggestions: Iterable[tuple[str, float, str]], n_bins: int = 5
) -> dict[str, dict[str, dict[str, float]]]:
    """Per action and confidence bucket (``"0.6-0.8"``): counts of each of
    :data:`APPROVAL_STATUSES` and the approval rate among the decided (approved + rejected +
    expired; ``nan`` when none). ``suggestions``: ``(action, confidence, status)``."""
    counts: dict[str, dict[str, Counter[str]]] = {}
    for action, confidence, status in suggestions:
        action_index(action)
        if status not in APPROVAL_STATUSES:
            raise ValueError(f"unknown status {status!r}; allowed: {list(APPROVAL_STATUSES)}")
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence {confidence!r} outside [0, 1]")
        k = min(int(confidence * n_bins), n_bins - 1)
        bucket = f"{k / n_bins:.2g}-{(k + 1) / n_bins:.2g}"
        counts.setdefault(action, {}).setdefault(bucket, Counter())[status] += 1
    out: dict[str, dict[str, dict[str, float]]] = {}
    for action, buckets in sorted(counts.items()):
        out[action] = {}
        for bucket, counter in sorted(buckets.items()):
            decided = counter["approved"] + counter["rejected"] + counter["expired"]
            row: dict[str, float] = {status: float(counter[status]) for status in APPROVAL_STATUSES}
            row["approval_rate"] = counter["approved"] / decided if decided else math.nan
            out[action][bucket] = row
    return out


def uplift_report(
    records: Sequence[LoggedDecision], *, n_bootstrap: int = 500, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Per action ``a`` other than ``noop``: the DR uplift of always-``a`` over always-
    ``noop`` with its 95% interval and the ESS (see the module docstring)."""
    feedback, _ = bandit_feedback(records)
    model = RidgeRewardModel.fit(feedback)
    q = model.predict(feedback.obs)
    n = feedback.n_rounds

    def always(action: int) -> Array:
        dist = np.zeros((n, N_ACTIONS))
        dist[:, action] = 1.0
        return dist

    hold, _ = DoublyRobust().terms(feedback, always(NOOP), q)
    out = {}
    for action in range(N_ACTIONS):
        if action == NOOP:
            continue
        terms, _ = DoublyRobust().terms(feedback, always(action), q)
        interval = bootstrap_interval(terms - hold, np.ones(n), n_bootstrap=n_bootstrap, seed=seed)
        out[ACTION_NAMES[action]] = {
            "uplift": interval.value,
            "low": interval.low,
            "high": interval.high,
            "ess": effective_sample_size(importance_weights(feedback, always(action))),
            "executed": float((feedback.actions == action).sum()),
        }
    return out
