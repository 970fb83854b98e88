"""Fixtures of the scheduling tests: real databases, a real Redis, real processes.

- ``sqlite_url``: a SQLite file at the head migration under ``tmp_path``;
- ``pg_url``: a URL of a fresh PostgreSQL schema at the head migration (the server named by
  ``AUTOPILOT_TEST_POSTGRES_URL``), dropped afterwards, so parallel runs never collide; the
  schema is in the URL, so child processes (schedulers, workers) use it too;
- ``redis_url``: the Redis named by ``AUTOPILOT_TEST_REDIS_URL`` and a key prefix of this
  test's own, whose keys are deleted afterwards;
- ``spawn``: start ``autopilot`` (or ``celery``) processes with an environment, and stop
  whatever is left of them at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.db import make_engine, upgrade
from tests.postgres import postgres_schema

REDIS_ENV = "AUTOPILOT_TEST_REDIS_URL"
ROOT = Path(__file__).resolve().parents[2]
Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema("autopilot_sched") as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[tuple[str, str]]:
    """(URL, key prefix)."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set; Redis tests need a server URL")
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.skip(f"Redis at {REDIS_ENV} is unreachable: {error}")
    prefix = f"autopilot-test-{uuid.uuid4().hex[:10]}:"
    try:
        yield url, prefix
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


def child_env(**settings: str) -> dict[str, str]:
    """This process's environment with the tree on the path and ``AUTOPILOT_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOPILOT_")}
    env["PYTHONPATH"] = str(ROOT)
    env["AUTOPILOT_POLICY_URI"] = "rules"  # no MLflow in the scheduling tests
    env.update({f"AUTOPILOT_{name.upper()}": value for name, value in settings.items()})
    return env


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start a process (``args`` after the interpreter) logging to a file under
    ``tmp_path``; every one still running at the end is killed by its PID."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str], log_name: str) -> subprocess.Popen[str]:
        log = (tmp_path / f"{log_name}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, *args],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
