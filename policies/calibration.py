"""Confidence with one meaning: the probability that executing the chosen action now beats
holding it.

A policy's raw confidence means what its maker made it mean: a softmax probability (PPO), a
softmax of Q-values (DQN), a hand-set severity (rules). The guardrails compare confidence with
one threshold per action, so a threshold only means the same whatever proposed the action when
every confidence is put on one scale. This module is that scale: a :class:`Calibration` maps a
raw confidence ``c`` of action ``a`` to an estimate of ``P(executing a now beats holding it)``,
fitted on counterfactual evidence from the simulator (``experiments.thresholds
.collect_decisions``: from the same state and random stream, the return of executing against
the return of holding, each continued by the policy; the outcome is ``[execute > hold]``).

The map is **isotonic** (pool-adjacent-violators, Ayer et al. 1955; the calibration method of
Zadrozny & Elkan 2002): a non-decreasing step function of ``c``, so a more confident decision
is never estimated less likely to help, and no shape is assumed beyond that. Actions with at
least ``min_samples`` decisions get their own map; the others share the map pooled over every
action. An action never seen at all maps through the pooled map too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from environment.actions import ACTION_NAMES, N_ACTIONS, action_index

DEFAULT_MIN_SAMPLES = 20
"""Decisions an action needs for a map of its own."""


@dataclass(frozen=True, slots=True)
class IsotonicMap:
    """A non-decreasing step function: ``upper[k]`` is the largest raw confidence of block
    ``k`` and ``rate[k]`` its outcome rate; a confidence maps to the rate of the first block
    whose ``upper`` it does not exceed (the last block beyond)."""

    upper: tuple[float, ...]
    rate: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.upper or len(self.upper) != len(self.rate):
            raise ValueError("an isotonic map needs as many block bounds as rates, at least one")
        if any(b < a for a, b in zip(self.upper, self.upper[1:], strict=False)) or any(
            b < a for a, b in zip(self.rate, self.rate[1:], strict=False)
        ):
            raise ValueError("an isotonic map's bounds and rates must be non-decreasing")

    def __call__(self, confidence: NDArray[np.float64]) -> NDArray[np.float64]:
        """The calibrated confidence of each raw confidence, float64 of the same shape."""
        index = np.searchsorted(np.asarray(self.upper), confidence, side="left")
        return np.asarray(self.rate)[np.minimum(index, len(self.rate) - 1)]


def fit_isotonic(confidences: NDArray[np.float64], outcomes: NDArray[np.float64]) -> IsotonicMap:
    """Pool adjacent violators over the pairs sorted by confidence (ties pooled first)."""
    if confidences.shape != outcomes.shape or confidences.ndim != 1 or not len(confidences):
        raise ValueError("fit_isotonic needs 1-D confidences and outcomes of one length >= 1")
    order = np.argsort(confidences, kind="stable")
    x, y = confidences[order], outcomes[order]
    blocks: list[list[float]] = []  # [upper, sum of outcomes, count]
    for value, outcome in zip(x.tolist(), y.tolist(), strict=True):
        if blocks and blocks[-1][0] == value:
            blocks[-1][1] += outcome
            blocks[-1][2] += 1
        else:
            blocks.append([value, outcome, 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            upper, total, count = blocks.pop()
            blocks[-1] = [upper, blocks[-1][1] + total, blocks[-1][2] + count]
    return IsotonicMap(tuple(b[0] for b in blocks), tuple(b[1] / b[2] for b in blocks))


@dataclass(frozen=True, slots=True)
class Calibration:
    """Per-action isotonic maps (by action name) and the pooled one (module docstring)."""

    pooled: IsotonicMap
    per_action: Mapping[str, IsotonicMap] = field(default_factory=dict)
    samples: int = 0
    """Decisions the calibration was fitted on."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.per_action) - set(ACTION_NAMES))
        if unknown:
            raise ValueError(f"unknown actions {unknown} in a calibration; allowed: {ACTION_NAMES}")

    def apply(
        self, actions: NDArray[np.integer], confidences: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Calibrated confidences, float64 (n,), for raw ``confidences`` of ``actions``."""
        out = self.pooled(confidences)
        for name, mapping in self.per_action.items():
            rows = actions == action_index(name)
            if rows.any():
                out[rows] = mapping(confidences[rows])
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"pooled": {"upper": [...], "rate": [...]}, "per_action": {...}}``."""

        def one(m: IsotonicMap) -> dict[str, list[float]]:
            return {"upper": list(m.upper), "rate": list(m.rate)}

        return {
            "samples": self.samples,
            "pooled": one(self.pooled),
            "per_action": {name: one(m) for name, m in sorted(self.per_action.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming what is malformed."""
        try:

            def one(entry: Mapping[str, Any]) -> IsotonicMap:
                return IsotonicMap(
                    tuple(float(v) for v in entry["upper"]), tuple(float(v) for v in entry["rate"])
                )

            return cls(
                one(data["pooled"]),
                {str(k): one(v) for k, v in dict(data.get("per_action", {})).items()},
                int(data.get("samples", 0)),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"malformed calibration {json.dumps(data)[:200]}: {error}") from None


def fit_calibration(
    actions: NDArray[np.integer],
    confidences: NDArray[np.float64],
    outcomes: NDArray[np.float64],
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> Calibration:
    """Fit the pooled map and one per action with at least ``min_samples`` decisions.

    actions: int (n,); confidences: raw, float64 (n,) in [0, 1]; outcomes: 1.0 where executing
    beat holding, else 0.0.
    """
    actions = np.asarray(actions, dtype=np.int64)
    confidences = np.asarray(confidences, dtype=np.float64)
    outcomes = np.asarray(outcomes, dtype=np.float64)
    if not (actions.shape == confidences.shape == outcomes.shape) or actions.ndim != 1:
        raise ValueError("actions, confidences and outcomes must be 1-D of one length")
    if not len(actions):
        raise ValueError("a calibration needs at least one decision")
    if actions.min() < 0 or actions.max() >= N_ACTIONS:
        raise ValueError(f"actions must be in [0, {N_ACTIONS - 1}]")
    per_action = {}
    for index in np.unique(actions):
        rows = actions == index
        if rows.sum() >= min_samples:
            per_action[ACTION_NAMES[int(index)]] = fit_isotonic(confidences[rows], outcomes[rows])
    return Calibration(fit_isotonic(confidences, outcomes), per_action, len(actions))
