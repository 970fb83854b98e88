"""The project's main job, behind ``autopilot demo`` and ``make demo``.

Three stages on embedded defaults (SQLite files, a local MLflow store), each printed as it ends:

1. **The champion.** The learned policy the package ships, ``policies/data/champion.zip``: a
   maskable PPO trained by ``autopilot train --preset champion`` (:mod:`experiments.champion`,
   reproducible from its seed; its metadata sits beside it). Training it takes longer than the
   demo's few minutes on two cores, so the demo evaluates it and says so. It is logged to
   MLflow and registered as ``autopilot-policy`` with alias ``challenger``.
2. **Paired evaluation** on the simulator against ``rules`` (the operator's if-statements) and
   ``noop``, on every scenario and seeds no training or tuning saw (:data:`DEMO_SEED_START`
   on), with 95% intervals of each mean and of the paired difference against rules.
3. **Close the loop**: seed a synthetic business into a SQLite database and run the simulator
   and the agent together for ``days`` simulated days (:func:`agent.twin.run_closed_loop`) at
   the deployment cadence (a cycle every 4 hours, one environment step), in live mode, with
   the guardrails on and nobody approving held decisions: every cycle the agent observes by
   SQL, decides, passes the guardrails and acts; the simulator reads the actuators' effects
   back. The same seed runs with the champion, with ``rules`` and with no agent, the arms side
   by side in worker processes (one per core). 90 days by default, the target's length: the
   champion invests (features, funnel fixes, prompts) where the rules do not, and that pays
   after the first month. The table of business value, of what the policy's own decisions
   became (executed, held, blocked) and of final KPIs, a KPI-trajectory plot and the run go
   to MLflow.

Files: ``demo/<arm>.db`` (one database per arm), ``demo/kpi_trajectories.png``, ``mlflow.db``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch

from agent.twin import TRAJECTORY_KPIS, LoopResult, run_closed_loop
from environment.dynamics import revenue_scale
from environment.params import BusinessParams
from environment.scenarios import SCENARIO_NAMES
from experiments.evaluate import EvaluationReport, evaluate_policies
from experiments.models import log_policy_model
from experiments.tracking import Tracking, configure, log_metrics, log_params, start_run
from policies.evaluation import Estimate
from policies.registry import CHAMPION_MODEL, load_policy

CHAMPION_SPEC = "champion"
"""The registry's name of the shipped champion."""
BASELINES = ("rules", "noop")
DEMO_SCENARIOS = SCENARIO_NAMES
"""Every scenario: the demo shows where the champion loses as well as where it wins."""
DEMO_SEED_START = 20_000
"""The demo's evaluation seeds start here: disjoint from training, tuning, tests and the
benchmarks' seeds."""
ARMS = ("autopilot", "rules", "none")
ARM_LABELS = {
    "autopilot": "autopilot (learned champion)",
    "rules": "rules (operator's if-statements)",
    "none": "no agent",
}
POLICY_LABELS = {
    CHAMPION_SPEC: "learned champion",
    "rules": "rules (if-statements)",
    "noop": "noop (do nothing)",
}


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Budgets of the demo; the defaults finish in about five minutes on 2 cores.

    - ``seeds``: paired evaluation seeds per scenario (stage 2).
    - ``days``: simulated days of the closed loop (stage 3); ``users``: size of the business.
    - ``seed``: the closed loop's seed, the same for every arm.
    - ``workdir``: where ``demo/`` is written.
    """

    seeds: int = 5
    days: int = 90
    users: int = 2_000
    seed: int = DEMO_SEED_START
    workdir: Path = Path()

    def __post_init__(self) -> None:
        for name, low in (("seeds", 2), ("days", 1), ("users", 100)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"demo {name}={value!r} must be an integer >= {low}")


def run_demo(
    config: DemoConfig, *, tracking: Tracking | None = None, say: Callable[[str], None] = print
) -> list[LoopResult]:
    """Run the three stages (module docstring); returns the closed-loop results by arm."""
    store = tracking or configure()
    champion = load_policy(CHAMPION_SPEC)
    say("[1/3] The learned champion (not trained here: it ships with the package)")
    say(champion_summary())
    with start_run(store, "autopilot-demo", "champion", tags={"autopilot.command": "demo"}):
        logged = log_policy_model(champion)
    say(f"      registered as autopilot-policy version {logged.version} (alias challenger)\n")

    seeds = list(range(DEMO_SEED_START, DEMO_SEED_START + config.seeds))
    say(
        f"[2/3] Paired evaluation on the simulator: {len(DEMO_SCENARIOS)} scenarios x "
        f"{config.seeds} unseen seeds ({seeds[0]}-{seeds[-1]}), 90 days each..."
    )
    report = evaluate_policies(
        ["rules", CHAMPION_SPEC, "noop"], DEMO_SCENARIOS, seeds, tracking=store
    )
    say(evaluation_table(report) + "\n")

    say(
        f"[3/3] Closed loop on a database: {config.days} days, {config.users:,} users, a cycle "
        "every 4 hours, live mode, guardrails on, nobody approving held decisions..."
    )
    folder = config.workdir / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    results = run_arms(folder, config)
    say(loop_table(results))
    plot = folder / "kpi_trajectories.png"
    plot_trajectories(results, plot)
    with start_run(store, "autopilot-demo", "closed loop", tags={"autopilot.command": "demo"}):
        log_params({"days": config.days, "users": config.users, "seed": config.seed})
        for result in results:
            log_metrics(
                {
                    f"{result.mode}.business_value": result.business_value,
                    **{f"{result.mode}.{k}": v for k, v in result.final_kpis.items()},
                }
            )
        mlflow.log_artifact(str(plot))
    say(f"\nKPI trajectories: {plot}")
    say(f"Review the runs: mlflow ui --backend-store-uri {store.uri}  (http://127.0.0.1:5000)")
    return results


def run_arms(folder: Path, config: DemoConfig) -> list[LoopResult]:
    """The closed loop of every arm (:data:`ARMS` order), side by side in worker processes,
    one per core up to one per arm: each arm has its own database and the same seed, so
    running them at once changes nothing but the wall time."""
    workers = min(len(ARMS), os.cpu_count() or 1)
    if workers == 1:
        return [_loop(arm, folder, config) for arm in ARMS]
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        return list(pool.map(_loop, ARMS, [folder] * len(ARMS), [config] * len(ARMS)))


def _loop(arm: str, folder: Path, config: DemoConfig) -> LoopResult:
    """One arm's loop on a fresh database (``demo/<arm>.db``)."""
    torch.set_num_threads(1)  # the arms share the cores
    database = folder / f"{arm}.db"
    database.unlink(missing_ok=True)  # every arm starts from the same fresh business
    return run_closed_loop(
        f"sqlite:///{database}",
        days=config.days,
        seed=config.seed,
        mode=arm,  # type: ignore[arg-type]
        policy=load_policy(CHAMPION_SPEC) if arm == "autopilot" else None,
        users=config.users,
        scenario="mixed",
    )


