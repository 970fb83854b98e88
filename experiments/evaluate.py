"""``autopilot evaluate``: paired evaluation of several policies, one MLflow run.

Every policy meets the same scenarios and seeds (:func:`policies.evaluation.evaluate`), so the
differences are paired; each policy after the first is compared with the first (the
reference) by :func:`policies.evaluation.compare`. Policies are named as
:func:`experiments.models.load_policy_uri` accepts (``rules``, ``linucb``,
``models:/autopilot-policy@challenger``, ``runs:/...``, paths). Each arm is labelled as it was
named: its table is headed ``[label] name (version)``, the version being the concrete model
(``models:/autopilot-policy/3`` for an alias), and each comparison ``[label] - [reference]``.
Two names of one model (an alias and its version number, say) are refused: a model compared
with itself is no evidence. A fresh online learner named
by its bare name (``linucb``) is first warm-started with
:func:`policies.evaluation.fit_online` (``warm_start`` episodes on seeds 10,000+, never an
evaluation seed); one loaded from a model is evaluated as it is.

The run (experiment ``autopilot-evaluate``): params (policies, scenarios, seeds, warm start);
metrics ``<label>/<scenario>/mean_return`` (+ ``_low``/``_high``), ``<label>/mean_return``,
``<label>/failure_rate``, and per comparison ``compare/<label>/mean_diff`` (+ ``_low``,
``_high``, ``relative``, ``wins``) and per scenario ``compare/<label>/<scenario>/mean_diff``;
artifacts ``evaluation/table.txt``, ``evaluation/returns.json`` (every episode's return) and
``plots/comparison.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow

from environment.scenarios import SCENARIO_NAMES
from experiments import plots
from experiments.config import expand_scenarios
from experiments.models import load_policy_uri
from experiments.tracking import Tracking, configure, log_metrics, log_params, metric_key, start_run
from policies.base import OnlineLearner, Policy
from policies.evaluation import Comparison, EvaluationResult, compare, evaluate, fit_online
from policies.validation import check_seeds

DEFAULT_SEEDS = tuple(range(10))
"""Evaluation and promotion seeds (training evaluates on 1,000+ and learns on others)."""


def result_metrics(result: EvaluationResult, prefix: str = "") -> dict[str, float]:
    """One result as flat metrics (see the module docstring), keys prefixed by ``prefix``."""
    metrics: dict[str, float] = {}
    for i, scenario in enumerate(result.scenarios):
        estimate = result.scenario_estimate(scenario)
        key = f"{prefix}{scenario}/mean_return"
        metrics |= {key: estimate.mean, f"{key}_low": estimate.low, f"{key}_high": estimate.high}
        metrics[f"{prefix}{scenario}/failure_rate"] = float(result.failed[i].mean())
    overall = result.overall()
    metrics |= {
        f"{prefix}mean_return": overall.mean,
        f"{prefix}mean_return_low": overall.low,
        f"{prefix}mean_return_high": overall.high,
        f"{prefix}failure_rate": float(result.failed.mean()),
    }
    return metrics


def comparison_metrics(comparison: Comparison, prefix: str = "") -> dict[str, float]:
    """A paired comparison as flat metrics, keys prefixed by ``prefix``."""
    overall, relative = comparison.overall, comparison.relative
    metrics = {
        f"{prefix}mean_diff": overall.mean,
        f"{prefix}mean_diff_low": overall.low,
        f"{prefix}mean_diff_high": overall.high,
        f"{prefix}relative": relative.mean,
        f"{prefix}relative_low": relative.low,
        f"{prefix}relative_high": relative.high,
        f"{prefix}wins": comparison.a_wins,
    }
    for scenario, estimate in comparison.per_scenario.items():
        metrics |= {
            f"{prefix}{scenario}/mean_diff": estimate.mean,
            f"{prefix}{scenario}/mean_diff_low": estimate.low,
            f"{prefix}{scenario}/mean_diff_high": estimate.high,
        }
    return metrics


@dataclass(frozen=True)
class EvaluationReport:
    """What ``autopilot evaluate`` measured: one result per policy, in the order given, and
    each later policy's paired comparison with the first."""

    run_id: str
    labels: tuple[str, ...]
    results: tuple[EvaluationResult, ...]
    comparisons: tuple[Comparison, ...]

    def table(self) -> str:
        """Every result's table, then the paired differences against the first policy."""
        blocks = [
            f"[{label}] {result.table()}"
            for label, result in zip(self.labels, self.results, strict=True)
        ]
        blocks += [comparison.table() for comparison in self.comparisons]
        return "\n\n".join(blocks)


