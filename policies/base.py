"""The one protocol every decision-maker satisfies, and the record it returns.

Given an observation (float32, shape ``(N_OBS,)``: the KPIs, then the recent actions, as
:func:`environment.kpis.encode` makes it), a policy answers which action, with what confidence,
and with which propensities over all actions. Learning from rewards is a separate capability
(:class:`OnlineLearner`), and so are two others a caller must honour when it runs a policy in a
loop:

- :class:`Episodic`: the policy remembers what was *executed* (the rules' cooldowns). The loop
  calls ``reset()`` when an episode (or a deployment) starts and ``record(action)`` once per
  cycle with the action that was actually executed, so ``decide`` itself stays a pure function
  of the policy's state and the observation.
- :class:`EnvAware`: the policy plans on a copy of the environment's hidden state (the oracle),
  so it is handed the environment explicitly with ``attach(env)``.

``decide`` is a pure function of the policy's state and the observation, stochastic policies
included: they draw their randomness from a generator keyed by (seed, update count,
observation bytes) (:func:`observation_rng`), so a logged decision can be replayed exactly, a
batch decides exactly as row-by-row calls do, and a saved-then-loaded policy decides the same.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from environment.actions import ACTION_NAMES, N_ACTIONS, NOOP
from environment.kpis import N_OBS

# Re-exported: rules and the oracle import the config validators from here.
from policies.validation import check_range as check_range
from policies.validation import config_error as config_error

Obs = NDArray[np.float32]
PROPENSITY_TOLERANCE = 1e-6
"""How far from 1 a decision's propensities may sum (float32 inputs, float64 sums)."""
DECISION_TOLERANCE = 1e-6
"""How closely two evaluations of one policy on one observation agree: a batch and the same
rows one by one, a policy before and after save/load, the served model and the policy in
process. The action is the same; confidence and propensities agree within this absolute
tolerance, expected values within it relatively. It is float32 precision: the networks are
float32 and the BLAS kernel picked for one row and for many may round differently."""


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
        if self.propensities[self.action] <= 0.0:
            raise ValueError(
                f"the chosen action {self.action} has propensity 0; a policy cannot pick an "
                "action it gives no probability"
            )
        if self.expected_values is not None and self.expected_values.shape != (N_ACTIONS,):
            raise ValueError(
                f"expected_values must have shape ({N_ACTIONS},), got {self.expected_values.shape}"
            )

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
        """Decide for one observation, float32 shape (N_OBS,)."""
        ...

    def decide_batch(self, obs: Obs) -> list[Decision]:
        """Decide for a batch, shape (n, N_OBS); equal to ``decide`` row by row (the same
        actions, numbers within :data:`DECISION_TOLERANCE`)."""
        ...

    def save(self, path: str | Path) -> Path:
        """Write the policy to one file or folder at ``path`` and return where it went."""
        ...


@runtime_checkable
class MaskAware(Protocol):
    """A policy that can rank the actions a caller allows (the cycle's feasible actions):
    its own scores with the refused actions left out, not a fallback to ``noop``."""

    def decide_allowed(self, obs: Obs, allowed: NDArray[np.bool_]) -> Decision:
        """``decide`` for one observation, choosing only among ``allowed`` (bool, shape
        (N_ACTIONS,), :func:`check_allowed`)."""
        ...


@runtime_checkable
class OnlineLearner(Protocol):
    """A policy that learns from the reward realized after one of its decisions."""

    def update(self, obs: Obs, action: int, reward: float, propensity: float) -> None:
        """Learn from ``reward`` observed after taking ``action`` in ``obs`` (logged with
        ``propensity``, which importance-weighted learners use)."""
        ...


@runtime_checkable
class Episodic(Protocol):
    """A policy with a memory of executed actions (e.g. cooldowns)."""

    def reset(self) -> None:
        """Forget the memory: an episode (or a deployment) starts."""
        ...

    def record(self, action: int) -> None:
        """One cycle passed and ``action`` was executed in it (``noop`` if nothing was)."""
        ...


@runtime_checkable
class EnvAware(Protocol):
    """A policy that needs the environment itself at decide time (a planner)."""

    def attach(self, env: Any) -> None:
        """Plan from ``env``'s current hidden state from now on."""
        ...