def champion_summary() -> str:
    """Where the champion came from, from its metadata file."""
    meta_file = CHAMPION_MODEL.with_name(CHAMPION_MODEL.stem + ".json")
    meta = json.loads(meta_file.read_text())
    minutes = meta["training_seconds"] / 60
    return (
        f"      {CHAMPION_MODEL.name}: {meta['algo']}, {meta['timesteps']:,} steps, seed "
        f"{meta['seed']}, trained in {minutes:.0f} min by '{meta['command']}';\n"
        f"      its confidence is calibrated as the probability that acting beats holding "
        f"({meta['calibration_decisions']} counterfactual decisions)"
    )


UNIT = (
    "Value = what a 90-day episode earned: cash plus the change in what the customer base is\n"
    "worth, in units of one 4-hour step's revenue at the start (${:,.0f}). '±' is the half-width\n"
    "of the 95% confidence interval of the mean; the last column pairs each episode of the\n"
    "champion with the rules' episode on the same scenario and seed."
)


def _cell(estimate: Estimate) -> str:
    return f"{estimate.mean:,.0f} ± {estimate.half_width:,.0f}"


def evaluation_table(report: EvaluationReport) -> str:
    """Scenario rows; the policies' mean values and the champion's paired gain over rules.

    ``report`` evaluated rules first, then the champion, then the other baselines."""
    rules, champion = report.results[0], report.results[1]
    others = report.results[2:]
    gain = report.comparisons[0]
    names = [champion, rules, *others]
    # the champion's own name is its algorithm's; the table names it for what it is
    headers = [POLICY_LABELS[CHAMPION_SPEC]] + [
        POLICY_LABELS.get(r.policy_name, r.policy_name) for r in names[1:]
    ]
    widths = [max(18, len(h) + 2) for h in headers]
    line = f"{'scenario':<18}" + "".join(f"{h:>{w}}" for h, w in zip(headers, widths, strict=True))
    line += f"{'champion vs rules':>30}"
    lines = [UNIT.format(revenue_scale(BusinessParams())), "", line, "-" * len(line)]
    for scenario in rules.scenarios:
        cells = [r.scenario_estimate(scenario) for r in names]
        diff = gain.per_scenario[scenario]
        base = rules.scenario_estimate(scenario).mean
        share = f"({100 * diff.mean / abs(base):+.1f}%)" if base else ""
        lines.append(
            f"{scenario:<18}"
            + "".join(f"{_cell(c):>{w}}" for c, w in zip(cells, widths, strict=True))
            + f"{_cell(diff):>22} {share:>7}"
        )
    rel = gain.relative
    lines.append(
        f"{'overall':<18}"
        + "".join(f"{_cell(r.overall()):>{w}}" for r, w in zip(names, widths, strict=True))
        + f"{_cell(gain.overall):>22} ({100 * rel.mean:+.1f}%)"
    )
    lines.append(
        f"\nThe champion {'beats' if rel.mean > 0 else 'trails'} rules by {100 * rel.mean:+.1f}% "
        f"[{100 * rel.low:+.1f}%, {100 * rel.high:+.1f}%] (95% interval), winning "
        f"{100 * gain.a_wins:.0f}% of the paired episodes."
    )
    return "\n".join(lines)


