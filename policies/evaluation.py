"""Paired evaluation of policies on the environment, with confidence intervals.

``evaluate(policy, scenarios, seeds)`` runs one episode per (scenario, seed) and records the
return, the length, whether the business failed, the actions taken and the KPI trajectory.
Every policy evaluated with the same scenarios and seeds meets the same starting states and
the same shocks (``env.reset(seed=seed)`` draws both), so two results are **paired**:
:func:`compare` works on per-episode differences, which removes the between-seed variance
that dominates unpaired comparisons.

Estimates (:class:`Estimate`):

- per scenario: the mean return over seeds with a Student-t 95% interval,
  ``mean +- t(0.975, n - 1) * s / sqrt(n)``;
- overall: the mean of the per-scenario means (every scenario weighs the same), with the
  stratified standard error ``sqrt(sum_s s_s^2 / n_s) / S`` and Welch-Satterthwaite degrees of
  freedom;
- paired difference: the same two formulas applied to ``return_a - return_b`` per episode.

Online learning during evaluation is off by default: a learner is evaluated as it is (frozen).
With ``learn=True`` each episode starts from a fresh copy of the given policy and updates that
copy online after every step, so episodes stay independent (the intervals stay valid) and the
given policy is not modified. To warm-start learners before evaluating them, use
:func:`fit_online`, which does modify the policy.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special

import environment
from environment.actions import ACTION_NAMES, N_ACTIONS
from environment.kpis import KPI_NAMES, N_KPIS
from environment.scenarios import SCENARIO_NAMES
from policies.base import EnvAware, Episodic, OnlineLearner, Policy
from policies.validation import check_names, check_number, check_seeds

CONFIDENCE = 0.95


# --- statistics ---------------------------------------------------------------------------


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``df >= 1``, real;
    ``inf`` gives the normal quantile).

    Computed by ``scipy.special.stdtrit``, the routine ``scipy.stats.t.ppf`` evaluates; it is
    called directly because importing ``scipy.stats`` adds about a second to every CLI start.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"quantile level p={p!r} must be in (0, 1)")
    if not df >= 1.0:
        raise ValueError(f"degrees of freedom df={df!r} must be >= 1")
    return float(special.stdtrit(df, p))


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean with its 95% confidence interval ``[low, high]`` from ``n`` episodes."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval's width (``nan`` when it is undefined)."""
        return (self.high - self.low) / 2.0

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.half_width:.1f}"


