"""`autopilot` subcommands of the agent group: the autonomous cycle and the operator's controls.

- ``autopilot cycle [--live] [--db URL] [--as-of TIME] [--policy SPEC]``: one full cycle
  (dry run unless ``--live``).
- ``autopilot monitor [--live] [--db URL] [--as-of TIME]``: the hourly pass, critical issues only.
- ``autopilot approvals list [--status S]``, ``approvals approve ID --by NAME``,
  ``approvals reject ID --by NAME [--note TEXT]``.
- ``autopilot undo EXECUTION_ID [--by NAME]``: reverse an execution exactly.
- ``autopilot audit verify``: check the hash chain, its head record (signed when
  ``AUTOPILOT_AUDIT_KEY`` is set) and completeness; names the first bad entry.
- ``autopilot audit sign --by NAME``: sign an unsigned head once the chain verifies.
- ``autopilot kill-switch on|off [--reason TEXT] [--by NAME]``.
- ``autopilot lock status``: who holds the cycle lock (holder, pid, since, lease end, alive or
  stale); ``autopilot lock release --force --by NAME``: remove it, audited.

Exit status: 0 success, 1 an operational failure (cycle running, bad chain, unknown id),
2 bad input. Heavy modules (the orchestrator pulls in policies, MLflow on demand) are imported
inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.lock import LockHolder

from cli.common import (
    DB_HELP,
    database_session,
    fail,
    load_policy_uri,
    settings_for,
    timestamp,
)


def cycle(args: argparse.Namespace) -> int:
    """Run one full cycle (or the monitor pass), say what it ran with, and what it decided."""
    from agent.db import DatabaseError, connect, engine_url
    from agent.orchestrator import CycleRunning, monitor_and_respond, run_full_cycle

    name = "monitor" if args.monitor else "cycle"
    settings = settings_for(args)
    try:
        engine = connect(settings.db_url)
        print(f"database {engine_url(engine)}")
        if args.monitor:
            result = monitor_and_respond(
                engine, settings=settings, dry_run=not args.live, as_of=args.as_of
            )
        else:
            result = run_full_cycle(
                engine,
                settings=settings,
                dry_run=not args.live,
                policy=args.policy,
                as_of=args.as_of,
                load_policy=load_policy_uri,
            )
    except (CycleRunning, DatabaseError) as error:
        return fail(name, error)
    print(result.summary())
    return 0


def approvals(args: argparse.Namespace) -> int:
    """List, approve or reject held decisions."""
    from agent.approvals import ApprovalError, approve, list_approvals, reject
    from agent.db import DatabaseError

    try:
        with database_session(args) as session:
            if args.approvals_command == "list":
                rows = list_approvals(session, args.status, now=args.now)
                if not rows:
                    print("no approvals")
                for a in rows:
                    by = f" by {a.decided_by}" if a.decided_by else ""
                    shown = (a.plan or {}).get("rows")
                    by += f" rows {shown}" if shown is not None else ""
                    print(
                        f"{a.id:>5} {a.status:9}{by} {a.action:18} conf {a.confidence:.2f} "
                        f"requested {a.requested_at:%Y-%m-%d %H:%M} "
                        f"expires {a.expires_at:%Y-%m-%d %H:%M}"
                        if a.expires_at
                        else f"{a.id:>5} {a.status:9}{by} {a.action:18}"
                    )
                return 0
            answer = approve if args.approvals_command == "approve" else reject
            view = answer(session, args.id, by=args.by, note=args.note, now=args.now)
    except (ApprovalError, DatabaseError) as error:
        return fail(f"approvals {args.approvals_command}", error)
    extra = f", execution {view.execution_id}" if view.execution_id else ""
    print(f"approval {view.id} {view.status} by {view.decided_by}: {view.action}{extra}")
    if view.status == "refused":
        print(f"not executed: {view.note}", file=sys.stderr)
        return 1
    return 0


def undo(args: argparse.Namespace) -> int:
    """Reverse an execution exactly."""
    from agent.actuators import ActuatorError
    from agent.actuators import undo as undo_execution
    from agent.db import DatabaseError

    try:
        with database_session(args) as session:
            report = undo_execution(session, args.execution_id, actor=args.by)
    except (ActuatorError, DatabaseError) as error:
        return fail("undo", error)
    execution = report.execution
    print(f"execution {execution.id} ({execution.action}) undone at {execution.undone_at}")
    print("restored: " + (", ".join(f"{k} {v}" for k, v in report.restored.items()) or "nothing"))
    for conflict in report.conflicts:
        print(f"not restored: {conflict}")
    return 0


def audit_verify(args: argparse.Namespace) -> int:
    """Verify the audit trail's hash chain."""
    from agent.audit import verify_chain
    from agent.db import DatabaseError

    try:
        with database_session(args) as session:
            report = verify_chain(session)
    except DatabaseError as error:
        return fail("audit verify", error)
    if report.ok:
        print(f"audit trail intact: {report.entries} entries, head {report.head_hash[:16]}")
        return 0
    if report.missing:
        print(f"audit trail INCOMPLETE: {report.entries} entries verified, but")
        for line in report.missing:
            print(f"  {line}")
        return 1
    print(
        f"audit trail BROKEN at entry {report.first_bad_id}: {report.reason} "
        f"({report.entries} entries verified before it)"
    )
    return 1


