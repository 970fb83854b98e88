"""What every command group shares: the usage error, argument types, the one-line failure,
the settings a command runs with, and its database session.

Kept free of heavy imports (no SQLAlchemy engine, MLflow or torch at import time), so that
``autopilot --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from agent.settings import Settings

DB_HELP = "database URL (default: $AUTOPILOT_DB_URL, else sqlite:///autopilot.db)"


class UsageError(Exception):
    """Bad command-line input; printed without a traceback, exit status 2."""


def timestamp(value: str) -> datetime:
    """An ISO-8601 date or date-time (naive is UTC), as an argparse type."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 date or time such as 2025-06-01T12:00, got {value!r}"
        ) from None


def fail(command: str, error: Exception) -> int:
    """Print an operational failure as one line; exit status 1."""
    print(f"autopilot {command}: error: {error}", file=sys.stderr)
    return 1


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings, with the flags this command was given on top (``--db``)."""
    from agent.settings import get_settings

    settings = get_settings()
    overrides = {"db_url": getattr(args, "db", None)}
    changes = {key: value for key, value in overrides.items() if value is not None}
    return settings.model_copy(update=changes) if changes else settings


@contextmanager
def database_session(args: argparse.Namespace, *, check: bool = True) -> Iterator[Session]:
    """A session on the command's database in one transaction (committed when the command
    succeeds, rolled back when it fails): the command owns the transaction."""
    from agent.db import connect, session_scope

    engine = connect(settings_for(args).db_url, check=check)
    try:
        with session_scope(engine) as session:
            yield session
    finally:
        engine.dispose()


def describe_settings_error(error: Any) -> str:
    """A pydantic ``ValidationError`` of the settings as one line per bad variable."""
    return "; ".join(
        str(item.get("msg", item)).removeprefix("Value error, ") for item in error.errors()
    )


def missing_tracking_store(uri: str) -> str:
    """Why the model URI ``uri`` cannot exist without even opening MLflow (its store is a
    SQLite file that does not exist), or ``""``. Opening it would create an empty
    ``mlflow.db`` in the working folder and print MLflow's table-creation log lines."""
    from agent.settings import get_settings

    if not uri.strip().startswith(("models:/", "runs:/")):
        return ""
    store = get_settings().mlflow_tracking_uri
    if not store.startswith("sqlite:///"):
        return ""
    path = Path(store.removeprefix("sqlite:///"))
    if path.exists():
        return ""
    return (
        f"no MLflow store at {store} (file {path} does not exist), so no model {uri.strip()}; "
        "train one with `autopilot train`, or set AUTOPILOT_MLFLOW_TRACKING_URI"
    )


def load_policy_uri(uri: str) -> Any:
    """:func:`experiments.models.load_policy_uri`, imported (with MLflow) on first use; a model
    URI whose SQLite store does not exist is a ``LookupError`` without touching MLflow."""
    missing = missing_tracking_store(uri)
    if missing:
        raise LookupError(missing)
    from experiments.models import load_policy_uri as load

    return load(uri)
