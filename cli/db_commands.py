"""`autopilot` subcommands of the db group (none yet)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands."""
