"""Alembic environment of the autopilot schema.

Run through :func:`agent.db.upgrade` (``autopilot db upgrade``), which builds the Alembic
``Config`` in code and hands over either a live connection (``config.attributes["connection"]``)
or a URL (``sqlalchemy.url``); no ``alembic.ini`` is needed, so it works from an installed
package.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from agent.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
