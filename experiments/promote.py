"""``autopilot promote``: move ``champion`` to the challenger only on paired evidence.

The rule: evaluate the challenger (``models:/autopilot-policy@challenger``) and the bar on the
same scenarios and seeds; promote when the **lower end of the 95% confidence interval of the
paired difference in mean return** (challenger - bar, stratified over scenarios; see
:mod:`policies.evaluation`) is **above zero**. Otherwise the champion stays, and the decision
says why (interval straddles zero, challenger worse, undefined interval with one seed).

The bar is the current champion; with no champion yet, it is the best of the ``baselines``
(``rules``, ``noop``, ``random`` by default) by mean return on the same episodes.

The evidence is logged either way as one run in experiment ``autopilot-promote``: params
(challenger and bar versions, scenarios, seeds), metrics (both means, the paired difference
with its interval, overall and per scenario, the relative difference, the win share), tags
``decision`` (``promoted`` / ``kept``) and ``reason``, and artifacts
``promotion/evidence.json``, ``promotion/table.txt`` and ``plots/comparison.png``. On
promotion the previous champion (if any) keeps the alias ``previous-champion``, for rollback,
and the promoted version gets tags ``promoted_by_run`` and ``promoted_over``.

**Evidence from the decision log** (``autopilot promote --evidence log --log FILE.jsonl``,
:func:`promote_from_log`): instead of simulator rollouts, the High-Confidence Policy
Improvement gate of :mod:`policies.gate` on the logged decisions (an export of the database or
a simulator log): the challenger replaces the champion only when the ``1 - delta`` lower bound
of its doubly-robust value minus the champion's, on a held-out test split, is above zero, with
at least ``min_samples`` usable decisions and an effective sample size of at least
``min_ess`` (``delta``, ``min_samples`` and ``min_ess`` are the ``learning_*`` settings). "No
solution found" keeps the champion. The bar is the registry's champion or, with none, the
first baseline (``rules``). The run is logged in the same experiment with tag
``evidence=log``; the registry aliases move only when the challenger is a registered version.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow

from environment.scenarios import SCENARIO_NAMES
from experiments import plots
from experiments.config import expand_scenarios
from experiments.evaluate import DEFAULT_SEEDS, check_seeds, comparison_metrics, result_metrics
from experiments.models import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    REGISTERED_MODEL,
    load_policy_uri,
    model_version,
    set_alias,
)
from experiments.tracking import Tracking, configure, log_metrics, log_params, start_run
from policies.evaluation import Comparison, EvaluationResult, compare, evaluate
from policies.gate import GateConfig, GateResult, high_confidence_gate
from policies.logged import bandit_feedback, read_jsonl
from policies.ope import action_distribution

DEFAULT_BASELINES = ("rules", "noop", "random")


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of ``autopilot promote`` and its evidence."""

    promoted: bool
    reason: str
    challenger_version: str
    bar: str
    """What the challenger had to beat: ``champion (version N)`` or ``baseline rules``."""
    comparison: Comparison | None
    run_id: str
    champion_version: str | None
    """The champion after the decision."""

    def summary(self) -> str:
        """A few lines for the terminal."""
        head = "PROMOTED" if self.promoted else "KEPT"
        lines = [f"{head}: {self.reason}"]
        if self.comparison is not None:
            lines.append(self.comparison.table())
        lines.append(f"champion: {self.champion_version or 'none'}; evidence in run {self.run_id}")
        return "\n".join(lines)


def decide(comparison: Comparison) -> tuple[bool, str]:
    """(promote?, why) from a paired comparison challenger - bar."""
    diff = comparison.overall
    interval = f"{diff.mean:+.2f} [{diff.low:+.2f}, {diff.high:+.2f}]"
    if math.isnan(diff.low):
        return False, (
            f"the 95% interval of the difference is undefined (mean {diff.mean:+.2f} over "
            f"{diff.n} episodes); evaluate on at least two seeds"
        )
    if diff.low > 0:
        return True, f"the challenger beats the bar: paired difference {interval}, lower bound > 0"
    if diff.high < 0:
        return False, f"the challenger is worse than the bar: paired difference {interval}"
    return False, (f"no evidence the challenger is better: paired difference {interval} includes 0")


