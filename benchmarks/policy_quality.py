"""Every policy on every scenario, paired over the same seeds: mean return with 95% intervals.

Trains the SB3 agents (on all scenarios, spread over the vectorized copies), warm-starts the
bandits online on training seeds disjoint from the evaluation seeds, evaluates every policy
with :func:`policies.evaluation.evaluate`, and prints the table and the paired comparisons
against ``rules`` and ``oracle``. Targets (issue 3): PPO (<= 300k steps) beats rules by >= 20%
and reaches >= 85% of the oracle; LinUCB or Thompson beats rules by >= 10%.

    python benchmarks/policy_quality.py [--timesteps 300000] [--seeds 10] [--oracle-seeds 10]
        [--algos ppo,a2c,dqn] [--other-timesteps 100000] [--bandit-episodes 16]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from environment.scenarios import SCENARIO_NAMES
from experiments.algorithms import sb3_kwargs
from experiments.config import load_config
from policies.bandits import BANDITS
from policies.base import Policy
from policies.evaluation import EvaluationResult, compare, evaluate, fit_online, stratified_ci
from policies.oracle import LookaheadOracle, OracleConfig
from policies.rules import RulesPolicy
from policies.sb3 import train_sb3
from policies.simple import NoopPolicy, RandomPolicy
from policies.validation import split_list


def _row(result: EvaluationResult, scenarios: tuple[str, ...]) -> str:
    cells = [f"{result.scenario_estimate(s).mean:>8.1f}" for s in scenarios]
    overall = result.overall()
    return f"{result.policy_name:<15}" + "".join(cells) + f"  {overall!s:>15}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=300_000, help="PPO training steps")
    parser.add_argument(
        "--other-timesteps", type=int, default=100_000, help="A2C and DQN training steps"
    )
    parser.add_argument("--algos", default="ppo,a2c,dqn", help="SB3 algorithms to train")
    parser.add_argument("--seeds", type=int, default=10, help="evaluation seeds per scenario")
    parser.add_argument("--oracle-seeds", type=int, default=10, help="seeds for the oracle")
    parser.add_argument("--oracle-horizon", type=int, default=OracleConfig().horizon)
    parser.add_argument("--bandit-episodes", type=int, default=16, help="online warm-start")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--save-dir", type=Path, default=None, help="save trained policies")
    args = parser.parse_args()
    torch.set_num_threads(1)

    scenarios = SCENARIO_NAMES
    seeds = list(range(args.seeds))
    policies: list[Policy] = [NoopPolicy(), RandomPolicy(seed=args.train_seed), RulesPolicy()]
    log: list[str] = []

    for name, cls in BANDITS.items():
        start = time.perf_counter()
        bandit = cls()
        history = fit_online(bandit, scenarios, args.bandit_episodes, seed=10_000)
        log.append(
            f"{name}: warm-started on {args.bandit_episodes} episodes in "
            f"{time.perf_counter() - start:.0f}s (last 8 returns {history[-8:].mean():.1f})"
        )
        policies.append(bandit)

    for algo in split_list(args.algos):
        steps = args.timesteps if algo == "ppo" else args.other_timesteps
        start = time.perf_counter()
        config = load_config(algo)  # the project's hyperparameters: the YAML
        agent = train_sb3(
            algo,
            scenarios,
            steps,
            args.train_seed,
            n_envs=len(scenarios),  # one copy per scenario, as in BENCHMARKS.md
            reward_scale=config.hyperparameters.reward_scale,
            **sb3_kwargs(config.hyperparameters),
        )
        seconds = time.perf_counter() - start
        log.append(f"{algo}: trained {steps} steps in {seconds:.0f}s ({steps / seconds:.0f}/s)")
        policies.append(agent)

    if args.save_dir is not None:
        for policy in policies:
            suffix = (
                ".zip"
                if policy.name in ("ppo", "a2c", "dqn")
                else (".npz" if policy.name in BANDITS else ".json")
            )
            policy.save(args.save_dir / f"{policy.name}{suffix}")

    results: dict[str, EvaluationResult] = {}
    for policy in policies:
        results[policy.name] = evaluate(policy, scenarios, seeds, record_kpis=False)
        log.append(f"{policy.name}: evaluated in {results[policy.name].total_seconds:.0f}s")
    oracle_seeds = seeds[: args.oracle_seeds]
    oracle = LookaheadOracle(OracleConfig(horizon=args.oracle_horizon))
    oracle_result = evaluate(oracle, scenarios, oracle_seeds, record_kpis=False)
    log.append(f"oracle: evaluated in {oracle_result.total_seconds:.0f}s")

    print("\n".join(log))
    print(f"\nmean return per scenario, {len(seeds)} paired seeds (overall: mean ± 95% CI)")
    header = "".join(f"{s[:8]:>8}" for s in scenarios)
    print(f"{'policy':<15}{header}  {'overall':>15}")
    for result in [*results.values(), oracle_result]:
        suffix = "" if result is not oracle_result else f"   ({len(oracle_seeds)} seeds)"
        print(_row(result, scenarios) + suffix)

    rules = results["rules"]
    print("\npaired difference vs rules (overall, 95% CI; relative to rules' mean)")
    for name, result in results.items():
        if name == "rules":
            continue
        c = compare(result, rules)
        print(
            f"{name:<15}{c.overall!s:>16}   {100 * c.relative.mean:+6.1f}% "
            f"[{100 * c.relative.low:+.1f}%, {100 * c.relative.high:+.1f}%]"
            f"   wins {100 * c.a_wins:.0f}%"
        )

    print(f"\nshare of the oracle's mean return, on the oracle's {len(oracle_seeds)} seeds")
    oracle_mean = oracle_result.overall().mean
    for name, result in results.items():
        subset = result.returns[:, : len(oracle_seeds)]
        share = stratified_ci(subset).mean / oracle_mean
        print(f"{name:<15}{100 * share:>8.1f}%")

    if "ppo" in results:
        ppo_vs_rules = compare(results["ppo"], rules).relative.mean
        ppo_share = stratified_ci(results["ppo"].returns[:, : len(oracle_seeds)]).mean
        print(
            f"\ntarget PPO >= +20% vs rules: {100 * ppo_vs_rules:+.1f}% "
            f"({'met' if ppo_vs_rules >= 0.2 else 'missed'}); "
            f"PPO >= 85% of oracle: {100 * ppo_share / oracle_mean:.1f}% "
            f"({'met' if ppo_share >= 0.85 * oracle_mean else 'missed'})"
        )
    best_bandit = max((compare(results[n], rules).relative.mean, n) for n in ("linucb", "thompson"))
    print(
        f"target LinUCB or Thompson >= +10% vs rules: {best_bandit[1]} "
        f"{100 * best_bandit[0]:+.1f}% ({'met' if best_bandit[0] >= 0.1 else 'missed'})"
    )
    actions = {n: r.action_shares() for n, r in results.items()}
    actions["oracle"] = oracle_result.action_shares()
    print("\nmost used actions (share of steps)")
    for name, shares in actions.items():
        top = sorted(shares.items(), key=lambda kv: -kv[1])[:4]
        print(f"{name:<15}" + ", ".join(f"{a} {100 * s:.0f}%" for a, s in top))


if __name__ == "__main__":
    main()
