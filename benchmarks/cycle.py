"""Full-cycle duration: ``run_full_cycle`` on a seeded business at 10k and 100k accounts, on
SQLite and PostgreSQL (target: under 5 s at 100k; the seed's engine claimed under 30 s).

Each size is seeded once per backend; then, per repeat, one dry-run cycle and one live cycle
(the live one executes the self-healing actions the detector finds: archiving orphans,
messaging at-risk accounts, retry jobs, email fixes) at successive hours. Reported: seeding
time, and the median and max duration of each kind of cycle.

    python benchmarks/cycle.py [--sizes 10000 100000] [--repeats 3]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--days 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from agent.db import make_engine, upgrade
from agent.orchestrator import run_full_cycle
from agent.seed import SeedConfig, seed

END = datetime(2025, 6, 1)


def _sqlite(folder: Path, users: int) -> tuple[Engine, None]:
    engine = make_engine(f"sqlite:///{folder / f'bench_{users}.db'}")
    upgrade(engine)
    return engine, None


def _postgres(url: str) -> tuple[Engine, str]:
    schema = f"bench_cycle_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    upgrade(engine)
    return engine, schema


def measure(engine: Engine, users: int, days: int, repeats: int) -> dict[str, float]:
    began = time.perf_counter()
    seed(engine, SeedConfig(users=users, days=days, seed=1, end=END))
    seeded = time.perf_counter() - began
    dry: list[float] = []
    live: list[float] = []
    for i in range(repeats):
        at = END + timedelta(hours=2 * i)
        dry.append(run_full_cycle(engine, dry_run=True, policy="rules", as_of=at).duration_s)
        result = run_full_cycle(
            engine, dry_run=False, policy="rules", as_of=at + timedelta(hours=1)
        )
        live.append(result.duration_s)
    return {
        "seed_s": seeded,
        "dry_median_s": statistics.median(dry),
        "dry_max_s": max(dry),
        "live_median_s": statistics.median(live),
        "live_max_s": max(live),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--postgres", default=None, help="PostgreSQL URL (omit to skip)")
    args = parser.parse_args()
    print(
        f"{'backend':10} {'users':>7} {'seed s':>7} {'dry p50':>8} {'dry max':>8} "
        f"{'live p50':>9} {'live max':>9}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp:
        for users in args.sizes:
            backends = ["sqlite"] + (["postgresql"] if args.postgres else [])
            for backend in backends:
                if backend == "sqlite":
                    engine, schema = _sqlite(Path(tmp), users)
                else:
                    engine, schema = _postgres(args.postgres)
                try:
                    r = measure(engine, users, args.days, args.repeats)
                finally:
                    engine.dispose()
                    if schema:
                        admin = make_engine(args.postgres)
                        with admin.begin() as connection:
                            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                        admin.dispose()
                print(
                    f"{backend:10} {users:>7} {r['seed_s']:>7.1f} {r['dry_median_s']:>8.2f} "
                    f"{r['dry_max_s']:>8.2f} {r['live_median_s']:>9.2f} {r['live_max_s']:>9.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