class PolicyFileError(ValueError):
    """A policy file exists but cannot be used: corrupt, truncated, or of another kind."""


# --- validation ---------------------------------------------------------------------------


def check_obs(obs: object, *, batch: bool = False) -> Obs:
    """Validate an observation (or a batch of them) and return it as float32.

    obs: shape (N_OBS,), or (n, N_OBS) with ``batch=True``, n >= 1.
    Raises ``ValueError`` naming the problem: wrong shape, not numeric, or NaN/inf entries.
    """
    try:
        array = np.asarray(obs, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(
            f"observation must be an array of numbers, got {type(obs).__name__}"
        ) from None
    expected = f"(n, {N_OBS})" if batch else f"({N_OBS},)"
    if (batch and (array.ndim != 2 or array.shape[1] != N_OBS or array.shape[0] == 0)) or (
        not batch and array.shape != (N_OBS,)
    ):
        raise ValueError(f"observation must have shape {expected}, got {array.shape}")
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0].tolist()
        raise ValueError(f"observation contains NaN or inf (first at index {bad})")
    return array


def check_action_index(action: object) -> int:
    """An action index as ``int``; ``ValueError`` naming the value and the allowed range."""
    if isinstance(action, bool) or not isinstance(action, int | np.integer):
        raise ValueError(f"action must be an integer in [0, {N_ACTIONS - 1}], got {action!r}")
    if not 0 <= int(action) < N_ACTIONS:
        raise ValueError(f"action {action!r} outside [0, {N_ACTIONS - 1}]")
    return int(action)


# --- deciding among allowed actions --------------------------------------------------------


def check_allowed(allowed: object) -> NDArray[np.bool_]:
    """``allowed`` as a bool array of shape (N_ACTIONS,) with at least one action allowed;
    ``ValueError`` naming the shape or the emptiness otherwise."""
    mask = np.asarray(allowed)
    if mask.dtype != np.bool_ or mask.shape != (N_ACTIONS,):
        raise ValueError(
            f"allowed must be a bool array of shape ({N_ACTIONS},), got {mask.dtype} {mask.shape}"
        )
    if not mask.any():
        raise ValueError("allowed excludes every action; at least one must remain")
    return mask


def restrict(decision: Decision, allowed: NDArray[np.bool_]) -> Decision:
    """``decision`` restricted to ``allowed`` without asking the policy again.

    The propensities are renormalized over the allowed actions (uniform over them when the
    policy gave them no mass): what the decision is then drawn from, so what is logged. The
    decision stands when its action is allowed; otherwise the most probable allowed action is
    chosen (``noop`` when the policy gave the allowed actions no mass and ``noop`` is allowed),
    with its restricted probability as confidence.
    """
    mask = check_allowed(allowed)
    masked = np.where(mask, np.asarray(decision.propensities, dtype=np.float64), 0.0)
    mass = float(masked.sum())
    masked = masked / mass if mass > 0.0 else mask / mask.sum()
    if mask[decision.action]:
        action, confidence = decision.action, float(decision.confidence)
    else:
        action = NOOP if mass == 0.0 and mask[NOOP] else int(np.argmax(masked))
        confidence = float(masked[action])
    return Decision(
        action,
        confidence,
        masked,
        decision.policy_name,
        decision.policy_version,
        decision.expected_values,
    )


def decide_within(policy: Policy, obs: Obs, allowed: NDArray[np.bool_]) -> Decision:
    """``policy``'s decision for ``obs`` among ``allowed``: its own ranking when it is
    :class:`MaskAware`, else its decision :func:`restrict`-ed."""
    mask = check_allowed(allowed)
    if isinstance(policy, MaskAware):
        return policy.decide_allowed(obs, mask)
    return restrict(policy.decide(obs), mask)


# --- shared maths -------------------------------------------------------------------------


def one_hot(actions: NDArray[np.integer]) -> NDArray[np.float64]:
    """Deterministic propensities. actions: int, shape (n,) -> float64, shape (n, N_ACTIONS)."""
    out = np.zeros((len(actions), N_ACTIONS))
    out[np.arange(len(actions)), actions] = 1.0
    return out


