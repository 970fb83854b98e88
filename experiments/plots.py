"""The figures runs log: learning curve, KPI trajectories, policy comparison.

Built on ``matplotlib.figure.Figure`` directly (no ``pyplot``, so no global state and no GUI
backend); each function returns the figure for ``mlflow.log_figure``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from environment import STEPS_PER_DAY
from policies.evaluation import EvaluationResult

TRAJECTORY_KPIS = (
    "alignment_score",
    "mrr",
    "health_score",
    "churn_rate",
    "activation_rate",
    "at_risk_share",
)
"""KPIs shown in the trajectory figure (those the reward and the operators watch most)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One periodic evaluation during training: mean return over scenarios and its 95% CI."""

    timesteps: int
    mean: float
    low: float
    high: float


def learning_curve(
    checkpoints: Sequence[Checkpoint],
    train_returns: Sequence[tuple[int, float]] = (),
    title: str = "",
) -> Figure:
    """Evaluation return (mean with 95% band) against training steps, with the training
    episode returns (SB3's ``rollout/ep_rew_mean``, or a bandit's episode returns) beside."""
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.subplots()
    if train_returns:
        steps, values = zip(*train_returns, strict=True)
        axes.plot(steps, values, color="0.6", lw=1, label="training episodes")
    if checkpoints:
        x = np.array([c.timesteps for c in checkpoints])
        mean = np.array([c.mean for c in checkpoints])
        low = np.array([c.low for c in checkpoints])
        high = np.array([c.high for c in checkpoints])
        axes.plot(x, mean, marker="o", color="C0", label="evaluation (mean over scenarios)")
        if np.isfinite(low).all() and np.isfinite(high).all():
            axes.fill_between(x, low, high, color="C0", alpha=0.2, label="95% CI")
    axes.set_xlabel("environment steps")
    axes.set_ylabel("episode return")
    axes.set_title(title or "learning curve")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return figure


def kpi_trajectories(result: EvaluationResult, kpis: Sequence[str] = TRAJECTORY_KPIS) -> Figure:
    """Mean (over seeds) trajectory of each KPI per scenario, in natural units, by day."""
    figure = Figure(figsize=(12, 6), layout="constrained")
    axes = figure.subplots(2, (len(kpis) + 1) // 2, squeeze=False).ravel()
    for ax, kpi in zip(axes, kpis, strict=False):
        for i, scenario in enumerate(result.scenarios):
            trajectory = result.kpi_trajectory(scenario, kpi)
            # NaN after a failure: average over the seeds still running at each step.
            alive = np.isfinite(trajectory)
            counts = alive.sum(axis=0)
            if not counts.any():
                continue
            totals = np.where(alive, trajectory, 0.0).sum(axis=0)
            mean = np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
            days = np.arange(len(mean)) / STEPS_PER_DAY
            ax.plot(days, mean, lw=1, color=f"C{i % 10}", label=scenario)
        ax.set_title(kpi, fontsize="medium")
        ax.set_xlabel("day")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="x-small", loc="best")
    figure.suptitle(f"KPI trajectories: {result.policy_name} (mean over seeds)")
    return figure


def comparison(results: Sequence[EvaluationResult], labels: Sequence[str]) -> Figure:
    """Mean return with 95% CI per scenario (and overall), one bar per policy."""
    scenarios = [*results[0].scenarios, "overall"]
    figure = Figure(
        figsize=(max(7, 1.2 * len(scenarios) * max(1, len(results)) / 2), 4.5), layout="constrained"
    )
    axes = figure.subplots()
    width = 0.8 / len(results)
    x = np.arange(len(scenarios))
    for k, (result, label) in enumerate(zip(results, labels, strict=True)):
        estimates = [result.scenario_estimate(s) for s in result.scenarios] + [result.overall()]
        means = np.array([e.mean for e in estimates])
        errors = np.array([e.half_width for e in estimates])
        errors = np.where(np.isfinite(errors), errors, 0.0)
        axes.bar(
            x + (k - (len(results) - 1) / 2) * width,
            means,
            width,
            yerr=errors,
            capsize=2,
            label=label,
            color=f"C{k % 10}",
        )
    axes.set_xticks(x, scenarios, rotation=30, ha="right")
    axes.set_ylabel("mean episode return (95% CI)")
    axes.set_title("paired evaluation")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small")
    return figure


__all__ = ["Checkpoint", "comparison", "kpi_trajectories", "learning_curve"]
