"""The dashboard's first load and partial refreshes, in Chromium, against ``/healthz``.

For each business size: a seeded SQLite file (the browser tests' harness: ``autopilot db
upgrade``, ``seed-db``, a few cycles), the real app (``api.main:create_app`` under uvicorn) on
loopback, one signed-in Chromium. Measured with the browser's navigation timing (``startTime``
to ``loadEventEnd``: document, scripts, styles and the charts drawn) for ``/`` and for
``/healthz`` on the same server in the same run, and with ``performance.now()`` around each
section's partial refresh (``GET /dashboard/sections/NAME``, as the page's script does).
Medians over ``--repeats`` loads; the ratio to ``/healthz`` is the figure that travels between
machines. Target (issue 11): first load under 1 s at 100k users.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/dashboard_load.py --users 10000 100000
    PYTHONPATH=$PWD .venv/bin/python benchmarks/dashboard_load.py --users 100000 --reuse /tmp/d100k
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.dashboard_views import SECTIONS  # noqa: E402
from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    seed_database,
    service_env,
)
from tests.serving import start_server  # noqa: E402

NAVIGATION_MS = """() => { const n = performance.getEntriesByType('navigation')[0];
  return n.loadEventEnd - n.startTime; }"""
REFRESH_MS = """async (name) => { const t0 = performance.now();
  const r = await fetch('/dashboard/sections/' + name, {credentials: 'same-origin'});
  await r.text(); return performance.now() - t0; }"""


def _load_ms(page: Any, url: str) -> float:
    page.goto(url, wait_until="load")
    return float(page.evaluate(NAVIGATION_MS))


def _operator_key(db_url: str) -> str:
    """A fresh operator key (a unique name, so a reused database takes another)."""
    from sqlalchemy.orm import Session

    from agent.api_keys import create_key
    from agent.db import make_engine

    engine = make_engine(db_url)
    with Session(engine) as session:
        _, secret = create_key(
            session, name=f"bench-{uuid.uuid4().hex[:8]}", role="operator", by="benchmark"
        )
        session.commit()
    engine.dispose()
    return secret


def measure(users: int, days: int, repeats: int, reuse: Path | None = None) -> dict[str, Any]:
    """Seed a database (into ``reuse`` when given, where it stays; an ``autopilot.db``
    already there is used as is), serve it, and time the page in Chromium."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as folder:
        workdir = reuse or Path(folder)
        began = time.perf_counter()
        if reuse is not None and (reuse / "autopilot.db").exists():
            db_url = f"sqlite:///{reuse / 'autopilot.db'}"
            env = service_env(reuse, db_url)
        else:
            db_url, env = seed_database(workdir, users=users, days=days, timeout_s=3600)
        seeded_s = time.perf_counter() - began
        keys = {"operator": _operator_key(db_url)}
        server = start_server(env, workdir / "server.log", ready_path="/healthz")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(server.url + "/")
                page.fill("#api-key", keys["operator"])
                page.click("button[type=submit]")
                page.wait_for_selector("body[data-ready=true]", state="attached")
                for _ in range(2):  # warm both paths
                    _load_ms(page, server.url + "/")
                    _load_ms(page, server.url + "/healthz")
                page_ms, health_ms = [], []
                for _ in range(repeats):  # interleaved, so drift hits both alike
                    page_ms.append(_load_ms(page, server.url + "/"))
                    health_ms.append(_load_ms(page, server.url + "/healthz"))
                _load_ms(page, server.url + "/")
                refresh = {
                    name: statistics.median(
                        float(page.evaluate(REFRESH_MS, name)) for _ in range(repeats)
                    )
                    for name in SECTIONS
                }
                browser.close()
        finally:
            server.stop()
    first = statistics.median(page_ms)
    health = statistics.median(health_ms)
    return {
        "users": users,
        "seeded_s": seeded_s,
        "first_load_ms": first,
        "healthz_ms": health,
        "ratio": first / health if health else float("nan"),
        "refresh_ms": refresh,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="a folder to seed once and reuse: its autopilot.db is seeded when missing "
        "(100k users take many minutes), kept afterwards, and used as is when present "
        "(one --users value only)",
    )
    args = parser.parse_args(argv)
    if args.reuse is not None and len(args.users) != 1:
        parser.error(f"--reuse takes one --users value, got {args.users}")
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh", file=sys.stderr)
        return 2
    for users in args.users:
        r = measure(users, args.days, args.repeats, args.reuse)
        worst = max(r["refresh_ms"], key=r["refresh_ms"].get)
        print(
            f"users {r['users']:>7,} (seeded in {r['seeded_s']:.0f} s): first load median "
            f"{r['first_load_ms']:.0f} ms, /healthz {r['healthz_ms']:.0f} ms "
            f"(ratio {r['ratio']:.1f}); partial refresh medians: "
            + ", ".join(f"{n} {ms:.0f} ms" for n, ms in r["refresh_ms"].items())
            + f" (slowest: {worst})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
