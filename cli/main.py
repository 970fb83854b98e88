"""The ``autopilot`` command line. Each command group lives in its own module and registers
its subcommands; every command is a thin shell over a function the tests call directly."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from cli import (
    agent_commands,
    api_commands,
    db_commands,
    experiment_commands,
    learning_commands,
    schedule_commands,
    sim_commands,
)
from cli.common import UsageError, describe_settings_error, load_policy_uri

GROUPS = (
    sim_commands,
    db_commands,
    agent_commands,
    schedule_commands,
    experiment_commands,
    learning_commands,
    api_commands,
)
"""Modules with a ``register(subparsers)`` function, in help order."""


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
    from agent.cycle_config import use_policy_loader

    parser = build_parser()
    args = parser.parse_args(argv)
    use_policy_loader(load_policy_uri)  # every cycle a command starts loads models alike
    try:
        return int(args.handler(args) or 0)
    except ValidationError as error:  # before ValueError: it is one
        print(f"autopilot {args.command}: error: {describe_settings_error(error)}", file=sys.stderr)
        return 2
    except (UsageError, ValueError, LookupError, FileNotFoundError) as error:
        print(f"autopilot {args.command}: error: {error}", file=sys.stderr)
        return 2


__all__ = ["UsageError", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