def load_for_evaluation(spec: str, warm_start: int, tracking: Tracking) -> Policy:
    """The policy ``spec`` names, warm-started if it is a fresh online learner."""
    policy = load_policy_uri(spec, tracking=tracking)
    fresh = ":" not in spec and "/" not in spec
    if fresh and warm_start > 0 and isinstance(policy, OnlineLearner):
        fit_online(policy, SCENARIO_NAMES, episodes=warm_start)
    return policy


def check_distinct_models(specs: Sequence[str], policies: Sequence[Policy]) -> None:
    """Raise ``ValueError`` when two specs name one model: both are model URIs or folders
    (whose loaded ``version`` is the concrete model) that resolved to the same version."""
    seen: dict[str, str] = {}
    for spec, policy in zip(specs, policies, strict=True):
        if not (spec.startswith(("models:/", "runs:/")) or Path(spec).is_dir()):
            continue  # a fresh policy or a file: each load is its own
        first = seen.setdefault(policy.version, spec)
        if first != spec:
            raise ValueError(
                f"{first} and {spec} are the same model ({policy.version}); name each model "
                "once (a model compared with itself differs by nothing)"
            )


def evaluate_policies(
    specs: Sequence[str],
    scenarios: Sequence[str] = SCENARIO_NAMES,
    seeds: int | Sequence[int] = DEFAULT_SEEDS,
    *,
    warm_start: int = 16,
    tracking: Tracking | None = None,
    experiment: str = "autopilot-evaluate",
) -> EvaluationReport:
    """Evaluate ``specs`` on the same scenarios and seeds and log one run (module docstring)."""
    names = [s.strip() for s in specs if s.strip()] if not isinstance(specs, str) else [specs]
    if not names:
        raise ValueError("evaluate needs at least one policy, e.g. rules,noop")
    if len(set(names)) != len(names):
        raise ValueError(f"policies must be distinct, got {names}")
    if isinstance(warm_start, bool) or not isinstance(warm_start, int) or warm_start < 0:
        raise ValueError(f"warm_start={warm_start!r} is invalid: must be an integer >= 0")
    seed_list = check_seeds(seeds)
    scenarios = expand_scenarios(list(scenarios) if not isinstance(scenarios, str) else scenarios)
    store = tracking or configure()
    policies = [load_for_evaluation(name, warm_start, store) for name in names]
    check_distinct_models(names, policies)
    with start_run(
        store, experiment, "evaluate " + ",".join(names), tags={"autopilot.command": "evaluate"}
    ) as run:
        log_params(
            {
                "policies": ",".join(names),
                "scenarios": ",".join(scenarios),
                "seeds": ",".join(map(str, seed_list)),
                "warm_start": warm_start,
            }
            | {f"policy.{i}": f"{p.name} {p.version}" for i, p in enumerate(policies)}
        )
        results = tuple(evaluate(p, scenarios, seed_list) for p in policies)
        comparisons = tuple(
            compare(result, results[0], names=(f"[{label}]", f"[{names[0]}]"))
            for label, result in zip(names[1:], results[1:], strict=True)
        )
        metrics: dict[str, float] = {}
        for label, result in zip(names, results, strict=True):
            metrics |= result_metrics(result, f"{metric_key(label)}/")
        for label, comparison in zip(names[1:], comparisons, strict=True):
            metrics |= comparison_metrics(comparison, f"compare/{metric_key(label)}/")
        log_metrics(metrics)
        report = EvaluationReport(run.info.run_id, tuple(names), results, comparisons)
        mlflow.log_text(report.table(), "evaluation/table.txt")
        mlflow.log_text(
            json.dumps(
                {
                    "scenarios": list(results[0].scenarios),
                    "seeds": list(seed_list),
                    "returns": {
                        label: result.returns.tolist()
                        for label, result in zip(names, results, strict=True)
                    },
                },
                indent=1,
            ),
            "evaluation/returns.json",
        )
        mlflow.log_figure(plots.comparison(results, names), "plots/comparison.png")
    return report


__all__ = [
    "DEFAULT_SEEDS",
    "EvaluationReport",
    "check_distinct_models",
    "check_seeds",
    "comparison_metrics",
    "evaluate_policies",
    "result_metrics",
]
