"""The project's main job, behind ``autopilot demo`` and ``make demo``.

Three stages on embedded defaults (SQLite files, a local MLflow store), each printed as it ends:

1. **Train** a small PPO policy on the simulator; it is logged to MLflow and registered as
   ``autopilot-policy`` with alias ``challenger``.
2. **Evaluate** it against the baselines (``rules``, ``noop``, ``random``) on the same scenarios
   and seeds, with 95% confidence intervals and paired differences, logged to MLflow.
3. **Close the loop**: seed a synthetic business into a SQLite database and run the simulator
   and the agent together for ``days`` simulated days (:func:`agent.twin.run_closed_loop`):
   every day the simulator writes users, events and payments into the database; every cycle
   the agent observes by SQL, decides, passes the guardrails and acts in live mode; the
   simulator reads the actuators' effects back. The same seed runs with the challenger loaded
   from the registry, with ``rules``, and with no agent. The table of final KPIs and business
   value, a KPI-trajectory plot and the run go to MLflow.

Files: ``demo/<arm>.db`` (one database per arm), ``demo/kpi_trajectories.png``, ``mlflow.db``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow

from agent.twin import TRAJECTORY_KPIS, LoopResult, run_closed_loop
from experiments.config import load_config
from experiments.evaluate import evaluate_policies
from experiments.models import load_policy_uri
from experiments.tracking import Tracking, configure, log_metrics, log_params, start_run
from experiments.train import train

CHALLENGER_URI = "models:/autopilot-policy@challenger"
BASELINES = ("rules", "noop", "random")
DEMO_SCENARIOS = ("steady", "payment_outage", "competitor_churn")
ARMS = ("autopilot", "rules", "none")


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Budgets of the demo; the defaults finish in a few minutes on 2 cores.

    - ``timesteps``: PPO training steps (stage 1).
    - ``seeds``: paired evaluation seeds per scenario (stage 2).
    - ``days``: simulated days of the closed loop (stage 3); ``users``: size of the business.
    - ``seed``: the closed loop's seed, the same for every arm.
    - ``workdir``: where ``demo/`` is written.
    """

    timesteps: int = 20_000
    seeds: int = 3
    days: int = 90
    users: int = 2_000
    seed: int = 0
    workdir: Path = Path()

    def __post_init__(self) -> None:
        for name, low in (("timesteps", 64), ("seeds", 2), ("days", 1), ("users", 100)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"demo {name}={value!r} must be an integer >= {low}")


def run_demo(
    config: DemoConfig, *, tracking: Tracking | None = None, say: Callable[[str], None] = print
) -> list[LoopResult]:
    """Run the three stages (module docstring); returns the closed-loop results by arm."""
    store = tracking or configure()
    say(f"[1/3] Training PPO for {config.timesteps:,} steps on the simulator...")
    trained = train(
        load_config(
            "ppo",
            timesteps=config.timesteps,
            eval_scenarios=DEMO_SCENARIOS,
            eval_seeds=2,
        ),
        tracking=store,
        progress=True,
    )
    say(f"      run {trained.run_id}, registered as {CHALLENGER_URI}\n")

    say(f"[2/3] Paired evaluation against {', '.join(BASELINES)} ({config.seeds} seeds)...")
    report = evaluate_policies(
        [CHALLENGER_URI, *BASELINES], DEMO_SCENARIOS, config.seeds, tracking=store
    )
    say(report.table() + "\n")

    say(f"[3/3] Closed loop: {config.days} days, {config.users:,} users, arms {ARMS}...")
    folder = config.workdir / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    challenger = load_policy_uri(CHALLENGER_URI, tracking=store)
    results = []
    for arm in ARMS:
        database = folder / f"{arm}.db"
        database.unlink(missing_ok=True)  # every arm starts from the same fresh business
        results.append(
            run_closed_loop(
                f"sqlite:///{database}",
                days=config.days,
                seed=config.seed,
                mode=arm,  # type: ignore[arg-type]
                policy=challenger if arm == "autopilot" else None,
                users=config.users,
            )
        )
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


def loop_table(results: Sequence[LoopResult]) -> str:
    """One row per arm: business value, final KPIs, executions and time."""
    kpis = [k for k in TRAJECTORY_KPIS if k != "day"]
    header = f"{'arm':<10}{'policy':<34}{'value':>9}" + "".join(f"{k[:14]:>16}" for k in kpis)
    header += f"{'executed':>10}{'seconds':>9}"
    lines = [header, "-" * len(header)]
    for r in results:
        cells = "".join(_cell(r.final_kpis.get(k, float("nan"))) for k in kpis)
        executed = sum(r.executions.values())
        lines.append(
            f"{r.mode:<10}{r.policy[:33]:<34}{r.business_value:>9.1f}{cells}"
            f"{executed:>10}{r.seconds:>9.1f}"
        )
    return "\n".join(lines)


def _cell(value: float) -> str:
    """Large numbers with thousands separators, small ones with 4 significant digits."""
    return f"{value:>16,.0f}" if abs(value) >= 1_000 else f"{value:>16.4g}"


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
