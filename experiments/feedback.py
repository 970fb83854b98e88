"""The ML feedback loop's runs from a decision log, in MLflow: calibration, adoption and
uplift (:func:`log_feedback`), and confidence thresholds from logged outcomes
(:func:`thresholds_from_log`, ``autopilot thresholds --evidence log``).

**Thresholds from the log**: the optimizer of :mod:`experiments.thresholds` on samples whose
value is the logged reward of an executed decision minus the reward model's estimate of
holding in the same context (:func:`policies.feedback.execution_values`), instead of
simulator rollouts. The file has the same schema; its ``source`` names the log
(``scenarios: [log:<path>]``, horizon and stride 0).

Each call of :func:`log_feedback` is one run in experiment ``autopilot-feedback`` with the
figures of :mod:`policies.feedback` as metrics (``calibration/brier``, ``calibration/ece``,
``uplift/<action>`` with ``_low``/``_high``, ``adoption/<action>/<bucket>/approval_rate``),
the full report as ``feedback/report.json``, and the log's size as params, so calibration and
suggestion quality over time are reviewable in ``mlflow ui``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import mlflow

from experiments.thresholds import (
    DEFAULT_THRESHOLDS_PATH,
    DecisionSamples,
    ThresholdsFile,
    optimal_thresholds,
    write_thresholds,
)
from experiments.tracking import Tracking, configure, log_metrics, log_params, metric_key, start_run
from policies.feedback import (
    adoption_report,
    calibration_report,
    execution_values,
    uplift_report,
)
from policies.logged import LoggedDecision, read_jsonl

EXPERIMENT = "autopilot-feedback"


def feedback_report(
    records: Sequence[LoggedDecision],
    suggestions: Iterable[tuple[str, float, str]] = (),
    *,
    n_bootstrap: int = 500,
) -> dict[str, Any]:
    """Calibration, adoption and uplift as one JSON-ready dict."""
    return {
        "records": len(records),
        "calibration": calibration_report(records),
        "adoption": adoption_report(suggestions),
        "uplift": uplift_report(records, n_bootstrap=n_bootstrap),
    }


def report_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The report's figures as flat MLflow metrics (finite values only)."""
    metrics = {
        "calibration/brier": report["calibration"]["brier"],
        "calibration/ece": report["calibration"]["ece"],
        "calibration/n": float(report["calibration"]["n"]),
    }
    for action, row in report["uplift"].items():
        metrics[f"uplift/{action}"] = row["uplift"]
        metrics[f"uplift/{action}_low"] = row["low"]
        metrics[f"uplift/{action}_high"] = row["high"]
    for action, buckets in report["adoption"].items():
        for bucket, row in buckets.items():
            metrics[metric_key(f"adoption/{action}/{bucket}/approval_rate")] = row["approval_rate"]
    return {key: float(value) for key, value in metrics.items() if math.isfinite(value)}


def log_feedback(
    records: Sequence[LoggedDecision],
    suggestions: Iterable[tuple[str, float, str]] = (),
    *,
    tracking: Tracking | None = None,
    n_bootstrap: int = 500,
) -> tuple[dict[str, Any], str]:
    """Compute :func:`feedback_report` and log it as one run; returns (report, run id)."""
    report = feedback_report(records, list(suggestions), n_bootstrap=n_bootstrap)
    store = tracking or configure()
    with start_run(store, EXPERIMENT, "feedback", tags={"autopilot.command": "feedback"}) as run:
        log_params({"records": len(records), "n_bootstrap": n_bootstrap})
        log_metrics(report_metrics(report))
        mlflow.log_text(json.dumps(report, indent=1, default=str), "feedback/report.json")
    return report, run.info.run_id


def thresholds_from_log(
    log: str | Path,
    *,
    min_samples: int = 10,
    output: str | Path = DEFAULT_THRESHOLDS_PATH,
    tracking: Tracking | None = None,
    experiment: str = "autopilot-thresholds",
) -> ThresholdsFile:
    """Choose per-action thresholds from a decision log (module docstring), log them to
    MLflow (tag ``evidence=log``; params ``threshold.<action>``; metrics as
    :func:`experiments.thresholds.run_thresholds`) and write the file at ``output``."""
    records = read_jsonl(log)
    actions, confidences, values = execution_values(records)
    chosen = optimal_thresholds(
        DecisionSamples(actions, confidences, values), min_samples=min_samples
    )
    policies = sorted({r.policy for r in records})
    store = tracking or configure()
    tags = {"autopilot.command": "thresholds", "evidence": "log"}
    with start_run(store, experiment, "thresholds from log", tags=tags) as run:
        log_params({"log": str(log), "records": len(records), "min_samples": min_samples})
        log_params(
            {
                f"threshold.{name}": "none" if e.threshold is None else str(e.threshold)
                for name, e in chosen.items()
            }
        )
        metrics: dict[str, float] = {"decisions": float(len(actions))}
        for name, entry in chosen.items():
            metrics[f"samples.{name}"] = float(entry.samples)
            if entry.threshold is not None:
                metrics[f"expected_value.{name}"] = entry.expected_value
                metrics[f"execute_all_value.{name}"] = entry.execute_all_value
                metrics[f"executed_share.{name}"] = entry.executed_share
        log_metrics(metrics)
        document = ThresholdsFile(
            thresholds=chosen,
            policy_name=",".join(policies),
            policy_version=",".join(sorted({r.policy_version for r in records})),
            scenarios=(f"log:{log}",),
            seeds=(),
            horizon=0,
            stride=0,
            mlflow_run_id=run.info.run_id,
        )
        written = write_thresholds(document, output)
        mlflow.log_artifact(str(written), "thresholds")
    return document
