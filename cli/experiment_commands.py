"""``autopilot`` subcommands of the experiment group: train, evaluate, promote, thresholds, tune.

Each is a thin shell over a function in :mod:`experiments` (which the tests call directly).
Heavy imports (MLflow, torch) happen inside the handlers, so ``autopilot --help`` stays fast.
Every command takes ``--tracking-uri`` (default: ``$MLFLOW_TRACKING_URI``, else
``sqlite:///mlflow.db``) and ``--artifact-root`` (where new experiments keep artifacts).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.common import UsageError
from policies.validation import split_list

if TYPE_CHECKING:  # MLflow loads only inside the handlers
    from experiments.models import LoggedPolicy
    from experiments.thresholds import ThresholdsFile
    from experiments.tracking import Tracking

Handler = Callable[[argparse.Namespace], int]


def _tracking(args: argparse.Namespace) -> Any:
    from experiments.tracking import configure

    return configure(args.tracking_uri, args.artifact_root)


def _clear_errors(handler: Handler) -> Handler:
    """Registry look-ups that fail (``LookupError``) and MLflow errors are usage errors:
    printed as one line, exit status 2, like ``ValueError`` in :func:`cli.main.main`."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        # MLflow's error class, as experiments/ (the one layer that imports MLflow) sees it
        from experiments.models import MlflowException

        # MLflow's download progress bars are noise in a command's output.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        try:
            return handler(args)
        except LookupError as error:
            raise UsageError(str(error.args[0] if error.args else error)) from None
        except MlflowException as error:
            raise UsageError(f"MLflow: {error.message}") from None

    return run


def _ui_hint(uri: str) -> str:
    return f"review runs with: mlflow ui --backend-store-uri {uri}"


# --- handlers -------------------------------------------------------------------------------


