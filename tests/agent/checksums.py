"""Table checksums for the agent tests: a digest of every row, in primary-key order."""

from __future__ import annotations

import hashlib

from sqlalchemy import Engine, select

from agent.models import PRODUCT_TABLES, Base

EFFECT_TABLES = ("outbox", "archive", "settings")
"""Agent tables that carry effects on the product (a dry run must not touch them either)."""
WATCHED_TABLES = (*PRODUCT_TABLES, *EFFECT_TABLES)


def table_checksums(engine: Engine, tables: tuple[str, ...] = WATCHED_TABLES) -> dict[str, str]:
    """table -> SHA-256 over its rows (every column, ordered by primary key)."""
    out: dict[str, str] = {}
    with engine.connect() as connection:
        for name in tables:
            table = Base.metadata.tables[name]
            digest = hashlib.sha256()
            rows = connection.execute(select(table).order_by(*table.primary_key.columns))
            for row in rows:
                digest.update(repr(tuple(row)).encode())
            out[name] = digest.hexdigest()
    return out
