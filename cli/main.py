"""The ``autopilot`` command line. Each command group lives in its own module and registers
its subcommands; every command is a thin shell over a function the tests call directly."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli import (
    agent_commands,
    api_commands,
    db_commands,
    experiment_commands,
    schedule_commands,
    sim_commands,
)

GROUPS = (
    sim_commands,
    db_commands,
    agent_commands,
    schedule_commands,
    experiment_commands,
    api_commands,
)
"""Modules with a ``register(subparsers)`` function, in help order."""


class UsageError(Exception):
    """Bad command-line input; printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every group's subcommands."""
    parser = argparse.ArgumentParser(
        prog="autopilot",
        description="Autonomous operations for a SaaS product: simulate, train, decide, act.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script. Returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (UsageError, ValueError, LookupError, FileNotFoundError) as error:
        print(f"autopilot {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
