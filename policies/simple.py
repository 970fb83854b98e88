"""Reference points: ``noop`` (never act) and ``random`` (uniform over every action).

Confidence:

- ``noop``: 1.0. It always chooses ``noop`` and is certain of it; the number carries no
  information, which is right for a policy that never acts.
- ``random``: ``1 / N_ACTIONS``, the probability of the action drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from environment.actions import N_ACTIONS, NOOP
from policies import storage
from policies.base import ArrayPolicy, DecisionArrays, Obs, observation_rng
from policies.validation import check_range


class NoopPolicy(ArrayPolicy):
    """Always ``noop`` with confidence 1: the business left to its own dynamics."""

    kind = "noop"

    def __init__(self, version: str = "1") -> None:
        self.name = "noop"
        self.version = version

    def _decide_arrays(self, obs: Obs) -> DecisionArrays:
        n = len(obs)
        propensities = np.zeros((n, N_ACTIONS))
        propensities[:, NOOP] = 1.0
        return DecisionArrays(np.full(n, NOOP, dtype=np.int64), np.ones(n), propensities)

    def save(self, path: str | Path) -> Path:
        return storage.save_json(path, self.kind, {"version": self.version})

    @classmethod
    def load(cls, path: str | Path) -> NoopPolicy:
        """Read a file written by :meth:`save`."""
        document = storage.load_json(path, cls.kind)
        return cls(version=str(document.get("version", "1")))


class RandomPolicy(ArrayPolicy):
    """Uniform over every action; the draw is keyed by (seed, observation bytes).

    Keying the draw on the observation (:func:`policies.base.observation_rng`) keeps
    ``decide`` pure, so batch and single calls agree and a logged decision replays exactly;
    across an episode the observations differ, so the actions are independent uniform draws.
    """

    kind = "random"

    def __init__(self, seed: int = 0, version: str = "1") -> None:
        self.seed = seed
        check_range(self, "seed", 0, 2**63 - 1, integer=True)
        self.name = "random"
        self.version = version

    def _decide_arrays(self, obs: Obs) -> DecisionArrays:
        n = len(obs)
        actions = np.array(
            [observation_rng(self.seed, 0, row).integers(N_ACTIONS) for row in obs],
            dtype=np.int64,
        )
        return DecisionArrays(
            actions, np.full(n, 1.0 / N_ACTIONS), np.full((n, N_ACTIONS), 1.0 / N_ACTIONS)
        )

    def save(self, path: str | Path) -> Path:
        return storage.save_json(path, self.kind, {"seed": self.seed, "version": self.version})

    @classmethod
    def load(cls, path: str | Path) -> RandomPolicy:
        """Read a file written by :meth:`save`."""
        document = storage.load_json(path, cls.kind)
        try:
            return cls(seed=int(document["seed"]), version=str(document.get("version", "1")))
        except (KeyError, TypeError, ValueError) as error:
            raise storage.PolicyFileError(
                f"random policy file {str(path)!r} is corrupt: {error}"
            ) from None