def mean_ci(values: NDArray[np.floating] | Sequence[float]) -> Estimate:
    """Mean and Student-t 95% interval of i.i.d. values, shape (n,). ``n = 1``: no interval."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    if x.size == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    half = t_quantile(0.5 + CONFIDENCE / 2, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Estimate(mean, mean - half, mean + half, int(x.size))


def stratified_ci(values: NDArray[np.floating]) -> Estimate:
    """Mean of per-stratum means with a 95% interval. values: shape (S strata, n per stratum).

    Standard error ``sqrt(sum_s var_s / n) / S``; degrees of freedom by Welch-Satterthwaite.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"stratified_ci needs shape (strata, n), got {x.shape}")
    strata, n = x.shape
    mean = float(x.mean(axis=1).mean())
    if n == 1:
        return Estimate(mean, math.nan, math.nan, int(x.size))
    terms = x.var(axis=1, ddof=1) / n
    variance = float(terms.sum()) / strata**2
    if variance == 0.0:
        return Estimate(mean, mean, mean, int(x.size))
    df = float(terms.sum() ** 2 / (terms**2 / (n - 1)).sum())
    half = t_quantile(0.5 + CONFIDENCE / 2, max(df, 1.0)) * math.sqrt(variance)
    return Estimate(mean, mean - half, mean + half, int(x.size))


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationResult:
    """Everything one :func:`evaluate` call measured; arrays are indexed [scenario, seed].

    - ``returns``: float64 (S, N) undiscounted episode returns.
    - ``lengths``: int64 (S, N) steps taken; ``failed``: bool (S, N) the business failed.
    - ``action_counts``: int64 (S, N, N_ACTIONS).
    - ``kpi_trajectories``: float32 (S, N, T + 1, N_KPIS) noise-free KPIs in natural units
      (:data:`environment.kpis.KPI_NAMES` order), row 0 the start; NaN after a failure.
      ``None`` when not recorded.
    - ``decide_seconds``: wall time spent inside the policy (decide, update, record).
    """

    policy_name: str
    policy_version: str
    scenarios: tuple[str, ...]
    seeds: tuple[int, ...]
    returns: NDArray[np.float64]
    lengths: NDArray[np.int64]
    failed: NDArray[np.bool_]
    action_counts: NDArray[np.int64]
    kpi_trajectories: NDArray[np.float32] | None = field(repr=False, default=None)
    decide_seconds: float = 0.0
    total_seconds: float = 0.0

    def scenario_estimate(self, scenario: str) -> Estimate:
        """Mean return with its 95% interval on one scenario."""
        return mean_ci(self.returns[self._index(scenario)])

    def overall(self) -> Estimate:
        """Mean over scenarios of the mean return, with its stratified 95% interval."""
        return stratified_ci(self.returns)

    def kpi_trajectory(self, scenario: str, kpi: str) -> NDArray[np.float32]:
        """One KPI's trajectories on one scenario, float32 shape (N seeds, T + 1)."""
        if self.kpi_trajectories is None:
            raise ValueError("KPI trajectories were not recorded (record_kpis=False)")
        if kpi not in KPI_NAMES:
            raise ValueError(f"unknown KPI {kpi!r}; allowed: {list(KPI_NAMES)}")
        return self.kpi_trajectories[self._index(scenario), :, :, KPI_NAMES.index(kpi)]

    def action_shares(self, scenario: str | None = None) -> dict[str, float]:
        """Share of steps spent on each action (on one scenario, or on all)."""
        counts = (
            self.action_counts if scenario is None else self.action_counts[self._index(scenario)]
        )
        totals = counts.reshape(-1, N_ACTIONS).sum(axis=0)
        return {
            name: float(c) / max(int(totals.sum()), 1)
            for name, c in zip(ACTION_NAMES, totals, strict=True)
        }

    def table(self) -> str:
        """A plain-text table: mean return ± 95% half-width per scenario and overall."""
        lines = [f"{self.policy_name} ({self.policy_version})"]
        for scenario in self.scenarios:
            estimate = self.scenario_estimate(scenario)
            failures = int(self.failed[self._index(scenario)].sum())
            lines.append(f"  {scenario:<18}{estimate!s:>18}   failed {failures}/{len(self.seeds)}")
        lines.append(f"  {'overall':<18}{self.overall()!s:>18}")
        return "\n".join(lines)

    def _index(self, scenario: str) -> int:
        try:
            return self.scenarios.index(scenario)
        except ValueError:
            raise ValueError(
                f"scenario {scenario!r} was not evaluated; evaluated: {list(self.scenarios)}"
            ) from None


@dataclass(frozen=True, slots=True)
class Comparison:
    """Paired difference ``a - b`` of two results on the same scenarios and seeds.

    ``differences``: float64 (S, N). ``relative`` is the overall difference divided by
    ``|overall mean of b|`` (its interval scaled the same way).
    """

    name_a: str
    name_b: str
    scenarios: tuple[str, ...]
    differences: NDArray[np.float64]
    per_scenario: dict[str, Estimate]
    overall: Estimate
    relative: Estimate
    a_wins: float
    """Share of paired episodes in which ``a`` returned more than ``b``."""

    def table(self) -> str:
        """A plain-text table of the paired differences."""
        lines = [f"{self.name_a} - {self.name_b} (paired)"]
        for scenario, estimate in self.per_scenario.items():
            lines.append(f"  {scenario:<18}{estimate!s:>18}")
        lines.append(f"  {'overall':<18}{self.overall!s:>18}")
        rel = self.relative
        lines.append(
            f"  {'relative':<18}{100 * rel.mean:>+10.1f}% "
            f"[{100 * rel.low:+.1f}%, {100 * rel.high:+.1f}%]   a wins {100 * self.a_wins:.0f}%"
        )
        return "\n".join(lines)