def loop_table(results: Sequence[LoopResult]) -> str:
    """One row per arm: business value, what the policy's own non-noop decisions became,
    what self-healing executed, and final KPIs."""
    header = (
        f"{'arm':<34}{'value':>9}{'policy: executed/held/blocked':>32}"
        f"{'self-healing executed':>23}{'MRR at the end':>16}{'health':>8}{'seconds':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        policy = r.decisions.get("policy", {})
        healing = r.decisions.get("self_healing", {})
        outcome = "/".join(str(policy.get(k, 0)) for k in ("executed", "needs_approval", "blocked"))
        lines.append(
            f"{ARM_LABELS.get(r.mode, r.mode):<34}{r.business_value:>9,.1f}"
            f"{outcome if r.mode != 'none' else '-':>32}"
            f"{healing.get('executed', 0) if r.mode != 'none' else '-':>23}"
            f"{r.final_kpis.get('mrr', float('nan')):>16,.0f}"
            f"{r.final_kpis.get('health_score', float('nan')):>8.1f}{r.seconds:>9.0f}"
        )
    by_mode = {r.mode: r for r in results}
    if "autopilot" in by_mode and "rules" in by_mode:
        a, b = by_mode["autopilot"].business_value, by_mode["rules"].business_value
        lines.append(
            f"\nValue is the simulator's reward summed over the {results[0].days} days (same "
            "unit as above; one seed, so no interval).\n"
            f"The champion {'beats' if a > b else 'trails'} rules by {a - b:+,.1f} "
            f"({100 * (a - b) / abs(b):+.1f}%) in the closed loop."
        )
    return "\n".join(lines)


def plot_trajectories(results: Sequence[LoopResult], path: Path) -> None:
    """One panel per KPI, one line per arm, days on the x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kpis = [k for k in TRAJECTORY_KPIS if k != "day"]
    columns = 4
    rows = -(-len(kpis) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    try:
        for ax in axes.flat[len(kpis) :]:
            ax.set_visible(False)
        for ax, kpi in zip(axes.flat, kpis, strict=False):
            for r in results:
                days = [row["day"] for row in r.trajectory]
                ax.plot(days, [row[kpi] for row in r.trajectory], label=r.mode)
            ax.set_title(kpi)
            ax.set_xlabel("day")
        axes.flat[0].legend()
        fig.tight_layout()
        fig.savefig(path, dpi=90)
    finally:
        plt.close(fig)
