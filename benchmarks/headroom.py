"""Headroom on the fair simulator (issue 14): noop, random, rules, the best open-loop schedule,
the non-clairvoyant planner and the clairvoyant oracle, paired over unseen seeds.

Seed ranges: the best open-loop schedule is chosen on tuning seeds 8000-8001; evaluation uses
seeds from 9000 (``--seeds`` of them); the free-lunch test uses 7000-7001; other tests < 100.
PPO is not run here (``benchmarks/policy_quality.py`` trains it; CPU was too scarce).

    python benchmarks/headroom.py [--seeds 2] [--scenarios steady,mixed] [--planner-seeds 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from environment import actions as A
from environment import dynamics
from environment.env import SaaSOpsEnv
from environment.params import BusinessParams
from policies.evaluation import evaluate
from policies.oracle import LookaheadOracle
from policies.planner import non_clairvoyant_planner
from policies.rules import RulesPolicy
from policies.simple import NoopPolicy, RandomPolicy

TUNING_SEEDS = (8000, 8001)
EVAL_SEED0 = 9000
HORIZON = 540
Schedule = Callable[[int], int]


def open_loop_return(scenario: str, seed: int, schedule: Schedule) -> float:
    """Return of a fixed, observation-blind schedule of actions."""
    env = SaaSOpsEnv(scenario)
    env.reset(seed=seed)
    total = 0.0
    for t in range(HORIZON):
        _, reward, terminated, _, _ = env.step(schedule(t))
        total += float(reward)
        if terminated:
            break
    return total


def schedules() -> dict[str, Schedule]:
    """The pre-autopilot routine, alone and with one action every 24 or 36 cycles."""
    params = BusinessParams()

    def routine(t: int) -> int:
        return dynamics.routine_action(t, params)

    out: dict[str, Schedule] = {"routine": routine}
    for action in A.ACTION_NAMES[1:]:
        for period in (24, 36):
            index = A.action_index(action)

            def plus(t: int, index: int = index, period: int = period) -> int:
                return index if t % period == 1 else routine(t)

            out[f"routine+{action}/{period}"] = plus
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--planner-seeds", type=int, default=1)
    parser.add_argument("--scenarios", default="steady,mixed")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    seeds = list(range(EVAL_SEED0, EVAL_SEED0 + args.seeds))
    start = time.perf_counter()
    candidates = schedules()
    tuned = {
        name: np.mean([open_loop_return(sc, s, f) for sc in scenarios for s in TUNING_SEEDS])
        for name, f in candidates.items()
    }
    best = max(tuned, key=tuned.__getitem__)
    rows: dict[str, float] = {}
    for name, policy in (("noop", NoopPolicy()), ("random", RandomPolicy(seed=0))):
        rows[name] = float(evaluate(policy, scenarios, seeds, record_kpis=False).returns.mean())
    rules = evaluate(RulesPolicy(), scenarios, seeds, record_kpis=False).returns
    rows["rules"] = float(rules.mean())
    rows[f"open loop: {best}"] = float(
        np.mean([open_loop_return(sc, s, candidates[best]) for sc in scenarios for s in seeds])
    )
    few = seeds[: args.planner_seeds]
    rules_few = float(rules[:, : args.planner_seeds].mean())
    for name, planner in (
        ("non-clairvoyant planner", non_clairvoyant_planner()),
        ("clairvoyant oracle", LookaheadOracle()),
    ):
        result = evaluate(planner, scenarios, few, record_kpis=False).returns.mean()
        rows[f"{name} (seeds {few}; rules there {rules_few:.1f})"] = float(result)
    print(f"| policy | mean return ({scenarios}, seeds {seeds}) | vs rules on the same seeds |")
    print("|---|---|---|")
    for name, value in rows.items():
        reference = rules_few if "seeds [" in name else rows["rules"]
        print(f"| {name} | {value:.1f} | {value / reference - 1:+.1%} |")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
