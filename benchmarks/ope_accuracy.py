"""Off-policy estimates against the simulator's ground truth: relative error and coverage.

**The estimand** (one-step rewards make it well defined): the expected reward of ONE decision
taken by the target policy in the contexts the behaviour policy visits,
``V(pi) = E_{x ~ D} [sum_a pi(a|x) r(x, a)]``.

**Ground truth on the same contexts.** The behaviour policy (``rules`` with epsilon-uniform
exploration, :func:`policies.exploration.explore_mixture`) runs the simulator for a few
episodes; at every visited state the simulator is stepped from a copy of that state with EACH
of the 13 actions, giving the full reward row ``R[i, a]`` of that context. The pool of visited
contexts is the population ``D``; the truth is ``V(pi) = mean_i sum_a pi(a|x_i) R[i, a]``,
exact for that population. Each repetition draws a log of n decisions from it: contexts
uniformly from the pool, actions from the behaviour's logged probabilities, rewards
``R[i, a_i]`` (one simulator draw per context and action, so the estimators see the
simulator's reward noise across contexts, not within one).

**Targets**: ``rules`` (stateless view: reset before judging, as :func:`~policies.ope.
action_distribution` does), ``noop``, and a LinUCB bandit trained online on a separate
behaviour log of the same pool. PPO is left out: it needs a trained model (minutes of CPU
this shared machine does not have); pass ``--ppo PATH`` to include one.

**Reported**: per target, estimator and n, the median relative error ``|V_hat - V| / |V|``
over the repetitions and the share of 95% bootstrap intervals that contain ``V``.
Targets (issue 13): DR <= 2% at 10k decisions; coverage >= 90%.

    python benchmarks/ope_accuracy.py [--pool-episodes 4] [--steps 540] [--explore 0.3]
        [--sizes 1000,10000,100000] [--reps 100] [--reps-large 20] [--bootstrap 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numpy.typing import NDArray

import environment
from environment.actions import N_ACTIONS
from policies.bandits import LinUCBBandit
from policies.base import Policy
from policies.exploration import explore_mixture
from policies.logged import BanditFeedback
from policies.ope import (
    ESTIMATORS,
    RidgeRewardModel,
    action_distribution,
    effective_sample_size,
    importance_weights,
)
from policies.registry import load_policy
from policies.rules import RulesPolicy
from policies.simple import NoopPolicy

Array = NDArray[np.float64]


def context_pool(
    episodes: int, steps: int, explore: float, scenario: str
) -> tuple[NDArray[np.float32], Array, Array]:
    """(obs (P, N_KPIS), behaviour probabilities (P, K), rewards of every action (P, K))."""
    env = environment.make_env(scenario).unwrapped
    behaviour = RulesPolicy()
    rng = np.random.default_rng(12345)
    obs_rows, prob_rows, reward_rows = [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        behaviour.reset()
        for _ in range(steps):
            state = env.get_state()
            rewards = np.empty(N_ACTIONS)
            for action in range(N_ACTIONS):
                env.set_state(state)
                _, reward, _, _, _ = env.step(action)
                rewards[action] = float(reward)
            env.set_state(state)
            probabilities = explore_mixture(behaviour.decide(obs).propensities, explore)
            action = int(rng.choice(N_ACTIONS, p=probabilities / probabilities.sum()))
            obs_rows.append(obs)
            prob_rows.append(probabilities)
            reward_rows.append(rewards)
            obs, _, terminated, _, _ = env.step(action)
            behaviour.record(action)
            if terminated:
                break
    stateless = explore_mixture(action_distribution(RulesPolicy(), np.array(obs_rows)), explore)
    return np.array(obs_rows, dtype=np.float32), stateless, np.array(reward_rows)


def draw_log(
    rng: np.random.Generator, n: int, obs: NDArray[np.float32], behaviour: Array, rewards: Array
) -> tuple[BanditFeedback, NDArray[np.int64]]:
    """A log of n decisions from the pool; returns it and the pool rows it used."""
    rows = rng.integers(0, len(obs), n)
    probabilities = behaviour[rows]
    actions = (rng.random(n)[:, None] > probabilities.cumsum(axis=1)).sum(axis=1)
    actions = np.minimum(actions, N_ACTIONS - 1)
    index = np.arange(n)
    feedback = BanditFeedback(
        obs=obs[rows],
        actions=actions,
        rewards=rewards[rows, actions],
        pscores=probabilities[index, actions],
        probabilities=probabilities,
    )
    return feedback, rows


def trained_bandit(
    obs: NDArray[np.float32], behaviour: Array, rewards: Array, n: int
) -> LinUCBBandit:
    """LinUCB updated online on a separate behaviour log of n decisions from the pool."""
    feedback, _ = draw_log(np.random.default_rng(999), n, obs, behaviour, rewards)
    bandit = LinUCBBandit()
    for x, a, r, p in zip(
        feedback.obs, feedback.actions, feedback.rewards, feedback.pscores, strict=True
    ):
        bandit.update(x, int(a), float(r), float(p))
    return bandit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool-episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=540, help="steps per pool episode")
    parser.add_argument("--explore", type=float, default=0.3)
    parser.add_argument("--scenario", default="mixed")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--reps", type=int, default=100, help="repetitions below 100k")
    parser.add_argument("--reps-large", type=int, default=20, help="repetitions at >= 100k")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--ppo", default=None, help="a trained PPO zip to include as target")
    args = parser.parse_args()

    start = time.perf_counter()
    obs, behaviour, rewards = context_pool(
        args.pool_episodes, args.steps, args.explore, args.scenario
    )
    print(f"pool: {len(obs)} contexts x {N_ACTIONS} actions in {time.perf_counter() - start:.0f}s")
    targets: dict[str, Policy] = {
        "rules": RulesPolicy(),
        "noop": NoopPolicy(),
        "linucb": trained_bandit(obs, behaviour, rewards, 5000),
    }
    if args.ppo:
        targets["ppo"] = load_policy(f"ppo:{args.ppo}")
    dists = {name: action_distribution(policy, obs) for name, policy in targets.items()}
    truths = {name: float((dist * rewards).sum(axis=1).mean()) for name, dist in dists.items()}
    for name, truth in truths.items():
        print(f"truth V({name}) = {truth:.5f}")
    sizes = [int(s) for s in args.sizes.split(",")]
    header = f"{'target':<8}{'n':>8}{'ESS':>9}" + "".join(
        f"{name + ' err':>11}{'cov':>6}" for name in ESTIMATORS
    )
    print(header)
    rng = np.random.default_rng(2026)
    for name, dist in dists.items():
        for n in sizes:
            reps = args.reps if n < 100_000 else args.reps_large
            errors = {e: [] for e in ESTIMATORS}  # type: dict[str, list[float]]
            covered = dict.fromkeys(ESTIMATORS, 0)
            ess = []
            for _ in range(reps):
                feedback, rows = draw_log(rng, n, obs, behaviour, rewards)
                target = dist[rows]
                q = RidgeRewardModel.fit(feedback).predict(feedback.obs)
                ess.append(effective_sample_size(importance_weights(feedback, target)))
                for estimator, cls in ESTIMATORS.items():
                    interval = cls().estimate_interval(
                        feedback,
                        target,
                        q,
                        n_bootstrap=args.bootstrap,
                        seed=int(rng.integers(1 << 31)),
                    )
                    errors[estimator].append(abs(interval.value - truths[name]) / abs(truths[name]))
                    covered[estimator] += interval.low <= truths[name] <= interval.high
            cells = "".join(
                f"{100 * np.median(errors[e]):>10.2f}%{100 * covered[e] / reps:>5.0f}%"
                for e in ESTIMATORS
            )
            print(f"{name:<8}{n:>8}{np.median(ess):>9.0f}{cells}   ({reps} reps)", flush=True)
    print(f"total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
