"""A throwaway PostgreSQL schema per test, on the server named by
``AUTOPILOT_TEST_POSTGRES_URL``: the one helper behind every ``postgres`` fixture."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from agent.db import DatabaseUnreachable, make_engine, ping, upgrade

POSTGRES_ENV = "AUTOPILOT_TEST_POSTGRES_URL"


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """The URL of a new schema (``prefix`` + a random suffix) at the head migration, its
    ``search_path`` in the URL so subprocesses see it too; dropped on exit. Skips the test
    with the reason when the server is not configured or unreachable."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests need a server URL")
    admin = make_engine(url)
    try:
        ping(admin)
    except DatabaseUnreachable as error:
        pytest.skip(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {error}")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    try:
        engine = make_engine(scoped)
        upgrade(engine)
        engine.dispose()
        yield scoped
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
