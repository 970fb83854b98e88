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
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import mlflow

from environment.scenarios import SCENARIO_NAMES
from experiments import plots
from experiments.config import expand_scenarios
from experiments.evaluate import DEFAULT_SEEDS, check_seeds, comparison_metrics, result_metrics
from experiments.models import (
    CHALLENGER,
    CHAMPION,
    REGISTERED_MODEL,
    load_policy_uri,
    model_version,
    set_alias,
)
from experiments.tracking import Tracking, configure, log_metrics, log_params, start_run
from policies.evaluation import Comparison, EvaluationResult, compare, evaluate

DEFAULT_BASELINES = ("rules", "noop", "random")
PREVIOUS_CHAMPION = "previous-champion"


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
        comparison = compare(challenger_result, bar_result)
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


__all__ = ["DEFAULT_BASELINES", "PromotionDecision", "decide", "promote"]
