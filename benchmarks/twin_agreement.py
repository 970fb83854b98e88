"""Does the twin's SQL observation agree with the simulator it mirrors? (issue 15)

Runs one closed loop (:func:`agent.twin.run_closed_loop`; ``autopilot``: the shipped
champion) and compares, KPI by KPI, what the
policy saw (the observed KPIs logged with each of its decisions, averaged per day) with the
simulator's true KPIs at the end of the previous day (what the day's rows were written from):
the means over the loop and their correlation across days. A policy trained on the simulator
meets the twin's observations; where the two disagree, its decisions stop meaning what they
meant in training.

    PYTHONPATH=. python benchmarks/twin_agreement.py --seed 8800 --days 45 --mode autopilot
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from sqlalchemy import select

from agent.db import make_engine, session_factory
from agent.models import DecisionRecord
from agent.twin import START, run_closed_loop
from environment.kpis import KPI_NAMES
from policies.registry import load_policy


def observed_by_day(url: str) -> dict[int, list[dict[str, float]]]:
    """The policy's observed KPIs per loop day (0 = the first day)."""
    out: dict[int, list[dict[str, float]]] = {}
    with session_factory(make_engine(url))() as session:
        rows = session.execute(
            select(DecisionRecord.decided_at, DecisionRecord.context_kpis).where(
                DecisionRecord.source == "policy"
            )
        ).all()
    for decided_at, kpis in rows:
        out.setdefault((decided_at - START).days, []).append(kpis)
    return out


def agreement(seed: int, days: int, mode: str) -> None:
    """Print the per-KPI table."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'twin.db'}"
        result = run_closed_loop(
            url,
            days=days,
            seed=seed,
            mode=mode,
            policy=load_policy("champion") if mode == "autopilot" else None,
            scenario="mixed",
            trajectory_kpis=KPI_NAMES,
        )
        observed = observed_by_day(url)
    print(f"{mode}, seed {seed}, {days} days: business value {result.business_value:.1f}\n")
    print("| KPI | twin (observed) | simulator | correlation over days |")
    print("|---|---:|---:|---:|")
    for name in KPI_NAMES:
        pairs = [
            (float(np.mean([o[name] for o in observed[d + 1]])), truth[name])
            for d, truth in enumerate(result.trajectory)
            if d + 1 in observed  # day d+1's cycles see the rows written for day d
        ]
        seen, true = np.array(pairs).T
        spread = seen.std() > 0 and true.std() > 0
        corr = f"{np.corrcoef(seen, true)[0, 1]:+.2f}" if spread else "-"
        print(f"| {name} | {seen.mean():.4g} | {true.mean():.4g} | {corr} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=8800)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--mode", choices=["autopilot", "rules"], default="autopilot")
    args = parser.parse_args()
    agreement(args.seed, args.days, args.mode)


if __name__ == "__main__":
    main()
