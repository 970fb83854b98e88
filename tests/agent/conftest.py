"""Fixtures of the agent tests: real databases only.

- SQLite files under ``tmp_path``; the seeded business is built once per session and copied
  per test, so tests can write to it.
- PostgreSQL (marker ``postgres``): the server named by ``AUTOPILOT_TEST_POSTGRES_URL``, each test
  in a fresh schema dropped afterwards; skipped with the reason when unset or unreachable.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from agent.db import DatabaseUnreachable, make_engine, ping, upgrade
from agent.seed import SeedConfig, SeedResult, seed
from agent.settings import get_settings

POSTGRES_ENV = "AUTOPILOT_TEST_POSTGRES_URL"
SEED_END = datetime(2025, 6, 1)
SEED_CONFIG = SeedConfig(users=3000, days=35, scenario="steady", seed=7, end=SEED_END)
"""The business most tests read: about 3k accounts and 100k events, seeded in a few seconds."""


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the settings anew, so ``monkeypatch.setenv`` reaches them."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """An empty SQLite database at the head migration."""
    engine = make_engine(sqlite_url(tmp_path / "empty.db"))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SeedResult]:
    """The seeded business (built once), as a file and the seeding result."""
    path = tmp_path_factory.mktemp("seeded") / "business.db"
    engine = make_engine(sqlite_url(path))
    upgrade(engine)
    result = seed(engine, SEED_CONFIG)
    engine.dispose()
    return path, result


@pytest.fixture
def seeded(
    seeded_file: tuple[Path, SeedResult], tmp_path: Path
) -> Iterator[tuple[Engine, SeedResult]]:
    """A private copy of the seeded business."""
    source, result = seeded_file
    copy = tmp_path / "business.db"
    shutil.copyfile(source, copy)
    engine = make_engine(sqlite_url(copy))
    yield engine, result
    engine.dispose()


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    """An empty PostgreSQL schema at the head migration, dropped after the test."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests need a server URL")
    admin = make_engine(url)
    try:
        ping(admin)
    except DatabaseUnreachable as error:
        pytest.skip(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {error}")
    schema = f"autopilot_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """An empty database at the head migration: SQLite, and PostgreSQL when available."""
    if request.param == "sqlite":
        engine = make_engine(sqlite_url(tmp_path / "any.db"))
        upgrade(engine)
        request.addfinalizer(engine.dispose)
        return engine
    return request.getfixturevalue("postgres_engine")  # type: ignore[no-any-return]
