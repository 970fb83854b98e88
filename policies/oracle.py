"""A Monte Carlo lookahead planner on the environment's hidden state: the upper reference.

**Not for production.** It reads the simulator's full hidden state (``get_state``) and
simulates the future with the true dynamics and the true parameters, none of which exists for
a real business. It answers one question: how far are the learned policies from the best
achievable in this simulator?

**Algorithm** (a rollout policy, Bertsekas' one-step policy improvement). At every cycle, for
each candidate action ``a``: copy the current state, take ``a``, then follow the continuation
policy (the rules baseline, its cooldowns read from the simulated state's recent actions)
for ``horizon - 1`` more cycles, summing the environment's reward (``gamma``-discounted). Do
this ``rollouts`` times with common random numbers across actions (draw ``k`` uses the same
generator for every action, so the comparison is paired), and take the action with the best
mean. With long enough rollouts this is never worse than the continuation policy, in expectation.

- Rollouts run the pure dynamics (:mod:`environment.dynamics`) on copies of the state, so the
  environment's own RNG is never touched: attaching the oracle does not change the episode.
- ``noise=False`` (the default) rolls out the expected dynamics (no sampling noise), which is
  deterministic, so one rollout per action suffices; ``noise=True`` samples.
- The continuation reads the true (noise-free) KPIs of the simulated states.
- **Long-delay actions.** A rollout of ``horizon`` cycles cannot see the payoff of an action
  whose effect lands late (``funnel_fix`` after 3 days, ``ship_feature`` after 2 weeks, both
  lasting for months): it would only see the cost. Actions whose delay exceeds half the
  horizon are therefore not candidates: the oracle takes them exactly when the continuation
  policy would (it trusts the baseline on investments rollouts cannot judge).

**Confidence**: the share of the paired rollouts in which the chosen action had the best
return (1.0 with deterministic rollouts: the planner is sure under its model).
**Propensities**: a point mass. **Expected values**: the mean rollout return per candidate
(NaN for actions that were not candidates).

Cost: ``candidates x rollouts x horizon`` simulated cycles per planning step, once every
``replan_every`` cycles (about 4-5 s per 540-cycle episode at the defaults on one core).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from environment import dynamics
from environment.actions import ACTIONS, N_ACTIONS, NOOP
from environment.env import SaaSOpsEnv
from policies import storage
from policies.base import (
    ArrayPolicy,
    DecisionArrays,
    Obs,
    PolicyFileError,
    check_action_index,
    check_range,
    config_error,
    one_hot,
)
from policies.rules import RulesConfig, RulesPolicy, ready_mask

CONTINUATIONS = ("rules", "noop")
"""Continuation policies a rollout may follow after its first action."""


@dataclass(frozen=True, slots=True)
class OracleConfig:
    """Budget and model of the lookahead."""

    horizon: int = 120
    """Cycles simulated per rollout, the first action included (120 = 20 days: fatigue, price
    pressure and at-risk churn play out over weeks; 30 cycles proved too myopic)."""
    rollouts: int = 1
    """Rollouts per candidate action (paired across actions)."""
    gamma: float = 1.0
    """Discount per cycle inside a rollout."""
    noise: bool = False
    """Sample the dynamics' noise in rollouts (``True``) or roll out the expected dynamics."""
    seed: int = 0
    """Seed of the rollouts' generators when ``noise`` is on."""
    replan_every: int = 6
    """Plan every this many cycles (6: once a day); in between, act as the continuation policy
    does. A budget knob: the cost per episode falls by this factor."""
    clairvoyant: bool = True
    """``True``: rollouts run the copied state's full shock schedule, future shocks included
    (an upper reference no real operator has). ``False``: they see only the shocks that have
    begun, which the KPIs reveal (their remaining course is taken as drawn)."""
    continuations: tuple[str, ...] = ("rules",)
    """Continuation policies after the first action, from :data:`CONTINUATIONS`; an action is
    worth its best rollout over them (policy improvement over the best of several bases, so a
    continuation can repeat an action the rules' cooldown would hold)."""

    def __post_init__(self) -> None:
        for name, high in (("horizon", 10_000), ("rollouts", 1_000), ("replan_every", 10_000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise config_error(self, name, value, f"an integer in [1, {high}]")
            check_range(self, name, 1, high)
        check_range(self, "gamma", 0.0, 1.0, open_low=True)
        if not isinstance(self.noise, bool):
            raise config_error(self, "noise", self.noise, "True or False")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise config_error(self, "seed", self.seed, "an integer >= 0")
        if not isinstance(self.clairvoyant, bool):
            raise config_error(self, "clairvoyant", self.clairvoyant, "True or False")
        if (
            not isinstance(self.continuations, tuple)
            or not self.continuations
            or any(c not in CONTINUATIONS for c in self.continuations)
        ):
            raise config_error(
                self, "continuations", self.continuations, f"a non-empty tuple of {CONTINUATIONS}"
            )

    @property
    def candidates(self) -> tuple[int, ...]:
        """Actions the rollouts judge: those whose effect lands within half the horizon."""
        return tuple(i for i, spec in enumerate(ACTIONS) if 2 * spec.delay_steps <= self.horizon)


class LookaheadOracle(ArrayPolicy):
    """Rollout planner over the attached environment (see the module docstring).

    Call ``attach(env)`` first (a ``gymnasium.make`` env of ``autopilot/SaaSOps-v0``, or its
    unwrapped :class:`~environment.env.SaaSOpsEnv`), ``reset()`` at each episode start and
    ``record(action)`` after each step (:func:`policies.evaluation.evaluate` does all three).
    """

    kind = "oracle"

    def __init__(
        self,
        config: OracleConfig | None = None,
        continuation: RulesConfig | None = None,
        version: str = "1",
    ) -> None:
        self.config = config or OracleConfig()
        self.name = "oracle"
        self.version = version
        self.continuation = RulesPolicy(continuation)
        self._env: SaaSOpsEnv | None = None
        self._candidates = self.config.candidates
        self._cooldowns = self.continuation.config.cooldown_steps()

    # --- capabilities -----------------------------------------------------------------------

    def attach(self, env: Any) -> None:
        """Plan from ``env``'s current state from now on."""
        inner = getattr(env, "unwrapped", env)
        if not isinstance(inner, SaaSOpsEnv):
            raise TypeError(
                f"the oracle plans on an autopilot/SaaSOps-v0 env, got {type(inner).__name__}"
            )
        self._env = inner

    @property
    def env(self) -> SaaSOpsEnv | None:
        """The attached (unwrapped) environment, if any."""
        return self._env

    def reset(self) -> None:
        """A new episode: forget the continuation's cooldowns."""
        self.continuation.reset()

    def record(self, action: int) -> None:
        """One cycle passed with ``action`` executed (feeds the continuation's cooldowns)."""
        self.continuation.record(check_action_index(action))

    # --- planning ---------------------------------------------------------------------------

    def plan(self) -> tuple[int, float, np.ndarray]:
        """(action, confidence, mean rollout return per action) from the attached env's state.

        The environment itself is not modified.
        """
        if self._env is None:
            raise RuntimeError("the oracle has no environment: call attach(env) first")
        env = self._env
        state = self._belief(env.get_state())
        params = env.params
        kpis = dynamics.true_kpis(state, params)
        base_action, _, _ = self.continuation.choose(kpis, self._ready(state))
        values = np.full(N_ACTIONS, np.nan)
        if base_action not in self._candidates or state.t % self.config.replan_every:
            return base_action, 1.0, values
        returns = np.zeros((self.config.rollouts, len(self._candidates)))
        for k in range(self.config.rollouts):
            for j, action in enumerate(self._candidates):
                returns[k, j] = max(
                    self._rollout(state, action, params, self._draw_rng(state.t, k), continuation)
                    for continuation in self.config.continuations
                )
        means = returns.mean(axis=0)
        values[list(self._candidates)] = means
        best = int(np.argmax(means))
        wins = float((returns.argmax(axis=1) == best).mean())
        return self._candidates[best], wins, values

    def _rollout(
        self,
        state: Any,
        action: int,
        params: Any,
        rng: np.random.Generator | None,
        continuation: str = "rules",
    ) -> float:
        """Discounted return of ``action`` then ``continuation`` for ``horizon - 1`` cycles."""
        total, discount = 0.0, 1.0
        for _ in range(self.config.horizon):
            state = dynamics.transition(state, action, params, rng)
            failed = dynamics.terminal(state, params)
            kpis = dynamics.true_kpis(state, params)
            total += discount * dynamics.reward(state, kpis["alignment_score"], params, failed)
            if failed:
                break
            discount *= self.config.gamma
            if continuation == "rules":
                action, _, _ = self.continuation.choose(kpis, self._ready(state))
            else:
                action = NOOP
        return total

    def _draw_rng(self, t: int, k: int) -> np.random.Generator | None:
        """The generator of rollout draw ``k`` at step ``t`` (the same for every action and
        continuation: paired comparisons); ``None`` for the expected dynamics."""
        return np.random.default_rng([self.config.seed, t, k]) if self.config.noise else None

    def _belief(self, state: Any) -> Any:
        """The state the rollouts start from: without the future shock schedule unless the
        oracle is clairvoyant."""
        if not self.config.clairvoyant:
            state.shocks = tuple(shock for shock in state.shocks if shock.start <= state.t)
        return state

    def _ready(self, state: Any) -> np.ndarray:
        """The continuation's off-cooldown actions in ``state``, by the state's cycles since
        each action executed (what the observation carries)."""
        return ready_mask(np.asarray(state.cycles_since, dtype=np.int64) - 1, self._cooldowns)

    def _decide_arrays(self, obs: Obs) -> DecisionArrays:
        if len(obs) != 1:
            raise ValueError(
                "the oracle plans from the attached environment's state, one observation at "
                f"a time; got a batch of {len(obs)}"
            )
        action, confidence, values = self.plan()
        actions = np.array([action], dtype=np.int64)
        return DecisionArrays(actions, np.array([confidence]), one_hot(actions), values[None, :])

    # --- files ------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """JSON: the oracle's and the continuation's configs (not the environment)."""
        return storage.save_json(
            path,
            self.kind,
            {
                "version": self.version,
                "config": asdict(self.config),
                "continuation": self.continuation.config.to_dict(),
                "steps_since": self.continuation.steps_since.tolist(),
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> LookaheadOracle:
        """Read a file written by :meth:`save`; ``attach(env)`` before deciding."""
        document = storage.load_json(path, cls.kind)
        try:
            known = {f.name for f in fields(OracleConfig)}
            raw = dict(document["config"])
            if "continuations" in raw:
                raw["continuations"] = tuple(raw["continuations"])
            unknown = sorted(set(raw) - known)
            if unknown:
                raise ValueError(f"unknown OracleConfig fields {unknown}")
            oracle = cls(
                OracleConfig(**raw),
                RulesConfig.from_dict(document["continuation"]),
                str(document.get("version", "1")),
            )
            steps = np.asarray(document["steps_since"], dtype=np.int64)
            if steps.shape != (N_ACTIONS,) or (steps < 0).any():
                raise ValueError(f"steps_since must be {N_ACTIONS} integers >= 0")
        except (KeyError, TypeError, ValueError) as error:
            raise PolicyFileError(f"oracle policy file {str(path)!r} is corrupt: {error}") from None
        oracle.continuation.steps_since[:] = steps
        return oracle
