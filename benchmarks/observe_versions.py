"""``observe`` on one database by several checkouts of the code, interleaved (issue 17's
before/after figures in BENCHMARKS.md, "Database and observation").

Each round runs every checkout once, in its own process (``PYTHONPATH`` = the checkout), timing
``observe`` ``--runs`` times on a warm connection; the first run is dropped and the median kept.
Rounds interleave the checkouts so that the machine's load falls on all alike; the result is
the median of the round medians and its ratio to the first checkout.

    git archive b0770e2 | tar -x -C /tmp/pre      # any commit, one folder each
    .venv/bin/python benchmarks/observe_versions.py --db sqlite:////tmp/obs10k.db \\
        --as-of 2025-06-01 --checkouts /tmp/pre /tmp/before . --rounds 5 --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

TIMER = """
import statistics, sys, time
from datetime import datetime
from agent.db import make_engine, session_scope
from agent.observe import observe
engine = make_engine(sys.argv[1])
at = datetime.fromisoformat(sys.argv[2])
times = []
for _ in range(int(sys.argv[3])):
    with session_scope(engine) as session:
        began = time.perf_counter()
        observe(session, at)
        times.append(time.perf_counter() - began)
print(statistics.median(times[1:]))
"""


def round_median(checkout: str, args: argparse.Namespace) -> float:
    """One process of ``checkout`` timing observe; the median of its runs but the first."""
    env = {**os.environ, "PYTHONPATH": os.path.abspath(checkout)}
    out = subprocess.run(
        [sys.executable, "-c", TIMER, args.db, args.as_of, str(args.runs)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="database URL (seeded)")
    parser.add_argument("--as-of", required=True, help="observe's clock, ISO-8601")
    parser.add_argument("--checkouts", nargs="+", required=True, help="folders; first = base")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5, help="observes per process (>= 2)")
    args = parser.parse_args()
    if args.runs < 2 or args.rounds < 1:
        raise SystemExit(f"--runs must be >= 2 and --rounds >= 1, got {args.runs}, {args.rounds}")
    results: dict[str, list[float]] = {c: [] for c in args.checkouts}
    for _ in range(args.rounds):
        for checkout in args.checkouts:
            results[checkout].append(round_median(checkout, args))
    base = statistics.median(results[args.checkouts[0]])
    for checkout, medians in results.items():
        m = statistics.median(medians)
        rounds = ", ".join(f"{x:.3f}" for x in medians)
        print(f"{checkout:30} {m:8.3f} s  x first {m / base:5.2f}  rounds [{rounds}]")


if __name__ == "__main__":
    main()