@_clear_errors
def train_command(args: argparse.Namespace) -> int:
    """``autopilot train``."""
    from experiments.config import load_config
    from experiments.train import train

    fields: dict[str, Any] = {}
    for name in ("scenario", "timesteps", "seed"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    if args.no_register:
        fields["register"] = False
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.preset is not None:
        return _train_preset(args, fields, progress)
    if args.algo is None:
        raise ValueError("train needs --algo (ppo, maskable_ppo, linucb, ...) or --preset champion")
    config = load_config(args.algo, args.config, args.set or (), **fields)
    result = train(config, tracking=_tracking(args), progress=progress, alias=args.alias)
    print(result.evaluation.table())
    print(f"MLflow run {result.run_id}")
    if result.logged is not None and result.logged.version is not None:
        print(registration_text(result.logged, _tracking(args)))
    print(_ui_hint(_tracking(args).uri))
    return 0


def registration_text(logged: LoggedPolicy, tracking: Tracking) -> str:
    """What ``autopilot train`` did in the registry: the new version, its alias, and where
    the alias came from or where ``challenger`` still is, so that a second training never
    silently changes what ``promote`` and ``@challenger`` mean."""
    from experiments.models import CHALLENGER, REGISTERED_MODEL, model_version

    text = f"registered {REGISTERED_MODEL} version {logged.version} as {logged.alias!r}"
    if logged.replaced is not None:
        return f"{text} (moved from version {logged.replaced}, which stays registered)"
    if logged.alias != CHALLENGER:
        challenger = model_version(tracking, CHALLENGER)
        where = "no version" if challenger is None else f"version {challenger.version}"
        return f"{text}; {CHALLENGER!r} is still {where}"
    return text


def _train_preset(args: argparse.Namespace, fields: dict[str, Any], progress: bool) -> int:
    """``autopilot train --preset NAME``: the preset's config, then calibration and the file."""
    from experiments.champion import SHIPPED_MODEL, preset_path, train_champion

    preset_path(args.preset)  # names the presets when the name is wrong
    if args.algo is not None or args.config is not None or args.set:
        raise ValueError("--preset fixes the algorithm and the config: drop --algo/--config/--set")
    output = Path(args.output) if args.output else SHIPPED_MODEL
    result = train_champion(
        output=output,
        tracking=_tracking(args),
        overrides=fields,
        progress=progress,
        alias=args.alias,
    )
    print(f"champion written to {result.model} (metadata {result.metadata.name})")
    print(f"MLflow run {result.run_id}; {result.seconds:.0f} s")
    return 0


@_clear_errors
def evaluate_command(args: argparse.Namespace) -> int:
    """``autopilot evaluate``."""
    from experiments.evaluate import evaluate_policies

    report = evaluate_policies(
        split_list(args.policies),
        args.scenarios,
        args.seeds,
        warm_start=args.warm_start,
        tracking=_tracking(args),
    )
    print(report.table())
    print(f"MLflow run {report.run_id}")
    return 0


@_clear_errors
def promote_command(args: argparse.Namespace) -> int:
    """``autopilot promote``."""
    from experiments.promote import CHALLENGER_URI, promote, promote_from_log

    if args.evidence == "log":
        if args.log is None:
            raise ValueError("--evidence log needs --log FILE.jsonl (a decision log)")
        from_log = promote_from_log(
            args.log,
            challenger=args.challenger or CHALLENGER_URI,
            champion=args.champion,
            tracking=_tracking(args),
        )
        print(from_log.summary())
        return 0
    decision = promote(
        scenarios=args.scenarios,
        seeds=args.seeds,
        baselines=split_list(args.baselines),
        tracking=_tracking(args),
    )
    print(decision.summary())
    return 0


THRESHOLD_WIDTH = 34
THRESHOLD_COLUMNS = f"  {'action':<20}{'automatic at confidence >=':>{THRESHOLD_WIDTH}}   evidence"
"""The header of the table ``autopilot thresholds`` prints."""


def threshold_text(threshold: float | None, action: str) -> str:
    """``action``'s confidence threshold as ``autopilot thresholds`` prints it: a number; for
    ``inf`` (the file's ``.inf``) ``never``: the action always waits for a human; for 0,
    always; with too few samples, the guardrails' built-in threshold the action keeps."""
    from agent.guardrails import default_threshold

    if threshold is None:
        return f"built-in {default_threshold(action):g} (too few samples)"
    if math.isinf(threshold):
        return "never (always needs a human)"
    return f"{threshold:g}" + (" (always automatic)" if threshold <= 0 else "")


def policy_line(document: ThresholdsFile) -> str:
    """Which policy the thresholds are for, and why when it is not the one asked for."""
    line = f"thresholds for {document.policy_name} (version {document.policy_version})"
    return f"{line}: {document.policy_note}" if document.policy_note else line


@_clear_errors
def thresholds_command(args: argparse.Namespace) -> int:
    """``autopilot thresholds``."""
    from experiments.thresholds import run_thresholds

    document: ThresholdsFile
    if args.evidence == "log":
        from experiments.feedback import thresholds_from_log

        if args.log is None:
            raise ValueError("--evidence log needs --log FILE.jsonl (a decision log)")
        document = thresholds_from_log(
            args.log, min_samples=args.min_samples, output=args.output, tracking=_tracking(args)
        )
    else:
        document = run_thresholds(
            args.policy,
            scenarios=args.scenarios,
            seeds=args.seeds,
            horizon=args.horizon,
            stride=args.stride,
            min_samples=args.min_samples,
            output=args.output,
            tracking=_tracking(args),
        )
    print(policy_line(document))
    print(THRESHOLD_COLUMNS)
    for name, entry in document.thresholds.items():
        shown = threshold_text(entry.threshold, name)
        print(f"  {name:<20}{shown:>{THRESHOLD_WIDTH}}   samples {entry.samples}")
    print(f"wrote {args.output}; MLflow run {document.mlflow_run_id}")
    return 0


@_clear_errors
def tune_command(args: argparse.Namespace) -> int:
    """``autopilot tune``."""
    from experiments.tune import tune

    result = tune(
        args.algo,
        args.trials,
        config_path=args.config,
        overrides=args.set or (),
        storage=args.storage,
        study_name=args.study,
        timeout=args.timeout,
        tracking=_tracking(args),
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
    )
    print(result.summary())
    return 0


# --- parsers --------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    parser.add_argument(
        "--artifact-root", default=None, help="artifact folder for experiments created now"
    )


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default=None, help="YAML config (default: experiments/configs/<algo>.yaml)"
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field or hyperparameter (repeatable), e.g. learning_rate=1e-3",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="progress bar"
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands."""
    train = subparsers.add_parser(
        "train", help="train a policy, tracked in MLflow, registered as challenger"
    )
    train.add_argument("--algo", help="ppo, maskable_ppo, a2c, dqn, linucb, thompson, ...")
    train.add_argument(
        "--preset",
        help="a documented recipe: 'champion' trains, calibrates and writes the shipped champion",
    )
    train.add_argument("--output", help="--preset: where the model goes (default: the package)")
    train.add_argument("--scenario", default=None, help="training scenario (default: config)")
    train.add_argument("--timesteps", type=_positive_int, default=None)
    train.add_argument("--seed", type=_non_negative_int, default=None)
    train.add_argument(
        "--no-register", action="store_true", help="log the model without registering it"
    )
    train.add_argument(
        "--alias",
        default="challenger",
        help="registry alias of the new version (default challenger, what promote reads); "
        "another name leaves the challenger where it is",
    )
    _config_args(train)
    _common(train)
    train.set_defaults(handler=train_command)

    evaluate = subparsers.add_parser("evaluate", help="paired evaluation of several policies")
    evaluate.add_argument(
        "--policies",
        required=True,
        help="comma-separated: names (rules), KIND:PATH, models:/..., runs:/..., folders",
    )
    evaluate.add_argument("--scenarios", default="all", help="'all' or comma-separated names")
    evaluate.add_argument("--seeds", type=_positive_int, default=10, help="seeds 0..N-1")
    evaluate.add_argument(
        "--warm-start",
        type=_non_negative_int,
        default=16,
        help="online episodes for fresh bandits named bare (default 16)",
    )
    _common(evaluate)
    evaluate.set_defaults(handler=evaluate_command)

    promote = subparsers.add_parser(
        "promote", help="make the challenger champion if it is better with 95%% confidence"
    )
    promote.add_argument("--scenarios", default="all", help="'all' or comma-separated names")
    promote.add_argument("--seeds", type=_positive_int, default=10, help="seeds 0..N-1")
    promote.add_argument(
        "--baselines", default="rules,noop,random", help="the bar when there is no champion"
    )
    promote.add_argument(
        "--evidence",
        choices=("sim", "log"),
        default="sim",
        help="sim: paired simulator rollouts (default); log: the High-Confidence Policy "
        "Improvement gate on a decision log (--log)",
    )
    promote.add_argument("--log", type=Path, metavar="FILE.jsonl", help="with --evidence log")
    promote.add_argument(
        "--challenger", help="with --evidence log: spec or model URI (default: @challenger)"
    )
    promote.add_argument(
        "--champion", help="with --evidence log: spec or model URI (default: @champion, else rules)"
    )
    _common(promote)
    promote.set_defaults(handler=promote_command)

    thresholds = subparsers.add_parser(
        "thresholds", help="per-action confidence thresholds for the guardrails"
    )
    thresholds.add_argument(
        "--policy",
        default=None,
        help="spec or model URI (default: what a cycle runs: AUTOPILOT_POLICY_URI, the "
        "registry's champion, else rules)",
    )
    thresholds.add_argument("--scenarios", default="all", help="'all' or comma-separated names")
    thresholds.add_argument("--seeds", type=_positive_int, default=3, help="seeds 1000..1000+N-1")
    thresholds.add_argument("--horizon", type=_positive_int, default=24, help="steps per rollout")
    thresholds.add_argument(
        "--stride", type=_positive_int, default=6, help="measure every N-th decision"
    )
    thresholds.add_argument("--min-samples", type=_positive_int, default=10)
    thresholds.add_argument("--output", default="guardrails/thresholds.yaml")
    thresholds.add_argument(
        "--evidence",
        choices=("sim", "log"),
        default="sim",
        help="sim: counterfactual simulator rollouts (default); log: logged outcomes (--log)",
    )
    thresholds.add_argument("--log", type=Path, metavar="FILE.jsonl", help="with --evidence log")
    _common(thresholds)
    thresholds.set_defaults(handler=thresholds_command)

    tune = subparsers.add_parser("tune", help="Optuna search with pruning, trials in MLflow")
    tune.add_argument("--algo", required=True)
    tune.add_argument("--trials", type=_positive_int, required=True)
    tune.add_argument(
        "--storage", default=None, help="Optuna database URL (default sqlite:///optuna.db)"
    )
    tune.add_argument("--study", default=None, help="study name (default autopilot-<algo>)")
    tune.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    _config_args(tune)
    _common(tune)
    tune.set_defaults(handler=tune_command)
