"""Load on `autopilot serve` over loopback: decide against a trivial endpoint, and batches.

For each worker count (default 1 and 2) the script starts ``autopilot serve`` on a fresh
SQLite database with one client key, then drives, one after the other and each for
``--duration`` seconds with ``--connections`` concurrent connections (an asyncio httpx client;
``wrk`` is not installed here):

1. ``GET /healthz`` (the trivial endpoint: the reference of the same run);
2. ``POST /api/v1/decide`` (one context, a fresh event id each, written to the decision log);
3. ``POST /api/v1/decide/batch`` with ``--batch`` contexts.

It prints requests/s answered 200, their median and p99 latency, the other answers by status
(``timeout`` when none came in 30 s, a transport error by name; the server log's tail
is printed when there were any), the ratio decide / trivial, and decisions/s of the
batches, then checks the audit trail (the chain verifies, and its decision entries list
exactly the decisions logged). Targets (issue 10): decide >= 0.8x the trivial endpoint's
requests/s, p99 <= 30 ms at 32 connections; batch of 100 >= 20,000 decisions/s.

The load generator runs on the same machine as the server, so both share the CPU; the
ratio against the trivial endpoint of the same run is the figure to compare, not the
absolute rates.

    PYTHONPATH=. python benchmarks/api_load.py --duration 20 --connections 32 --workers 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api.conftest import KPIS  # noqa: E402  (the tests' plausible context)
from tests.serving import start_server  # noqa: E402


@dataclass(frozen=True)
class Load:
    """What one endpoint sustained: ``requests`` answered 200 (the rates count only these),
    ``errors`` the other answers by status (``timeout`` when none came within 30 s)."""

    name: str
    requests: int
    errors: dict[str, int]
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def error_text(self) -> str:
        return ",".join(f"{k}:{v}" for k, v in sorted(self.errors.items())) or "0"


async def _drive(
    url: str, method: str, body: Any, headers: dict[str, str], seconds: float, connections: int
) -> Load:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30.0, headers=headers) as client:
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < stop:
                began = time.perf_counter()
                try:
                    response = await client.request(method, url, json=body)
                except httpx.TimeoutException:
                    errors["timeout"] += 1
                    continue
                except httpx.TransportError as error:  # the server closed the connection
                    errors[type(error).__name__] += 1
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - began)
                else:
                    errors[str(response.status_code)] += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    ms = np.asarray(latencies or [float("nan")]) * 1000.0
    return Load(
        name=url.rsplit("/", 2)[-1] if "batch" not in url else "batch",
        requests=len(latencies),
        errors=dict(errors),
        seconds=elapsed,
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
    )


def _autopilot(*args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def run(workers: int, args: argparse.Namespace, folder: Path) -> list[Load]:
    """Serve with ``workers`` workers and drive the three endpoints."""
    db = folder / f"bench-{workers}.db"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AUTOPILOT_DB_URL": f"sqlite:///{db}",
        "AUTOPILOT_POLICY_URI": args.policy,
        "AUTOPILOT_MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    _autopilot("db", "upgrade", "--db", f"sqlite:///{db}", env=env, cwd=folder)
    out = _autopilot(
        "api-key", "create", "--role", "client", "--name", "bench", env=env, cwd=folder
    )
    headers = {"X-API-Key": out.strip().splitlines()[-1]}
    server = start_server(env, folder / f"server-{workers}.log", workers=workers)
    batch = {"items": [{"kpis": KPIS}] * args.batch}
    try:
        runs = [
            ("GET", f"{server.url}/healthz", None),
            ("POST", f"{server.url}/api/v1/decide", {"kpis": KPIS}),
            ("POST", f"{server.url}/api/v1/decide/batch", batch),
        ]
        loads = [
            asyncio.run(_drive(url, method, body, headers, args.duration, args.connections))
            for method, url, body in runs
        ]
    finally:
        server.stop()
    if any(load.errors for load in loads):
        print(f"server log (tail):\n{server.log.read_text(errors='replace')[-3000:]}")
    print(f"{workers:>7} {audit_check(f'sqlite:///{db}')}")
    return loads


def audit_check(db_url: str) -> str:
    """Whether the hash chain survived the load and lists every decision the API logged."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from agent.audit import verify_chain
    from agent.db import make_engine
    from agent.models import AuditLog, DecisionRecord
    from api.decisions import DECISIONS_AUDIT

    engine = make_engine(db_url)
    with Session(engine) as session:
        report = verify_chain(session)
        logged = session.scalar(
            select(func.count()).select_from(DecisionRecord).where(DecisionRecord.source == "api")
        )
        entries = session.scalars(
            select(AuditLog.details).where(AuditLog.action == DECISIONS_AUDIT)
        ).all()
    engine.dispose()
    audited = sum(len(details["decisions"]) for details in entries)
    chain = "intact" if report.ok else f"BROKEN at {report.first_bad_id}: {report.reason}"
    return (
        f"audit chain {chain} ({report.entries} entries); {len(entries)} decision entries "
        f"list {audited} of the {logged} decisions logged"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=100, help="contexts per batch request")
    parser.add_argument("--policy", default="rules", help="AUTOPILOT_POLICY_URI of the server")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="autopilot-api-load-"))
    try:
        print(
            f"{args.connections} connections, {args.duration:.0f} s per endpoint, "
            f"policy {args.policy}, batch {args.batch}, {os.cpu_count()} CPUs, load average "
            + " ".join(f"{x:.2f}" for x in os.getloadavg())
        )
        print(f"{'workers':>7} {'endpoint':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'errors':>7}")  # fmt: skip
        for workers in args.workers:
            trivial, decide, batch = run(workers, args, folder)
            for load in (trivial, decide, batch):
                print(
                    f"{workers:>7} {load.name:>8} {load.rate:>9.1f} {load.p50_ms:>8.1f} "
                    f"{load.p99_ms:>8.1f} {load.error_text:>7}"
                )
            print(
                f"{workers:>7} decide/trivial = {decide.rate / trivial.rate:.2f}x "
                f"(target >= 0.8x); decide p99 {decide.p99_ms:.1f} ms (target <= 30 ms); "
                f"batch {batch.rate * args.batch:,.0f} decisions/s (target >= 20,000)"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