def audit_sign(args: argparse.Namespace) -> int:
    """Sign the audit head with AUTOPILOT_AUDIT_KEY once the chain verifies."""
    from agent.audit import AuditError, sign_head
    from agent.db import DatabaseError

    try:
        with database_session(args) as session:
            report = sign_head(session, by=args.by)
    except (AuditError, DatabaseError) as error:
        return fail("audit sign", error)
    print(f"audit head signed by {args.by}: {report.entries} entries, head {report.head_hash[:16]}")
    return 0


def kill_switch(args: argparse.Namespace) -> int:
    """Turn the kill switch on or off."""
    from agent.db import DatabaseError
    from agent.kill_switch import kill_switch_state, set_kill_switch

    try:
        with database_session(args) as session:
            set_kill_switch(session, args.state == "on", reason=args.reason, by=args.by)
            on, reason = kill_switch_state(session, settings_for(args))
    except DatabaseError as error:
        return fail("kill-switch", error)
    wanted = args.state == "on"
    if on != wanted:  # the stored value is not what we wrote, or the environment forces it
        print(f"kill switch is still {'on' if on else 'off'}: {reason}")
        return 1
    because = f": {args.reason}" if wanted and args.reason else ""
    print(f"kill switch {args.state}, set by {args.by}{because}")
    return 0


def lock_command(args: argparse.Namespace) -> int:
    """Show or force-release the cycle lock (see :mod:`agent.lock`)."""
    from agent.db import DatabaseError, connect
    from agent.lock import NoLockHeld, current_holder, force_release

    try:
        engine = connect(settings_for(args).db_url)
        try:
            if args.lock_command == "status":
                return _print_lock_status(current_holder(engine))
            held, why = force_release(engine, by=args.by)
        finally:
            engine.dispose()
    except (DatabaseError, NoLockHeld) as error:
        return fail(f"lock {args.lock_command}", error)
    print(f"cycle lock released by {args.by}: it was held by {held.describe()}")
    if why:
        print("its cycle is recorded aborted in the audit trail")
    else:
        print(
            f"warning: its holder looked alive: if process {held.pid} on {held.host} is still "
            "running a cycle, that cycle goes on without the lock",
            file=sys.stderr,
        )
    return 0


