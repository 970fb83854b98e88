"""The one protocol every decision-maker satisfies, and the record it returns.

Given a KPI observation (float32, shape ``(N_KPIS,)``, as :func:`environment.kpis.encode`
makes it), a policy answers which action, with what confidence, and with which propensities
over all actions. Learning from rewards is a separate capability (:class:`OnlineLearner`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from environment.actions import ACTION_NAMES, N_ACTIONS
from environment.kpis import N_KPIS

Obs = NDArray[np.float32]
PROPENSITY_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class Decision:
    """What a policy decided for one observation.

    - ``action`` / ``action_name``: the chosen index and its stable name.
    - ``confidence``: in [0, 1]; its meaning is documented on each policy.
    - ``propensities``: float64, shape (N_ACTIONS,), sums to 1: the probability the policy
      would pick each action for this observation (logged for off-policy evaluation).
    - ``expected_values``: optional, shape (N_ACTIONS,), the policy's value estimate per action.
    - ``policy_name`` / ``policy_version``: who decided (a version is e.g. an MLflow model URI).
    """

    action: int
    confidence: float
    propensities: NDArray[np.float64]
    policy_name: str
    policy_version: str = "0"
    expected_values: NDArray[np.float64] | None = field(default=None)

    def __post_init__(self) -> None:
        if not 0 <= self.action < N_ACTIONS:
            raise ValueError(f"action {self.action} outside [0, {N_ACTIONS - 1}]")
        if not (math.isfinite(self.confidence) and 0.0 <= self.confidence <= 1.0):
            raise ValueError(f"confidence {self.confidence!r} outside [0, 1]")
        if self.propensities.shape != (N_ACTIONS,):
            raise ValueError(
                f"propensities must have shape ({N_ACTIONS},), got {self.propensities.shape}"
            )
        total = float(self.propensities.sum())
        if abs(total - 1.0) > PROPENSITY_TOLERANCE or (self.propensities < 0).any():
            raise ValueError(f"propensities must be >= 0 and sum to 1, got sum {total}")

    @property
    def action_name(self) -> str:
        """The stable name of the chosen action."""
        return ACTION_NAMES[self.action]

    @property
    def propensity(self) -> float:
        """Probability of the chosen action."""
        return float(self.propensities[self.action])


@runtime_checkable
class Policy(Protocol):
    """Anything that decides. ``name`` and ``version`` identify it in decision logs."""

    name: str
    version: str

    def decide(self, obs: Obs) -> Decision:
        """Decide for one observation, float32 shape (N_KPIS,)."""
        ...

    def decide_batch(self, obs: Obs) -> list[Decision]:
        """Decide for a batch, shape (n, N_KPIS); equal to ``decide`` row by row."""
        ...

    def save(self, path: str | Path) -> Path:
        """Write the policy to one file or folder at ``path`` and return where it went."""
        ...


@runtime_checkable
class OnlineLearner(Protocol):
    """A policy that learns from the reward realized after one of its decisions."""

    def update(self, obs: Obs, action: int, reward: float, propensity: float) -> None:
        """Learn from ``reward`` observed after taking ``action`` in ``obs`` (logged with
        ``propensity``, which importance-weighted learners use)."""
        ...


def check_obs(obs: object, *, batch: bool = False) -> Obs:
    """Validate an observation (or a batch of them) and return it as float32.

    Raises ``ValueError`` naming the problem: wrong shape, or NaN/inf entries.
    """
    array = np.asarray(obs, dtype=np.float32)
    expected = f"(n, {N_KPIS})" if batch else f"({N_KPIS},)"
    if (batch and (array.ndim != 2 or array.shape[1] != N_KPIS)) or (
        not batch and array.shape != (N_KPIS,)
    ):
        raise ValueError(f"observation must have shape {expected}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("observation contains NaN or inf")
    return array
