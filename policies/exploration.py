"""Logging a behaviour policy in the simulator, with epsilon-uniform exploration.

The behaviour's distribution over actions is the policy's own mixed with the uniform one,

    pi_b(a | x) = (1 - eps) * pi(a | x) + eps / N_ACTIONS

so every action has probability at least ``eps / N_ACTIONS`` (what off-policy estimates of
other policies need), and the logged propensity of the executed action is exactly the
probability it was drawn with. Each step of the simulator is one decision; its reward is the
environment's one-step reward, joined at once (``reward_source`` ``computed``). The log is in
the decision-log contract (:mod:`policies.logged`), the same ``autopilot ope`` reads from the
database export.

Timestamps are simulated: :data:`SIMULATED_EPOCH` plus four hours a step (one cycle), each
episode continuing where the last ended, so a log sorts in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import gymnasium
import numpy as np
from numpy.typing import NDArray

import environment
from environment.actions import ACTION_NAMES, N_ACTIONS
from environment.params import BusinessParams
from environment.scenarios import SCENARIO_NAMES
from policies.base import EnvAware, Episodic, Policy
from policies.logged import LoggedDecision

SIMULATED_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""The simulated time of a log's first decision."""
CYCLE = timedelta(days=BusinessParams().dt_days)
"""One simulator step: one autonomous cycle."""


def explore_mixture(probabilities: NDArray[np.float64], explore: float) -> NDArray[np.float64]:
    """``(1 - eps) p + eps / N_ACTIONS``; probabilities: shape (..., N_ACTIONS)."""
    return (1.0 - explore) * probabilities + explore / N_ACTIONS


def check_explore(explore: object) -> float:
    """``explore`` as a float in [0, 1]; ``ValueError`` naming the value otherwise."""
    if isinstance(explore, bool) or not isinstance(explore, int | float) or not 0 <= explore <= 1:
        raise ValueError(f"--explore must be a number in [0, 1], got {explore!r}")
    return float(explore)


@dataclass(frozen=True, slots=True)
class LogConfig:
    """What :func:`simulate_log` runs.

    - ``scenarios``: names from :data:`environment.scenarios.SCENARIO_NAMES`;
    - ``seeds``: one episode per (scenario, seed), integers >= 0;
    - ``explore``: epsilon of the uniform mixture, in [0, 1];
    - ``steps``: decisions per episode at most (>= 1; the episode may end earlier);
    - ``sampling_seed``: the generator that draws actions from the mixture.
    """

    scenarios: Sequence[str] = ("mixed",)
    seeds: Sequence[int] = (0,)
    explore: float = 0.1
    steps: int = environment.MAX_EPISODE_STEPS
    sampling_seed: int = 0

    def __post_init__(self) -> None:
        unknown = [name for name in self.scenarios if name not in SCENARIO_NAMES]
        if not self.scenarios or unknown:
            raise ValueError(
                f"LogConfig.scenarios={list(self.scenarios)!r} is invalid: must be names from "
                f"{list(SCENARIO_NAMES)}"
            )
        if not self.seeds or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds
        ):
            raise ValueError(
                f"LogConfig.seeds={list(self.seeds)!r} is invalid: must be integers >= 0"
            )
        check_explore(self.explore)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"LogConfig.steps={self.steps!r} is invalid: must be an integer >= 1")


def simulate_log(policy: Policy, config: LogConfig) -> list[LoggedDecision]:
    """Run ``policy`` with epsilon-uniform exploration and return its decision log.

    Each record: the measured KPIs and observation before the decision, the behaviour's
    probabilities (:func:`explore_mixture`), the policy's proposal and the executed (drawn)
    action with its propensity, and the step's reward. An :class:`Episodic` policy records
    what was executed; an :class:`EnvAware` one is attached to the env.
    """
    rng = np.random.default_rng(config.sampling_seed)
    records: list[LoggedDecision] = []
    clock = SIMULATED_EPOCH
    for scenario in config.scenarios:
        env = environment.make_env(scenario)
        try:
            for seed in config.seeds:
                clock = _log_episode(policy, env, scenario, seed, config, rng, clock, records)
        finally:
            env.close()
    return records


def _log_episode(
    policy: Policy,
    env: gymnasium.Env[Any, Any],
    scenario: str,
    seed: int,
    config: LogConfig,
    rng: np.random.Generator,
    clock: datetime,
    records: list[LoggedDecision],
) -> datetime:
    obs, info = env.reset(seed=seed)
    if isinstance(policy, Episodic):
        policy.reset()
    if isinstance(policy, EnvAware):
        policy.attach(env)
    for step in range(config.steps):
        decision = policy.decide(obs)
        behaviour = explore_mixture(decision.propensities, config.explore)
        behaviour = behaviour / behaviour.sum()
        action = int(rng.choice(N_ACTIONS, p=behaviour))
        next_obs, reward, terminated, truncated, next_info = env.step(action)
        if isinstance(policy, Episodic):
            policy.record(action)
        records.append(
            LoggedDecision(
                event_id=f"sim-{scenario}-{seed}-{step}",
                timestamp=clock,
                cycle_id=None,
                source="simulator",
                policy=policy.name,
                policy_version=policy.version,
                kpis=info["kpis"],
                obs=tuple(float(x) for x in obs),
                probabilities=tuple(float(p) for p in behaviour),
                proposed_action=decision.action_name,
                action=ACTION_NAMES[action],
                propensity=float(behaviour[action]),
                ope_usable=True,
                confidence=decision.confidence,
                verdict="executed",
                reasons=(f"explore={config.explore:g}",),
                execution_id=None,
                reward=float(reward),
                reward_joined_at=clock + CYCLE,
                reward_source="computed",
            )
        )
        clock += CYCLE
        obs, info = next_obs, next_info
        if terminated or truncated:
            break
    return clock