def promote(
    *,
    scenarios: Sequence[str] = SCENARIO_NAMES,
    seeds: int | Sequence[int] = DEFAULT_SEEDS,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    tracking: Tracking | None = None,
    experiment: str = "autopilot-promote",
) -> PromotionDecision:
    """Apply the promotion rule of the module docstring and log the evidence."""
    names = expand_scenarios(list(scenarios) if not isinstance(scenarios, str) else scenarios)
    seed_list = check_seeds(seeds)
    baseline_names = [b.strip() for b in baselines if b.strip()]
    if not baseline_names:
        raise ValueError("baselines must name at least one policy, e.g. rules")
    store = tracking or configure()
    challenger = model_version(store, CHALLENGER)
    if challenger is None:
        raise LookupError(
            f"registered model {REGISTERED_MODEL!r} has no {CHALLENGER!r} version at "
            f"{store.uri!r}; train one with `autopilot train`"
        )
    champion = model_version(store, CHAMPION)
    challenger_uri = f"models:/{REGISTERED_MODEL}/{challenger.version}"
    tags = {"autopilot.command": "promote", "challenger_version": str(challenger.version)}
    with start_run(store, experiment, f"promote v{challenger.version}", tags=tags) as run:
        params: dict[str, object] = {
            "challenger": challenger_uri,
            "scenarios": ",".join(names),
            "seeds": ",".join(map(str, seed_list)),
            "baselines": ",".join(baseline_names),
        }
        if champion is not None and champion.version == challenger.version:
            reason = f"version {challenger.version} is already the champion; nothing to do"
            log_params(params | {"bar": "champion (same version)"})
            mlflow.set_tags({"decision": "kept", "reason": reason})
            return PromotionDecision(
                False,
                reason,
                str(challenger.version),
                "champion",
                None,
                run.info.run_id,
                str(champion.version),
            )
        challenger_result = evaluate(
            load_policy_uri(challenger_uri, tracking=store), names, seed_list
        )
        candidates: dict[str, EvaluationResult] = {}
        if champion is not None:
            bar = f"champion (version {champion.version})"
            champion_uri = f"models:/{REGISTERED_MODEL}/{champion.version}"
            candidates[bar] = evaluate(
                load_policy_uri(champion_uri, tracking=store), names, seed_list
            )
        else:
            for baseline in baseline_names:
                policy = load_policy_uri(baseline, tracking=store)
                candidates[f"baseline {baseline}"] = evaluate(policy, names, seed_list)
            bar = max(candidates, key=lambda label: candidates[label].overall().mean)
        bar_result = candidates[bar]
        comparison = compare(
            challenger_result, bar_result, names=(f"challenger (version {challenger.version})", bar)
        )
        promoted, reason = decide(comparison)
        log_params(params | {"bar": bar})
        metrics = result_metrics(challenger_result, "challenger/") | result_metrics(
            bar_result, "bar/"
        )
        metrics |= comparison_metrics(comparison, "diff/")
        for label, result in candidates.items():
            if label != bar:
                metrics |= result_metrics(result, f"{label.replace(' ', '_')}/")
        log_metrics(metrics)
        mlflow.set_tags({"decision": "promoted" if promoted else "kept", "reason": reason})
        mlflow.log_text(comparison.table(), "promotion/table.txt")
        mlflow.log_text(
            json.dumps(
                {
                    "promoted": promoted,
                    "reason": reason,
                    "challenger": challenger_uri,
                    "bar": bar,
                    "scenarios": list(names),
                    "seeds": list(seed_list),
                    "difference": {
                        "mean": comparison.overall.mean,
                        "low": comparison.overall.low,
                        "high": comparison.overall.high,
                    },
                    "challenger_returns": challenger_result.returns.tolist(),
                    "bar_returns": bar_result.returns.tolist(),
                },
                indent=1,
            ),
            "promotion/evidence.json",
        )
        mlflow.log_figure(
            plots.comparison([challenger_result, bar_result], ["challenger", bar]),
            "plots/comparison.png",
        )
        new_champion = None if champion is None else str(champion.version)
        if promoted:
            client = store.client()
            if champion is not None:
                set_alias(store, PREVIOUS_CHAMPION, str(champion.version))
            set_alias(store, CHAMPION, str(challenger.version))
            client.set_model_version_tag(
                REGISTERED_MODEL, str(challenger.version), "promoted_by_run", run.info.run_id
            )
            client.set_model_version_tag(
                REGISTERED_MODEL, str(challenger.version), "promoted_over", bar
            )
            new_champion = str(challenger.version)
        return PromotionDecision(
            promoted,
            reason,
            str(challenger.version),
            bar,
            comparison,
            run.info.run_id,
            new_champion,
        )


# --- evidence from the decision log -----------------------------------------------------------

CHALLENGER_URI = f"models:/{REGISTERED_MODEL}@{CHALLENGER}"
_OWN_MODEL = re.compile(
    rf"^models:/{re.escape(REGISTERED_MODEL)}(?:@(?P<alias>[\w-]+)|/(?P<n>\d+))$"
)


