"""How the cost of observe + detect grows with the size of the business (issue 5's benchmark).

For each backend and size: seed a business (``--days`` of history), then time ``observe`` and
``detect`` ``--repeats`` times on a warm connection and keep the median. Sizes are compared as
ratios against the smallest size of the same backend in the same run (these machines are
noisy), and the absolute seconds are printed beside them. Target: observe + detect at 100k
users (millions of events) under 5 s on SQLite.

    .venv/bin/python benchmarks/observe_scaling.py --sizes 10000 100000 \\
        --backends sqlite postgresql \\
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, func, select, text

from agent.db import make_engine, session_scope, upgrade
from agent.detect import detect
from agent.models import Event
from agent.observe import observe
from agent.seed import SeedConfig, seed

END = datetime(2025, 6, 1)


@dataclass
class Row:
    backend: str
    users: int
    events: int
    seed_s: float
    observe_s: float
    detect_s: float

    @property
    def total_s(self) -> float:
        return self.observe_s + self.detect_s


def _engine(
    backend: str, workdir: Path, users: int, postgres_url: str | None
) -> tuple[Engine, str | None]:
    if backend == "sqlite":
        path = workdir / f"business_{users}.db"
        path.unlink(missing_ok=True)
        return make_engine(f"sqlite:///{path}"), None
    if not postgres_url:
        raise SystemExit("--postgres-url is required for the postgresql backend")
    schema = f"bench_{users}_{uuid.uuid4().hex[:8]}"
    with make_engine(postgres_url).begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    return make_engine(postgres_url, connect_args={"options": f"-csearch_path={schema}"}), schema


def measure(backend: str, users: int, args: argparse.Namespace, workdir: Path) -> Row:
    engine, schema = _engine(backend, workdir, users, args.postgres_url)
    try:
        upgrade(engine)
        config = SeedConfig(
            users=users, days=args.days, scenario=args.scenario, seed=args.seed, end=END
        )
        result = seed(engine, config, progress=args.progress)
        with engine.connect() as connection:
            events = connection.execute(select(func.count()).select_from(Event)).scalar_one()
        observe_times, detect_times = [], []
        for _ in range(args.repeats):
            with session_scope(engine) as session:
                began = time.perf_counter()
                snapshot = observe(session, result.as_of)
                observed = time.perf_counter()
                detect(session, snapshot)
                observe_times.append(observed - began)
                detect_times.append(time.perf_counter() - observed)
        return Row(
            backend,
            users,
            int(events),
            result.seconds,
            statistics.median(observe_times),
            statistics.median(detect_times),
        )
    finally:
        engine.dispose()
        if schema is not None and not args.keep:
            with make_engine(args.postgres_url).begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def report(rows: Sequence[Row]) -> str:
    lines = [
        "| backend | users | events | seed (s) | observe (s) | detect (s) | observe + detect (s) "
        "| x smallest | x per event |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        base = next(r for r in rows if r.backend == row.backend)
        cost = row.total_s / base.total_s
        per_event = cost / (row.events / base.events)
        lines.append(
            f"| {row.backend} | {row.users:,} | {row.events:,} | {row.seed_s:.1f} | "
            f"{row.observe_s:.2f} | {row.detect_s:.2f} | {row.total_s:.2f} | {cost:.1f} | "
            f"{per_event:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"]
    )
    parser.add_argument("--postgres-url", help="server for the postgresql backend")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scenario", default="steady")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="where SQLite files go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schemas")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.repeats < 1 or any(size < 100 for size in args.sizes):
        parser.error("--repeats must be >= 1 and every size >= 100")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        for backend in args.backends:
            for users in sorted(args.sizes):
                rows.append(measure(backend, users, args, workdir))
                print(report(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
