"""The shipped champion against the rules: in the simulator and in the closed loop (issue 15).

**Simulator** (``--seeds`` unseen seeds per scenario, from :data:`SIM_SEED_START`, every
scenario, 90-day episodes): the champion (``policies/data/champion.zip``), ``rules`` and
``noop``, paired seed by seed; mean value per scenario with 95% intervals and the champion's
relative gain over rules per scenario and overall. Targets: >= rules +25% overall and not
worse than rules on any scenario.

**Closed loop** (``--loop-seeds`` seeds from :data:`LOOP_SEED_START`, ``--days`` days, 2,000
users, the mixed scenario, a cycle every 4 hours, live mode, guardrails on, nobody approving):
:func:`agent.twin.run_closed_loop` with the champion, with rules and with no agent; per seed
the business value and what the policy's own non-noop decisions became. Targets: champion >=
rules +15% and better on every seed, with most of its own decisions executed.

    PYTHONPATH=. python benchmarks/champion_quality.py [--seeds 10] [--loop-seeds 3] [--days 90]

The training wall time is the champion's metadata (``policies/data/champion.json``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from agent.twin import LoopResult, run_closed_loop
from environment.scenarios import SCENARIO_NAMES
from policies.evaluation import compare, evaluate
from policies.registry import CHAMPION_MODEL, load_policy

SIM_SEED_START = 9_500
"""Simulator seeds: disjoint from training (1,000,000+), imitation (2,000,000+), calibration
(3,000,000+), evaluation during training (1,000+), promotion (0+), tests (< 100)."""
LOOP_SEED_START = 9_700
"""Closed-loop seeds (the demo uses 20,000+)."""


def simulator_table(seeds: int) -> None:
    """Print the simulator comparison."""
    seed_list = list(range(SIM_SEED_START, SIM_SEED_START + seeds))
    results = {}
    for name in ("champion", "rules", "noop"):
        start = time.perf_counter()
        results[name] = evaluate(load_policy(name), SCENARIO_NAMES, seed_list, record_kpis=False)
        print(f"{name}: evaluated in {time.perf_counter() - start:.0f} s")
    gain = compare(results["champion"], results["rules"])
    print(
        f"\nsimulator: mean value per episode ± 95% half-width, {seeds} paired seeds "
        f"({seed_list[0]}-{seed_list[-1]}) per scenario"
    )
    print(f"{'scenario':<18}{'champion':>16}{'rules':>16}{'noop':>16}{'champion vs rules':>22}")
    for scenario in SCENARIO_NAMES:
        cells = "".join(f"{results[n].scenario_estimate(scenario)!s:>16}" for n in results)
        diff = gain.per_scenario[scenario]
        base = results["rules"].scenario_estimate(scenario).mean
        share, half = 100 * diff.mean / abs(base), 100 * diff.half_width / abs(base)
        print(f"{scenario:<18}{cells}{share:>+16.1f}% ± {half:.1f}")
    rel = gain.relative
    cells = "".join(f"{results[n].overall()!s:>16}" for n in results)
    print(
        f"{'overall':<18}{cells}{100 * rel.mean:>+16.1f}% "
        f"[{100 * rel.low:+.1f}%, {100 * rel.high:+.1f}%]   wins {100 * gain.a_wins:.0f}%"
    )
    shares = {
        s: gain.per_scenario[s].mean / abs(results["rules"].scenario_estimate(s).mean)
        for s in SCENARIO_NAMES
    }
    worst = min(shares, key=shares.__getitem__)
    print(
        f"target >= +25% overall: {'met' if rel.mean >= 0.25 else 'missed'}; worst scenario "
        f"{worst} {100 * shares[worst]:+.1f}%"
    )


def _outcomes(result: LoopResult) -> str:
    policy = result.decisions.get("policy", {})
    return "/".join(str(policy.get(k, 0)) for k in ("executed", "needs_approval", "blocked"))


def loop_table(seeds: int, days: int, users: int) -> None:
    """Print the closed-loop comparison."""
    champion = load_policy("champion")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(LOOP_SEED_START, LOOP_SEED_START + seeds):
            arms = {}
            for mode in ("autopilot", "rules", "none"):
                arms[mode] = run_closed_loop(
                    f"sqlite:///{Path(tmp) / f'{mode}-{seed}.db'}",
                    days=days,
                    seed=seed,
                    mode=mode,  # type: ignore[arg-type]
                    policy=champion if mode == "autopilot" else None,
                    users=users,
                    scenario="mixed",
                )
            rows.append((seed, arms))
            a, r = arms["autopilot"], arms["rules"]
            print(
                f"seed {seed}: champion {a.business_value:,.1f} (policy executed/held/blocked "
                f"{_outcomes(a)}), rules {r.business_value:,.1f} ({_outcomes(r)}), no agent "
                f"{arms['none'].business_value:,.1f}; {a.seconds + r.seconds:.0f} s",
                flush=True,
            )
    values = np.array(
        [[arms[m].business_value for m in ("autopilot", "rules")] for _, arms in rows]
    )
    gains = values[:, 0] / np.abs(values[:, 1]) - 1
    print(
        f"\nclosed loop ({days} days, {users:,} users, mixed, 6 cycles a day, nobody approving): "
        f"champion vs rules {100 * gains.mean():+.1f}% (per seed "
        + ", ".join(f"{100 * g:+.1f}%" for g in gains)
        + f"); better on every seed: {bool((gains > 0).all())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="simulator seeds per scenario")
    parser.add_argument("--loop-seeds", type=int, default=3, help="closed-loop seeds (0: skip)")
    parser.add_argument("--days", type=int, default=90, help="closed-loop days")
    parser.add_argument("--users", type=int, default=2_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    meta = json.loads(CHAMPION_MODEL.with_name("champion.json").read_text())
    print(
        f"champion: {meta['algo']}, {meta['timesteps']:,} steps, trained in "
        f"{meta['training_seconds'] / 60:.0f} min ({meta['command']})"
    )
    if args.seeds:
        simulator_table(args.seeds)
    if args.loop_seeds:
        loop_table(args.loop_seeds, args.days, args.users)


if __name__ == "__main__":
    main()