def _print_lock_status(holder: LockHolder | None) -> int:
    from agent.lock import staleness, utc_now

    now = utc_now()
    if holder is None:
        print("no cycle lock is held: no cycle is running")
        return 0
    print(f"cycle lock held by {holder.describe(now)}")
    if staleness(holder, now):
        print("the next cycle takes it over (and records the dead cycle aborted)")
    else:
        print("to remove it anyway: autopilot lock release --force --by NAME")
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands."""
    for name, monitor, help_text in (
        ("cycle", False, "run one full cycle: observe, detect, decide, guard, act, audit"),
        ("monitor", True, "the hourly pass: act only on critical issues"),
    ):
        p = subparsers.add_parser(name, help=help_text)
        p.add_argument("--live", action="store_true", help="execute (default: dry run)")
        p.add_argument("--db", help=DB_HELP)
        p.add_argument("--as-of", type=timestamp, help="the agent's clock (default: now, UTC)")
        if not monitor:
            p.add_argument(
                "--policy",
                help="policy spec or MLflow URI (default: the registry's champion, else rules)",
            )
        p.set_defaults(handler=cycle, monitor=monitor)

    ap = subparsers.add_parser("approvals", help="list, approve or reject held decisions")
    ap_sub = ap.add_subparsers(dest="approvals_command", required=True, metavar="ACTION")
    listing = ap_sub.add_parser("list", help="list approvals, newest first")
    listing.add_argument("--status", help="pending, approved, rejected or expired")
    listing.add_argument("--db", help=DB_HELP)
    listing.add_argument("--now", type=timestamp, help="the clock for expiry (default: now)")
    listing.set_defaults(handler=approvals)
    for verb in ("approve", "reject"):
        v = ap_sub.add_parser(verb, help=f"{verb} a held decision")
        v.add_argument("id", type=int, help="approval id")
        v.add_argument("--by", required=True, help="who answers (recorded)")
        v.add_argument("--note", help="why")
        v.add_argument("--db", help=DB_HELP)
        v.add_argument("--now", type=timestamp, help="the clock (default: now, UTC)")
        v.set_defaults(handler=approvals)

    un = subparsers.add_parser("undo", help="reverse an execution exactly")
    un.add_argument("execution_id", type=int)
    un.add_argument("--by", default="operator", help="who undoes (recorded)")
    un.add_argument("--db", help=DB_HELP)
    un.set_defaults(handler=undo)

    au = subparsers.add_parser("audit", help="audit trail commands")
    au_sub = au.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = au_sub.add_parser("verify", help="check the hash chain, name the first bad entry")
    verify.add_argument("--db", help=DB_HELP)
    verify.set_defaults(handler=audit_verify)
    sign = au_sub.add_parser(
        "sign", help="sign the head record with AUTOPILOT_AUDIT_KEY (after the chain verifies)"
    )
    sign.add_argument("--by", required=True, help="who signs (recorded)")
    sign.add_argument("--db", help=DB_HELP)
    sign.set_defaults(handler=audit_sign)

    ks = subparsers.add_parser("kill-switch", help="pause or resume every execution")
    ks.add_argument("state", choices=("on", "off"))
    ks.add_argument("--reason", default="", help="why (recorded)")
    ks.add_argument("--by", default="operator", help="who (recorded)")
    ks.add_argument("--db", help=DB_HELP)
    ks.set_defaults(handler=kill_switch)

    lk = subparsers.add_parser("lock", help="show or release the cycle lock")
    lk_sub = lk.add_subparsers(dest="lock_command", required=True, metavar="ACTION")
    status = lk_sub.add_parser("status", help="who holds the cycle lock, and whether alive")
    status.add_argument("--db", help=DB_HELP)
    status.set_defaults(handler=lock_command)
    release = lk_sub.add_parser("release", help="remove the cycle lock (audited)")
    release.add_argument(
        "--force", action="store_true", required=True, help="required: you mean it"
    )
    release.add_argument("--by", required=True, help="who releases it (recorded)")
    release.add_argument("--db", help=DB_HELP)
    release.set_defaults(handler=lock_command)
