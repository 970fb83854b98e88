"""`autopilot` subcommands of the scheduling group: the engine runs itself.

- ``autopilot agent run [--db URL] [--live] [--cycle-schedule EXPR] [--monitor-schedule EXPR]``:
  the embedded scheduler (cycle ``0 */4 * * *``, monitor ``30 * * * *``, UTC, from the
  settings; ``every 10s`` intervals and ``off`` too) until SIGTERM/SIGINT; exit 0 after the
  running pass finishes, at once on a second signal.
- ``autopilot agent status [--db URL] [--limit N]``: the last runs of each job and the next
  ticks.
- ``autopilot worker [CELERY WORKER OPTIONS]`` / ``autopilot beat [CELERY BEAT OPTIONS]``:
  Celery's own ``celery -A agent.celery_app worker|beat`` (options pass through).
- ``autopilot alerts list [--db URL] [--limit N]``: each alert and its delivery state;
  ``autopilot alerts deliver [--db URL]``: send what is due now.

Exit status: 0 success, 1 an operational failure (database unusable), 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

_DB_HELP = "database URL (default: $AUTOPILOT_DB_URL or sqlite:///autopilot.db)"


def _settings(args: argparse.Namespace) -> Any:
    from agent.settings import get_settings

    update: dict[str, Any] = {}
    if getattr(args, "db", None):
        update["db_url"] = args.db
    return get_settings().model_copy(update=update)


def _fail(command: str, error: Exception) -> int:
    print(f"autopilot {command}: error: {error}", file=sys.stderr)
    return 1


def agent_run(args: argparse.Namespace) -> int:
    """Run the embedded scheduler until a signal stops it."""
    from agent.db import DatabaseError, connect
    from agent.scheduling import EmbeddedScheduler, RunOutcome, describe_schedule

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for chatty in ("apscheduler", "alembic"):  # a line per tick and per migration check
        logging.getLogger(chatty).setLevel(logging.WARNING)
    settings = _settings(args)
    cycle_expr = args.cycle_schedule or settings.cycle_schedule
    monitor_expr = args.monitor_schedule or settings.monitor_schedule
    try:
        engine = connect(settings.db_url)
    except DatabaseError as error:
        return _fail("agent run", error)

    def show(outcome: RunOutcome) -> None:
        state = outcome.outcome or "not ours"
        print(
            f"{outcome.job} {outcome.tick:%Y-%m-%d %H:%M:%S}: {state}: {outcome.message}",
            flush=True,
        )

    scheduler = EmbeddedScheduler(
        engine,
        settings,
        live=args.live or settings.schedule_live,
        schedules={"cycle": cycle_expr, "monitor": monitor_expr},
        on_run=show,
    )
    mode = "live" if scheduler.live else "dry run"
    print(
        f"autopilot agent run on {engine.url.render_as_string(hide_password=True)} ({mode}): "
        f"cycle {describe_schedule(cycle_expr)}, monitor {describe_schedule(monitor_expr)}; "
        f"webhooks: {len(settings.alert_webhooks)}",
        flush=True,
    )
    for job, upcoming in scheduler.next_runs().items():
        shown = f"{upcoming:%Y-%m-%d %H:%M:%S} UTC" if upcoming else "never (off)"
        print(f"  next {job}: {shown}", flush=True)
    code = scheduler.serve()
    print("autopilot agent run: stopped", flush=True)
    return code


def agent_status(args: argparse.Namespace) -> int:
    """Print the last runs of each job and when each runs next."""
    from sqlalchemy.orm import Session

    from agent.db import DatabaseError, connect
    from agent.scheduling import job_statuses

    settings = _settings(args)
    try:
        engine = connect(settings.db_url)
        with Session(engine) as session:
            statuses = job_statuses(session, settings, limit=args.limit)
    except DatabaseError as error:
        return _fail("agent status", error)
    for status in statuses:
        upcoming = status.next_run
        nxt = f"{upcoming:%Y-%m-%d %H:%M:%S} UTC" if upcoming else "never (off)"
        print(f"{status.job}: schedule {status.schedule}, next {nxt}")
        if not status.runs:
            print("  no runs yet")
        for run in status.runs:
            ended = f"{run.finished_at:%H:%M:%S}" if run.finished_at else "-"
            cycle = f" cycle {run.cycle_id}" if run.cycle_id else ""
            print(
                f"  {run.tick:%Y-%m-%d %H:%M:%S} {run.outcome:9} by {run.runner} "
                f"start {run.started_at:%H:%M:%S} end {ended}{cycle}"
                + (f": {run.detail}" if run.detail else "")
            )
    return 0


def alerts(args: argparse.Namespace) -> int:
    """List alerts with their delivery state, or send the due ones."""
    from sqlalchemy.orm import Session

    from agent.alerts import deliver_pending, list_alerts
    from agent.db import DatabaseError, connect

    settings = _settings(args)
    try:
        engine = connect(settings.db_url)
        if args.alerts_command == "deliver":
            report = deliver_pending(engine, settings)
            print(f"delivered {len(report.delivered)}, failed {len(report.failed)}")
            return 0
        with Session(engine) as session:
            views = list_alerts(session, args.limit)
    except DatabaseError as error:
        return _fail(f"alerts {args.alerts_command}", error)
    if not views:
        print("no alerts")
    for view in views:
        states = ", ".join(f"{hook} {status} ({n} tries)" for hook, status, n in view.deliveries)
        repeats = f" (+{view.repeats} repeats)" if view.repeats else ""
        print(
            f"{view.id:>5} {view.created_at:%Y-%m-%d %H:%M:%S} {view.severity:8} {view.kind:16} "
            f"{view.summary}{repeats} [{states or 'no webhooks'}]"
        )
    return 0


def celery_command(args: argparse.Namespace) -> int:
    """Celery's own worker or beat command on the autopilot app."""
    from agent.celery_app import app

    app.start(argv=[args.celery_command, *args.celery_args])
    return 0