def compare(
    result_a: EvaluationResult,
    result_b: EvaluationResult,
    *,
    names: tuple[str, str] | None = None,
) -> Comparison:
    """Paired difference of two results evaluated on the same scenarios and seeds; ``names``
    head its table (default: the policies' names, which two models of one kind share)."""
    if result_a.scenarios != result_b.scenarios or result_a.seeds != result_b.seeds:
        raise ValueError(
            "compare needs results on the same scenarios and seeds; got "
            f"{list(result_a.scenarios)} x {list(result_a.seeds)} and "
            f"{list(result_b.scenarios)} x {list(result_b.seeds)}"
        )
    diff = result_a.returns - result_b.returns
    overall = stratified_ci(diff)
    base = abs(result_b.overall().mean)
    scale = 1.0 / base if base > 0 else math.nan
    relative = Estimate(overall.mean * scale, overall.low * scale, overall.high * scale, overall.n)
    return Comparison(
        name_a=names[0] if names else result_a.policy_name,
        name_b=names[1] if names else result_b.policy_name,
        scenarios=result_a.scenarios,
        differences=diff,
        per_scenario={s: mean_ci(diff[i]) for i, s in enumerate(result_a.scenarios)},
        overall=overall,
        relative=relative,
        a_wins=float((diff > 0).mean()),
    )


# --- running policies ---------------------------------------------------------------------


def _check_scenarios(scenarios: Sequence[str]) -> tuple[str, ...]:
    return check_names(scenarios, SCENARIO_NAMES, "scenarios")


def _check_policy(policy: object) -> Policy:
    if not isinstance(policy, Policy):
        raise TypeError(
            f"expected a Policy (name, version, decide, decide_batch, save), "
            f"got {type(policy).__name__}"
        )
    return policy


@dataclass(slots=True)
class Episode:
    """One episode's record (see :class:`EvaluationResult` for the shapes)."""

    episode_return: float
    length: int
    failed: bool
    action_counts: NDArray[np.int64]
    kpis: NDArray[np.float32] | None
    decide_seconds: float


def run_episode(
    policy: Policy,
    env: Any,
    seed: int,
    *,
    learn: bool = False,
    record_kpis: bool = True,
) -> Episode:
    """Run ``policy`` for one episode of ``env`` (a ``gymnasium.make`` env) from ``seed``.

    Calls ``reset()`` / ``record(action)`` on :class:`Episodic` policies, ``attach(env)`` on
    :class:`EnvAware` ones, and, with ``learn=True``, ``update(...)`` on
    :class:`OnlineLearner` ones (which then must be one).
    """
    if learn and not isinstance(policy, OnlineLearner):
        raise TypeError(f"learn=True needs an OnlineLearner; {policy.name!r} is not one")
    horizon = env.spec.max_episode_steps if env.spec else environment.MAX_EPISODE_STEPS
    obs, info = env.reset(seed=seed)
    episodic = isinstance(policy, Episodic)
    if episodic:
        policy.reset()  # type: ignore[attr-defined]
    if isinstance(policy, EnvAware):
        policy.attach(env)
    kpis = np.full((horizon + 1, N_KPIS), np.nan, dtype=np.float32) if record_kpis else None
    if kpis is not None:
        kpis[0] = [info["true_kpis"][name] for name in KPI_NAMES]
    counts = np.zeros(N_ACTIONS, dtype=np.int64)
    total, steps, failed, policy_time = 0.0, 0, False, 0.0
    while True:
        start = time.perf_counter()
        decision = policy.decide(obs)
        policy_time += time.perf_counter() - start
        next_obs, reward, terminated, truncated, info = env.step(decision.action)
        start = time.perf_counter()
        if learn:
            policy.update(obs, decision.action, float(reward), decision.propensity)  # type: ignore[attr-defined]
        if episodic:
            policy.record(decision.action)  # type: ignore[attr-defined]
        policy_time += time.perf_counter() - start
        total += float(reward)
        counts[decision.action] += 1
        steps += 1
        if kpis is not None:
            kpis[steps] = [info["true_kpis"][name] for name in KPI_NAMES]
        obs = next_obs
        if terminated or truncated:
            failed = bool(terminated)
            break
    return Episode(total, steps, failed, counts, kpis, policy_time)


