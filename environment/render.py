"""Renderings of the environment: a compact KPI table (``ansi``) and a KPI chart (``rgb_array``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from environment.kpis import KPI_SPECS

CHART_KPIS = ("activation_rate", "d7_retention", "at_risk_share", "billing_failure_rate")
"""Shares drawn on the chart's left panel; the right panel shows health and alignment."""


def render_ansi(kpis: Mapping[str, float], t: int, steps_per_day: int) -> str:
    """A fixed-width table of every KPI with its target and whether it is met."""
    day, step = divmod(t, steps_per_day)
    lines = [f"day {day} step {step}", f"{'kpi':<26}{'value':>14}{'target':>10}  ok"]
    for spec in KPI_SPECS:
        value = kpis[spec.name]
        if spec.target is None:
            target, ok = "", ""
        else:
            target = f"{spec.target:g}"
            ok = "yes" if spec.attainment(value) >= 1.0 else "NO"
        lines.append(f"{spec.name:<26}{value:>14.4g}{target:>10}  {ok}")
    return "\n".join(lines) + "\n"


def render_rgb(history: Sequence[Mapping[str, float]]) -> NDArray[np.uint8]:
    """An RGB image (H, W, 3) of the KPI trajectories so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3), dpi=80)
    try:
        steps = np.arange(len(history))
        for name in CHART_KPIS:
            left.plot(steps, [kpis[name] for kpis in history], label=name)
        left.set_ylim(0, 1)
        left.legend(fontsize=6, loc="upper right")
        left.set_xlabel("step")
        for name in ("health_score", "alignment_score"):
            right.plot(steps, [kpis[name] for kpis in history], label=name)
        right.set_ylim(0, 100)
        right.legend(fontsize=6, loc="lower right")
        right.set_xlabel("step")
        fig.tight_layout()
        fig.canvas.draw()
        image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]
    finally:
        plt.close(fig)
    return image
