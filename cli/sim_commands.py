"""`autopilot` subcommands of the simulation group: ``demo`` and ``simulate``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from environment import MAX_EPISODE_STEPS
from environment.scenarios import SCENARIO_NAMES
from policies.evaluation import EvaluationResult, evaluate
from policies.registry import load_policy
from policies.validation import check_names, split_list


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands."""
    demo = subparsers.add_parser(
        "demo",
        help="the main job on embedded defaults: the learned champion against the rules, "
        "in simulation and in the closed loop",
        description="Evaluate the shipped learned champion against the rules on unseen seeds, "
        "then run the simulator and the agent together on a SQLite database "
        "(see experiments/demo.py).",
    )
    # Defaults (None here) are DemoConfig's: the CLI does not import MLflow to print help.
    demo.add_argument("--seeds", type=int, help="evaluation seeds per scenario (default 5)")
    demo.add_argument("--days", type=int, help="simulated days of the closed loop (default 90)")
    demo.add_argument("--users", type=int, help="accounts in the business (default 2,000)")
    demo.set_defaults(handler=_demo)

    simulate = subparsers.add_parser(
        "simulate",
        help="evaluate named policies on named scenarios and print a comparison table",
    )
    simulate.add_argument(
        "--policies",
        default="rules,noop,random",
        help="comma-separated policy names for load_policy (default: rules,noop,random)",
    )
    simulate.add_argument(
        "--scenarios",
        default="all",
        help=f"comma-separated scenarios, or 'all' ({', '.join(SCENARIO_NAMES)})",
    )
    simulate.add_argument("--seeds", type=int, default=5, help="episodes per scenario")
    simulate.add_argument(
        "--log",
        type=Path,
        metavar="FILE.jsonl",
        help="instead of the table, write the decision log of ONE behaviour policy (the "
        "decision-log contract, readable by 'autopilot ope')",
    )
    simulate.add_argument(
        "--explore",
        type=float,
        default=0.1,
        metavar="EPS",
        help="with --log: mix in uniform exploration with weight EPS in [0, 1] (default 0.1)",
    )
    simulate.add_argument(
        "--steps",
        type=int,
        default=MAX_EPISODE_STEPS,
        help=f"with --log: decisions per episode at most (default {MAX_EPISODE_STEPS})",
    )
    simulate.set_defaults(handler=_simulate)


def compare_policies(
    names: Sequence[str], scenarios: Sequence[str], n_seeds: int
) -> list[EvaluationResult]:
    """Evaluate each named policy on the same scenarios and seeds ``0..n_seeds-1`` (paired)."""
    if n_seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {n_seeds}")
    seeds = tuple(range(n_seeds))
    return [evaluate(load_policy(name), scenarios, seeds) for name in names]


def comparison_table(results: Sequence[EvaluationResult]) -> str:
    """Mean return (95% CI), final MRR and alignment, failures: one row per policy and
    scenario, then one overall row per policy."""
    header = (
        f"{'policy':<10}{'scenario':<18}{'mean return (95% CI)':>28}"
        f"{'final MRR':>12}{'alignment':>11}{'failed':>8}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        for scenario in result.scenarios:
            estimate = result.scenario_estimate(scenario)
            mrr = result.kpi_trajectory(scenario, "mrr")[:, -1]
            alignment = result.kpi_trajectory(scenario, "alignment_score")[:, -1]
            failed = int(result.failed[result.scenarios.index(scenario)].sum())
            lines.append(
                f"{result.policy_name:<10}{scenario:<18}{_interval(estimate):>28}"
                f"{_nanmean(mrr):>12,.0f}{_nanmean(alignment):>11.1f}"
                f"{f'{failed}/{len(result.seeds)}':>8}"
            )
    lines.append("-" * len(header))
    for result in results:
        lines.append(f"{result.policy_name:<10}{'overall':<18}{_interval(result.overall()):>28}")
    return "\n".join(lines)


def _interval(estimate: Any) -> str:
    return f"{estimate.mean:8.1f} [{estimate.low:7.1f}, {estimate.high:7.1f}]"


def _nanmean(values: Any) -> float:
    finite = values[values == values]  # a failed business has NaN after its last step
    return float(finite.mean()) if finite.size else float("nan")


def _demo(args: argparse.Namespace) -> int:
    from experiments.demo import DemoConfig, run_demo  # MLflow and torch load only here

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a quiet log
    chosen = {k: getattr(args, k) for k in ("seeds", "days", "users")}
    config = DemoConfig(**{k: v for k, v in chosen.items() if v is not None})
    run_demo(config)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    names = split_list(args.policies)
    scenarios = list(check_names(args.scenarios, SCENARIO_NAMES, "scenarios", all_word="all"))
    if args.log is not None:
        return _simulate_log(args, names, scenarios)
    print(comparison_table(compare_policies(names, scenarios, args.seeds)))
    return 0


def _simulate_log(args: argparse.Namespace, names: list[str], scenarios: list[str]) -> int:
    from policies.exploration import LogConfig, check_explore, simulate_log
    from policies.logged import write_jsonl

    if len(names) != 1:
        raise ValueError(f"--log writes the log of one behaviour policy, got --policies {names}")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    config = LogConfig(
        scenarios=tuple(scenarios),
        seeds=tuple(range(args.seeds)),
        explore=check_explore(args.explore),
        steps=args.steps,
    )
    count = write_jsonl(args.log, simulate_log(load_policy(names[0]), config))
    print(f"wrote {count} decisions of {names[0]} (explore {config.explore:g}) to {args.log}")
    return 0