@dataclass(frozen=True)
class LogPromotionDecision:
    """The outcome of ``autopilot promote --evidence log`` and its evidence."""

    gate: GateResult
    challenger: str
    champion: str
    run_id: str
    champion_version: str | None
    """The registry's champion version after the decision (``None`` if there is none)."""

    @property
    def promoted(self) -> bool:
        """Whether the gate promoted the challenger."""
        return self.gate.promoted

    def summary(self) -> str:
        """A few lines for the terminal."""
        gate = self.gate
        head = "PROMOTED" if gate.promoted else "KEPT"
        lines = [f"{head}: {gate.reason}"]
        if gate.candidate is not None:
            lines.append(
                f"challenger {self.challenger}: {gate.candidate_value:.5g}, champion "
                f"{self.champion}: {gate.champion_value:.5g} (doubly robust, test split of "
                f"{gate.n_test}); {1 - gate.delta:g} lower bound of the difference "
                f"{gate.lower_bound:+.5g}; ESS {gate.ess:.1f}"
            )
        lines.append(f"champion: {self.champion_version or 'none'}; evidence in run {self.run_id}")
        return "\n".join(lines)


def _registered_version(store: Tracking, uri: str) -> str | None:
    """The ``autopilot-policy`` version a ``models:/autopilot-policy...`` URI names, else
    ``None`` (a plain spec, or another model)."""
    match = _OWN_MODEL.match(uri.strip())
    if match is None:
        return None
    found = model_version(store, match.group("alias") or match.group("n"))
    return None if found is None else str(found.version)


def promote_from_log(
    log: str | Path,
    *,
    challenger: str = CHALLENGER_URI,
    champion: str | None = None,
    config: GateConfig | None = None,
    tracking: Tracking | None = None,
    experiment: str = "autopilot-promote",
) -> LogPromotionDecision:
    """Apply the log-evidence rule of the module docstring and log the evidence.

    ``challenger`` / ``champion``: policy specs or model URIs; ``champion`` default: the
    registry's champion, else ``rules``. ``config``: default from the ``learning_*`` settings.
    """
    from agent.settings import get_settings  # the settings are the gate's defaults

    if config is None:
        settings = get_settings()
        config = GateConfig(
            delta=settings.learning_delta,
            min_samples=settings.learning_min_samples,
            min_ess=settings.learning_min_ess,
        )
    store = tracking or configure()
    current = model_version(store, CHAMPION)
    if champion is None:
        champion = (
            f"models:/{REGISTERED_MODEL}/{current.version}"
            if current is not None
            else DEFAULT_BASELINES[0]
        )
    records = read_jsonl(log)
    feedback, counts = bandit_feedback(records)
    challenger_policy = load_policy_uri(challenger, tracking=store)
    champion_policy = load_policy_uri(champion, tracking=store)
    gate = high_confidence_gate(
        feedback,
        action_distribution(champion_policy, feedback.obs),
        {challenger: action_distribution(challenger_policy, feedback.obs)},
        config,
    )
    tags = {"autopilot.command": "promote", "evidence": "log"}
    with start_run(store, experiment, "promote from log", tags=tags) as run:
        log_params(
            {
                "challenger": challenger,
                "champion": champion,
                "log": str(log),
                "records": len(records),
                "used": counts.used,
                "delta": config.delta,
                "min_samples": config.min_samples,
                "min_ess": config.min_ess,
                "split_seed": config.seed,
            }
        )
        figures = {
            "gate/lower_bound": gate.lower_bound,
            "gate/difference": gate.difference,
            "gate/challenger_value": gate.candidate_value,
            "gate/champion_value": gate.champion_value,
            "gate/ess": gate.ess,
            "gate/n_test": float(gate.n_test),
        }
        log_metrics({key: value for key, value in figures.items() if math.isfinite(value)})
        mlflow.set_tags(
            {"decision": "promoted" if gate.promoted else "kept", "reason": gate.reason}
        )
        mlflow.log_text(
            json.dumps(gate.to_dict(), indent=1, default=str), "promotion/evidence.json"
        )
        new_champion = None if current is None else str(current.version)
        version = _registered_version(store, challenger) if gate.promoted else None
        if version is not None:
            if current is not None and str(current.version) != version:
                set_alias(store, PREVIOUS_CHAMPION, str(current.version))
            set_alias(store, CHAMPION, version)
            client = store.client()
            client.set_model_version_tag(
                REGISTERED_MODEL, version, "promoted_by_run", run.info.run_id
            )
            client.set_model_version_tag(REGISTERED_MODEL, version, "promoted_over", champion)
            new_champion = version
        return LogPromotionDecision(gate, challenger, champion, run.info.run_id, new_champion)


__all__ = [
    "DEFAULT_BASELINES",
    "PREVIOUS_CHAMPION",
    "LogPromotionDecision",
    "PromotionDecision",
    "decide",
    "promote",
    "promote_from_log",
]
