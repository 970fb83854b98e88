"""`autopilot` subcommands of the service group: the HTTP API, its keys, the decision log.

- ``autopilot serve [--host 127.0.0.1] [--port 8000] [--workers N] [--db URL]``: uvicorn on
  the app factory ``api.main:create_app``. With several workers, prometheus-client's
  multiprocess mode is switched on (``PROMETHEUS_MULTIPROC_DIR``, a fresh temporary folder
  unless already set), so ``/metrics`` of any worker counts every worker's requests.
- ``autopilot api-key create --role ROLE --name NAME [--db URL]``: prints the key once (only
  its hash is stored); ``api-key list``; ``api-key revoke NAME``.
- ``autopilot decisions export --out FILE.jsonl [--since TIME] [--until TIME] [--db URL]``:
  the decision log in the shared JSONL contract (:mod:`policies.logged`).

Exit status: 0 success, 1 an operational failure (unreachable database, unknown key), 2 bad
input.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

from cli.common import timestamp

_DB_HELP = "database URL (default: $AUTOPILOT_DB_URL or sqlite:///autopilot.db)"
MAX_WORKERS = 64


def _port(value: str) -> int:
    port = int(value) if value.isdigit() else -1
    if not 1 <= port <= 65_535:
        raise argparse.ArgumentTypeError(f"port must be an integer in [1, 65535], got {value!r}")
    return port


def _workers(value: str) -> int:
    count = int(value) if value.isdigit() else -1
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"workers must be an integer in [1, {MAX_WORKERS}], got {value!r}"
        )
    return count


def _fail(command: str, error: Exception) -> int:
    print(f"autopilot {command}: error: {error}", file=sys.stderr)
    return 1


def serve(args: argparse.Namespace) -> int:
    """Run the API under uvicorn until interrupted."""
    import uvicorn

    from agent.db import DatabaseError, connect

    if args.db:
        os.environ["AUTOPILOT_DB_URL"] = args.db  # the factory reads the settings in each worker
    try:
        connect(args.db).dispose()
    except DatabaseError as error:
        return _fail("serve", error)
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="autopilot-metrics-")
    print(
        f"autopilot serve: http://{args.host}:{args.port} ({args.workers} worker"
        f"{'s' if args.workers > 1 else ''})",
        flush=True,
    )
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    return 0


def _session(db: str | None) -> Any:
    from agent.db import connect, session_factory

    return session_factory(connect(db))()


def api_key(args: argparse.Namespace) -> int:
    """Create, list or revoke API keys."""
    from agent.api_keys import ApiKeyError, create_key, list_keys, revoke_key
    from agent.db import DatabaseError

    try:
        with _session(args.db) as session:
            if args.key_command == "create":
                view, secret = create_key(session, name=args.name, role=args.role, by=args.by)
                session.commit()
                print(f"created key {view.name!r} (role {view.role}); it is shown only once:")
                print(secret)
            elif args.key_command == "list":
                keys = list_keys(session)
                if not keys:
                    print("no API keys")
                for k in keys:
                    state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
                    used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
                    print(
                        f"{k.name:24} {k.role:9} {k.prefix}... created "
                        f"{k.created_at:%Y-%m-%d %H:%M} by {k.created_by}; {state}; "
                        f"last used {used}"
                    )
            else:
                view = revoke_key(session, args.name, by=args.by)
                session.commit()
                print(f"revoked key {view.name!r}")
    except ApiKeyError as error:
        print(f"autopilot api-key: error: {error}", file=sys.stderr)
        return 2
    except (DatabaseError, LookupError) as error:
        return _fail("api-key", error)
    return 0


def decisions(args: argparse.Namespace) -> int:
    """Export the decision log as JSONL."""
    from agent.db import DatabaseError
    from agent.decision_log import export_jsonl

    try:
        with _session(args.db) as session:
            count = export_jsonl(session, args.out, since=args.since, until=args.until)
    except DatabaseError as error:
        return _fail("decisions", error)
    print(f"wrote {count} decisions to {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands."""
    sv = subparsers.add_parser("serve", help="serve the HTTP API (uvicorn)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sv.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    sv.add_argument("--workers", type=_workers, default=1, help="worker processes (default 1)")
    sv.add_argument("--db", help=_DB_HELP)
    sv.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level (default info)",
    )
    sv.add_argument(
        "--no-access-log", dest="access_log", action="store_false", help="no per-request log"
    )
    sv.set_defaults(handler=serve)

    key = subparsers.add_parser("api-key", help="create, list or revoke API keys")
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    create = key_sub.add_parser("create", help="create a key and print it once")
    create.add_argument(
        "--role", required=True, help="admin, operator, client or viewer (what the key may do)"
    )
    create.add_argument("--name", required=True, help="unique name (the audit trail's actor)")
    create.add_argument("--by", default="cli", help="who creates it (recorded)")
    create.add_argument("--db", help=_DB_HELP)
    create.set_defaults(handler=api_key)
    listing = key_sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--db", help=_DB_HELP)
    listing.set_defaults(handler=api_key)
    revoke = key_sub.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    revoke.add_argument("--by", default="cli", help="who revokes it (recorded)")
    revoke.add_argument("--db", help=_DB_HELP)
    revoke.set_defaults(handler=api_key)

    de = subparsers.add_parser("decisions", help="the decision log")
    de_sub = de.add_subparsers(dest="decisions_command", required=True, metavar="ACTION")
    export = de_sub.add_parser("export", help="write the decision log as JSONL")
    export.add_argument("--out", required=True, help="the .jsonl file to write")
    export.add_argument("--since", type=timestamp, help="decided at or after (UTC)")
    export.add_argument("--until", type=timestamp, help="decided before (UTC)")
    export.add_argument("--db", help=_DB_HELP)
    export.set_defaults(handler=decisions)
