"""A real server on a seeded SQLite file and a real Chromium, shared by the browser tests.

The database: ``autopilot db upgrade``, ``autopilot seed-db --users 2000 --days 30``, then
:data:`TREND_CYCLES` cycles (dry runs on past clocks, 4 hours apart, then a live one now, so the
trend has points and the approvals queue is filled), all through the command line. The
server: ``autopilot serve`` on a free loopback port (:func:`tests.serving.start_server`).
The browser: Debian's ``/usr/bin/chromium`` driven by Playwright; the tests skip with the
reason when it or Playwright is missing (``scripts/ensure-chromium.sh`` installs it).
Screenshots go under pytest's tmp path (``artifacts``), kept for inspection.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.serving import ROOT, Server, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TREND_CYCLES = 6
KEY_NAMES = {"operator": "olga", "admin": "ada", "viewer": "vic", "client": "svc"}
"""role: the name of the key the fixture creates for it (the audit trail's actor)."""


def autopilot(*args: str, env: dict[str, str], timeout_s: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, f"autopilot {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout


def service_env(workdir: Path, db_url: str) -> dict[str, str]:
    """The environment of the commands and the server: our database, a throwaway MLflow store,
    the rules policy (no registry lookup), and the test keys."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),
        AUTOPILOT_DB_URL=db_url,
        AUTOPILOT_POLICY_URI="rules",
        AUTOPILOT_MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}",
        MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}",
    )
    env.pop("AUTOPILOT_KILL_SWITCH", None)
    return env


def seed_database(
    workdir: Path, users: int, days: int, timeout_s: float = 300
) -> tuple[str, dict[str, str]]:
    """A seeded SQLite file in ``workdir`` and the environment that points at it; each command
    may take ``timeout_s`` (100k users take minutes on a busy machine)."""
    db_url = f"sqlite:///{workdir / 'autopilot.db'}"
    env = service_env(workdir, db_url)
    autopilot("db", "upgrade", env=env)
    seed = ("--users", str(users), "--days", str(days), "--seed", "7", "--quiet")
    autopilot("seed-db", *seed, env=env, timeout_s=timeout_s)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    for hours_ago in range(4 * (TREND_CYCLES - 1), 0, -4):  # a trend: dry runs on past clocks
        at = (now - timedelta(hours=hours_ago)).isoformat()
        autopilot("cycle", "--as-of", at, env=env, timeout_s=timeout_s)
    autopilot("cycle", "--live", env=env, timeout_s=timeout_s)
    return db_url, env


def create_keys(db_url: str) -> dict[str, str]:
    """One API key per role in the API's own key store: role -> secret."""
    from sqlalchemy.orm import Session

    from agent.api_keys import create_key
    from agent.db import make_engine

    engine = make_engine(db_url)
    with Session(engine) as session:
        keys = {
            role: create_key(session, name=name, role=role, by="browser-tests")[1]
            for role, name in KEY_NAMES.items()
        }
        session.commit()
    engine.dispose()
    return keys


def chromium_or_skip() -> Any:
    """Playwright's sync API, or skip with the reason."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh (apt-get install chromium)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install 'playwright==1.64.*')")
    return sync_playwright


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_playwright = chromium_or_skip()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    chromium_or_skip()
    workdir = tmp_path_factory.mktemp("dashboard")
    db_url, env = seed_database(workdir, users=2000, days=30)
    keys = create_keys(db_url)
    running = start_server(env, workdir / "server.log", ready_path="/healthz")
    running.keys = keys
    yield running
    running.stop()


@dataclass
class Console:
    """What the page logged: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)


@pytest.fixture
def console() -> Console:
    return Console()


def open_page(browser: Any, server: Server, console: Console, width: int = 1280) -> Any:
    """A fresh browser context (no cookies) at ``width`` px, its errors collected, dialogs
    (the confirmations) accepted."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    page.goto(server.url + "/")
    return page


def sign_in(page: Any, server: Server, role: str) -> None:
    """Sign in with ``role``'s key and wait until the page's script is ready (its click
    handlers bound, the deferred sections loaded: ``body[data-ready]``), so a click that
    follows is never lost to a script still loading."""
    page.fill("#api-key", server.keys[role])
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", state="attached")