def softmax(x: NDArray[np.floating], temperature: float = 1.0) -> NDArray[np.float64]:
    """Row-wise ``exp(x / T) / sum exp(x / T)`` in float64. x: shape (n, k) -> (n, k)."""
    z = np.asarray(x, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def normal_cdf(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Standard normal CDF, elementwise."""
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * (1.0 + erf(np.asarray(z, dtype=np.float64) / math.sqrt(2.0)))


def prob_beats_runner_up(
    means: NDArray[np.float64], stds: NDArray[np.float64], chosen: NDArray[np.integer]
) -> NDArray[np.float64]:
    """Under independent Gaussians ``N(means, stds^2)`` per action, P(chosen > best other).

    The best other action is the one with the highest mean among the rest. means, stds:
    shape (n, N_ACTIONS); chosen: shape (n,). Returns shape (n,), in [0, 1].
    """
    rows = np.arange(len(chosen))
    others = means.copy()
    others[rows, chosen] = -np.inf
    runner_up = others.argmax(axis=1)
    gap = means[rows, chosen] - means[rows, runner_up]
    spread = np.sqrt(stds[rows, chosen] ** 2 + stds[rows, runner_up] ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(spread > 0, gap / np.where(spread > 0, spread, 1.0), np.sign(gap) * np.inf)
    z = np.where(np.isnan(z), 0.0, z)
    return np.clip(normal_cdf(z), 0.0, 1.0)


def observation_rng(seed: int, counter: int, obs_row: Obs) -> np.random.Generator:
    """A generator keyed by (seed, counter, the observation's bytes).

    Stochastic policies draw from it so that a decision is a pure function of the policy's
    state and the observation: reproducible from a log, equal in batch and single form.
    """
    digest = hashlib.blake2b(np.ascontiguousarray(obs_row).tobytes(), digest_size=8).digest()
    return np.random.default_rng([seed, counter, int.from_bytes(digest, "little")])


class DecisionArrays(NamedTuple):
    """Decisions for a batch as arrays (n rows).

    actions: int64 (n,); confidences: float64 (n,); propensities: float64 (n, N_ACTIONS);
    expected_values: float64 (n, N_ACTIONS) or ``None``.
    """

    actions: NDArray[np.int64]
    confidences: NDArray[np.float64]
    propensities: NDArray[np.float64]
    expected_values: NDArray[np.float64] | None = None


class ArrayPolicy(ABC):
    """Shared plumbing: a subclass decides a whole batch as arrays in ``_decide_arrays``, and
    ``decide`` / ``decide_batch`` validate the input and build :class:`Decision` records.

    ``decide(obs)`` is ``decide_batch(obs[None])[0]``, so single and batch agree by
    construction; :meth:`decide_arrays` is the allocation-light path for throughput.
    """

    name: str
    version: str

    @abstractmethod
    def _decide_arrays(self, obs: Obs) -> DecisionArrays:
        """Decide for a validated batch, float32 shape (n, N_OBS)."""

    @abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write the policy to ``path``; return where it went."""

    def decide(self, obs: Obs) -> Decision:
        """Decide for one observation, float32 shape (N_OBS,)."""
        arrays = self._decide_arrays(check_obs(obs)[None, :])
        return self._decision(arrays, 0)

    def decide_batch(self, obs: Obs) -> list[Decision]:
        """Decide for a batch, shape (n, N_OBS); equal to ``decide`` row by row."""
        arrays = self._decide_arrays(check_obs(obs, batch=True))
        return [self._decision(arrays, i) for i in range(len(arrays.actions))]

    def _decision(self, arrays: DecisionArrays, i: int) -> Decision:
        values = arrays.expected_values
        return Decision(
            action=int(arrays.actions[i]),
            confidence=min(max(float(arrays.confidences[i]), 0.0), 1.0),
            propensities=arrays.propensities[i],
            policy_name=self.name,
            policy_version=self.version,
            expected_values=None if values is None else values[i],
        )

    def decide_arrays(self, obs: Obs) -> DecisionArrays:
        """Decide for a batch, shape (n, N_OBS), returning arrays (no Decision objects)."""
        batch = check_obs(obs, batch=True)
        arrays = self._decide_arrays(batch)
        return arrays._replace(confidences=np.clip(arrays.confidences, 0.0, 1.0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r})"