def evaluate(
    policy: Policy,
    scenarios: Sequence[str] = SCENARIO_NAMES,
    seeds: Sequence[int] = tuple(range(10)),
    *,
    learn: bool = False,
    record_kpis: bool = True,
    params: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Run ``policy`` for one episode per (scenario, seed); see the module docstring.

    scenarios: names from :data:`environment.scenarios.SCENARIO_NAMES`; seeds: distinct
    integers >= 0, the same for every policy so that results pair up; ``learn``: update a
    fresh copy of an :class:`OnlineLearner` online within each episode; ``params``:
    :class:`~environment.params.BusinessParams` overrides.
    """
    policy = _check_policy(policy)
    names = _check_scenarios(scenarios)
    seed_list = check_seeds(seeds)
    if learn and not isinstance(policy, OnlineLearner):
        raise TypeError(f"learn=True needs an OnlineLearner; {policy.name!r} is not one")
    shape = (len(names), len(seed_list))
    returns = np.zeros(shape)
    lengths = np.zeros(shape, dtype=np.int64)
    failed = np.zeros(shape, dtype=bool)
    counts = np.zeros((*shape, N_ACTIONS), dtype=np.int64)
    trajectories: NDArray[np.float32] | None = None
    decide_seconds = 0.0
    start = time.perf_counter()
    for i, scenario in enumerate(names):
        env = environment.make_env(scenario, params=params)
        try:
            for j, seed in enumerate(seed_list):
                runner = copy.deepcopy(policy) if learn else policy
                episode = run_episode(runner, env, seed, learn=learn, record_kpis=record_kpis)
                returns[i, j] = episode.episode_return
                lengths[i, j] = episode.length
                failed[i, j] = episode.failed
                counts[i, j] = episode.action_counts
                decide_seconds += episode.decide_seconds
                if episode.kpis is not None:
                    if trajectories is None:
                        trajectories = np.full(
                            (*shape, *episode.kpis.shape), np.nan, dtype=np.float32
                        )
                    trajectories[i, j] = episode.kpis
        finally:
            env.close()
    return EvaluationResult(
        policy_name=policy.name,
        policy_version=policy.version,
        scenarios=names,
        seeds=seed_list,
        returns=returns,
        lengths=lengths,
        failed=failed,
        action_counts=counts,
        kpi_trajectories=trajectories,
        decide_seconds=decide_seconds,
        total_seconds=time.perf_counter() - start,
    )


def fit_online(
    policy: Policy,
    scenarios: Sequence[str] = SCENARIO_NAMES,
    episodes: int = 16,
    seed: int = 10_000,
    *,
    params: dict[str, Any] | None = None,
) -> NDArray[np.float64]:
    """Warm-start an :class:`OnlineLearner` in place: ``episodes`` episodes, cycling through
    ``scenarios``, updating after every step. Returns the episode returns, shape (episodes,).

    Episode ``k`` uses seed ``seed + k``; keep ``seed`` away from the evaluation seeds (the
    default 10 000 is) so that a policy is never evaluated on an episode it trained on.
    """
    policy = _check_policy(policy)
    names = _check_scenarios(scenarios)
    if not isinstance(policy, OnlineLearner):
        raise TypeError(f"fit_online needs an OnlineLearner; {policy.name!r} is not one")
    check_number("episodes", episodes, 1, integer=True)
    check_number("seed", seed, 0, integer=True)
    envs = {name: environment.make_env(name, params=params) for name in names}
    history = np.zeros(episodes)
    try:
        for k in range(episodes):
            env = envs[names[k % len(names)]]
            history[k] = run_episode(
                policy, env, seed + k, learn=True, record_kpis=False
            ).episode_return
    finally:
        for env in envs.values():
            env.close()
    return history