def _schedule(value: str) -> str:
    from agent.scheduling import schedule_expression  # APScheduler loads only when needed

    return schedule_expression(value)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands."""
    ag = subparsers.add_parser("agent", help="the engine on a schedule: run, status")
    ag_sub = ag.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    run = ag_sub.add_parser("run", help="run the cycle and the monitor pass on schedule")
    run.add_argument("--db", help=_DB_HELP)
    run.add_argument("--live", action="store_true", help="execute (default: dry run)")
    for job, default in (("cycle", "0 */4 * * *"), ("monitor", "30 * * * *")):
        run.add_argument(
            f"--{job}-schedule",
            type=_schedule,
            metavar="EXPR",
            help=f"crontab (UTC), 'every N[s|m|h]' or 'off' (default: the setting, {default!r})",
        )
    run.set_defaults(handler=agent_run)
    status = ag_sub.add_parser("status", help="last and next runs of each scheduled job")
    status.add_argument("--db", help=_DB_HELP)
    status.add_argument("--limit", type=_positive, default=5, help="runs per job (default 5)")
    status.set_defaults(handler=agent_status)

    for name, help_text in (
        ("worker", "a Celery worker for the scheduled passes (options go to celery worker)"),
        ("beat", "Celery beat with the two schedules (options go to celery beat)"),
    ):
        # "+" as the option prefix: every "-" option goes to Celery untouched
        c = subparsers.add_parser(name, help=help_text, add_help=False, prefix_chars="+")
        c.add_argument("celery_args", nargs=argparse.REMAINDER)
        c.set_defaults(handler=celery_command, celery_command=name)

    al = subparsers.add_parser("alerts", help="alerts and their delivery")
    al_sub = al.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    listing = al_sub.add_parser("list", help="alerts, newest first, with delivery states")
    listing.add_argument("--db", help=_DB_HELP)
    listing.add_argument("--limit", type=_positive, default=50, help="how many (default 50)")
    listing.set_defaults(handler=alerts)
    deliver = al_sub.add_parser("deliver", help="send the alerts that are due now")
    deliver.add_argument("--db", help=_DB_HELP)
    deliver.set_defaults(handler=alerts)
