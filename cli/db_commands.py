"""`autopilot` subcommands of the database group.

- ``autopilot db upgrade [--db URL]``: create or upgrade the schema (Alembic migrations).
- ``autopilot seed-db --users N --days D --scenario NAME --seed S [--db URL]``: materialize a
  simulated business into the database.
- ``autopilot observe [--db URL] [--as-of TIME] [--json]``: the KPI snapshot and the issues.

``--db`` overrides the settings' ``db_url`` (``AUTOPILOT_DB_URL``, else
``sqlite:///autopilot.db``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.db import DatabaseError, connect, engine_url, make_engine, upgrade
from agent.detect import detect, format_issues
from agent.observe import observe
from agent.seed import SeedConfig, seed
from cli.common import DB_HELP, database_session, fail, settings_for, timestamp
from environment.kpis import KPI_SPECS
from environment.scenarios import SCENARIO_NAMES


def db_upgrade(args: argparse.Namespace) -> int:
    """Create or upgrade the schema of ``--db`` to the head migration."""
    engine = make_engine(settings_for(args).db_url)
    try:
        revision = upgrade(engine)
    except DatabaseError as error:
        return fail("db upgrade", error)
    finally:
        engine.dispose()
    print(f"database {engine_url(engine)} at migration {revision}")
    return 0


def seed_db(args: argparse.Namespace) -> int:
    """Materialize a simulated business (see :mod:`agent.seed`)."""
    config = SeedConfig(
        users=args.users,
        days=args.days,
        scenario=args.scenario,
        seed=args.seed,
        end=args.end,
        defects=not args.no_defects,
    )
    try:
        engine = connect(settings_for(args).db_url)
        result = seed(
            engine,
            config,
            progress=not args.quiet,
            replace=args.replace,
            archive_history=args.archive_history,
        )
    except DatabaseError as error:
        return fail("seed-db", error)
    rows = ", ".join(f"{table} {n:,}" for table, n in result.rows.items() if n)
    print(
        f"seeded {config.days} days of scenario {config.scenario!r} (seed {config.seed}) ending "
        f"{result.as_of:%Y-%m-%d %H:%M} UTC in {result.seconds:.1f} s: {rows}"
    )
    print(
        f"(--users {config.users:,} is the living accounts at the start; the users table also "
        f"holds the {config.days} days' signups and the accounts that churned)"
    )
    return 0


ISSUE_COLUMNS = (
    "count: the records affected (for kpi_below_target, the accounts short of the target);\n"
    "action: what remediates it; sample: a few of the affected rows as table:ids"
)
"""The legend printed under the issues table."""


def _snapshot_lines(kpis: dict[str, float]) -> list[str]:
    lines = []
    for spec in KPI_SPECS:
        value = kpis[spec.name]
        target = ""
        if spec.target is not None:
            sign = ">=" if spec.direction.value == "at_least" else "<="
            target = f"  (target {sign} {spec.target:g})"
        lines.append(f"  {spec.name:24} {value:14,.4f} {spec.unit}{target}")
    return lines


def observe_command(args: argparse.Namespace) -> int:
    """Print the KPI snapshot and the detected issues."""
    try:
        with database_session(args) as session:
            snapshot = observe(session, args.as_of)
            issues = detect(session, snapshot, sample_size=args.samples)
    except DatabaseError as error:
        return fail("observe", error)
    if args.json:
        payload: dict[str, Any] = {
            "as_of": snapshot.as_of.isoformat(),
            "kpis": snapshot.kpis,
            "observation": snapshot.encode().tolist(),
            "counts": snapshot.counts,
            "defects": snapshot.defects,
            "warnings": list(snapshot.warnings),
            "issues": [issue.to_dict() for issue in issues],
        }
        print(json.dumps(payload, indent=2))
        return 0
    print(f"KPIs as of {snapshot.as_of:%Y-%m-%d %H:%M} UTC")
    print("\n".join(_snapshot_lines(snapshot.kpis)))
    for warning in snapshot.warnings:
        print(f"  warning: {warning}")
    print("\nIssues")
    print(format_issues(issues))
    if issues:
        print(ISSUE_COLUMNS)
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands."""
    db = subparsers.add_parser("db", help="database schema commands")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    up = db_sub.add_parser("upgrade", help="create or upgrade the schema to the latest migration")
    up.add_argument("--db", help=DB_HELP)
    up.set_defaults(handler=db_upgrade)

    sd = subparsers.add_parser("seed-db", help="materialize a simulated business into the database")
    sd.add_argument("--users", type=int, required=True, help="living accounts at the start")
    sd.add_argument("--days", type=int, required=True, help="simulated days of history")
    sd.add_argument(
        "--scenario", default="steady", choices=SCENARIO_NAMES, help="simulator scenario"
    )
    sd.add_argument("--seed", type=int, default=0, help="random seed (same seed, same rows)")
    sd.add_argument("--end", type=timestamp, help="when the history ends (default: this hour, UTC)")
    sd.add_argument("--replace", action="store_true", help="empty every table first")
    sd.add_argument(
        "--archive-history",
        type=Path,
        metavar="PATH",
        help="with --replace: save the agent's history and audit trail to this new JSONL file "
        "first (required when the database has any)",
    )
    sd.add_argument("--no-defects", action="store_true", help="write no defects or orphans")
    sd.add_argument("--quiet", action="store_true", help="no progress bars")
    sd.add_argument("--db", help=DB_HELP)
    sd.set_defaults(handler=seed_db)

    ob = subparsers.add_parser("observe", help="print the KPI snapshot and the detected issues")
    ob.add_argument("--as-of", type=timestamp, help="observation time (default: now, UTC)")
    ob.add_argument("--samples", type=int, default=5, help="affected ids sampled per issue")
    ob.add_argument("--json", action="store_true", help="machine-readable output")
    ob.add_argument("--db", help=DB_HELP)
    ob.set_defaults(handler=observe_command)
