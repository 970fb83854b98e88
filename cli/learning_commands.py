"""`autopilot` subcommands of the learning group.

- ``autopilot ope --log FILE.jsonl --policy SPEC``: off-policy evaluation of a decision log;
- ``autopilot learn [--db URL] [--as-of TIME] [--learners linucb]``: one learning step on the
  database (join the rewards of closed windows, update the online learners, commit).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands."""
    ope = subparsers.add_parser(
        "ope",
        help="estimate a policy's value from a decision log (DM, IPS, SNIPS, DR, SNDR)",
        description="Off-policy evaluation (policies/ope.py): each estimate of the target "
        "policy's expected one-step reward on the logged contexts, with its 95%% bootstrap "
        "interval and the effective sample size of the importance weights.",
    )
    ope.add_argument("--log", type=Path, required=True, metavar="FILE.jsonl", help="the log")
    ope.add_argument(
        "--policy",
        required=True,
        metavar="SPEC",
        help="target policy: a spec (rules, linucb:PATH) or an MLflow model URI (models:/...)",
    )
    ope.add_argument(
        "--estimators",
        default="dm,ips,snips,dr,sndr",
        help="comma-separated estimators (default: dm,ips,snips,dr,sndr)",
    )
    ope.add_argument("--clip", type=float, default=None, help="clip importance weights at this")
    ope.add_argument(
        "--min-ess",
        type=float,
        default=None,
        help="warn below this effective sample size (default: the learning_min_ess setting)",
    )
    ope.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    ope.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    ope.add_argument("--json", action="store_true", help="print one JSON object")
    ope.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store of a models:/ or runs:/ policy (default: the settings' URI)",
    )
    ope.set_defaults(handler=_ope)

    learn = subparsers.add_parser(
        "learn",
        help="join the rewards of closed windows and update the online learners (one step)",
        description="The learning step of a cycle (agent/learning.py), run by hand: rewards "
        "computed from the KPIs at each closed window, the default reward where none could "
        "be, then each online learner updated and stored as a new version.",
    )
    learn.add_argument(
        "--db", default=None, help="database URL (default: $AUTOPILOT_DB_URL or autopilot.db)"
    )
    learn.add_argument(
        "--as-of", type=_timestamp, default=None, help="ISO-8601 time (default: now, UTC)"
    )
    learn.add_argument(
        "--learners", default="linucb", help="comma-separated bandit names (default: linucb)"
    )
    learn.add_argument("--json", action="store_true", help="print one JSON object")
    learn.set_defaults(handler=_learn)


def _timestamp(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time such as 2026-06-01T12:00, got {value!r}"
        ) from None


def evaluate_log(
    log: Path,
    policy_spec: str,
    estimators: str,
    *,
    clip: float | None = None,
    min_ess: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """The report ``autopilot ope`` prints: the log's counts and each estimate as a dict."""
    from agent.settings import get_settings
    from policies.logged import bandit_feedback, read_jsonl
    from policies.ope import action_distribution, estimate_all, parse_estimators
    from policies.registry import load_policy

    names = parse_estimators(estimators)
    threshold = get_settings().learning_min_ess if min_ess is None else min_ess
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"--min-ess must be a finite number >= 0, got {threshold!r}")
    records = read_jsonl(log)
    feedback, counts = bandit_feedback(records)
    if policy_spec.strip().startswith(("models:/", "runs:/")):
        from experiments.models import load_policy_uri  # MLflow loads only for these
        from experiments.tracking import configure

        policy = load_policy_uri(policy_spec, tracking=configure(tracking_uri))
    else:
        policy = load_policy(policy_spec)
    estimates = estimate_all(
        feedback,
        action_distribution(policy, feedback.obs),
        names,
        clip=clip,
        min_ess=threshold,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    return {
        "log": str(log),
        "policy": policy_spec,
        "records": len(records),
        "used": counts.used,
        "skipped_not_usable": counts.not_usable,
        "skipped_no_reward": counts.no_reward,
        "clip": clip,
        "min_ess": threshold,
        "confidence": 0.95,
        "estimates": [estimate.to_dict() for estimate in estimates],
    }


def report_table(report: dict[str, Any]) -> str:
    """The report as a few lines for the terminal."""
    lines = [
        f"{report['policy']} on {report['log']}: {report['used']} of {report['records']} "
        f"decisions used ({report['skipped_not_usable']} without a propensity, "
        f"{report['skipped_no_reward']} without a reward)",
        f"{'estimator':<10}{'value':>12}{'95% interval':>28}{'ESS':>10}",
    ]
    for estimate in report["estimates"]:
        interval = f"[{estimate['low']:.5g}, {estimate['high']:.5g}]"
        lines.append(
            f"{estimate['estimator']:<10}{estimate['value']:>12.5g}{interval:>28}"
            f"{estimate['ess']:>10.1f}"
        )
    warning = report["estimates"][0]["warning"] if report["estimates"] else None
    if warning:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def _ope(args: argparse.Namespace) -> int:
    report = evaluate_log(
        args.log,
        args.policy,
        args.estimators,
        clip=args.clip,
        min_ess=args.min_ess,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        tracking_uri=args.tracking_uri,
    )
    print(json.dumps(report, allow_nan=False) if args.json else report_table(report))
    return 0


def run_learning_step(db: str | None, as_of: datetime | None, learners: str) -> dict[str, Any]:
    """One :func:`agent.learning.learn` step on the database at ``db``, committed."""
    from agent.db import connect, session_factory
    from agent.learning import learn
    from policies.bandits import BANDITS

    names = [name.strip() for name in learners.split(",") if name.strip()]
    unknown = [name for name in names if name not in BANDITS]
    if unknown:
        raise ValueError(f"unknown learner {unknown[0]!r}; known: {list(BANDITS)}")
    moment = as_of if as_of is not None else datetime.now(UTC)
    with session_factory(connect(db))() as session:
        report = learn(session, as_of=moment, learners=names)
        session.commit()
    return report.to_dict()


def _learn(args: argparse.Namespace) -> int:
    from agent.db import DatabaseError

    try:
        report = run_learning_step(args.db, args.as_of, args.learners)
    except DatabaseError as error:
        print(f"autopilot learn: error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
        return 0
    join = report["join"]
    print(
        f"rewards joined: {join['computed']} computed ({join['late']} late), "
        f"{join['defaulted']} default; {join['waiting']} waiting, {join['open']} open, "
        f"{join['dangling']} dangling (no deadline)"
    )
    for learner in report["learners"]:
        version = learner["version"]
        state = f"version {version}" if version is not None else "no new version"
        print(
            f"{learner['learner']}: {learner['updates']} updates, {learner['n_updates']} in "
            f"total, {state}"
        )
    return 0
