"""The ML feedback loop's run: calibration, adoption and uplift from a decision log, in MLflow.

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
from typing import Any

import mlflow

from experiments.tracking import Tracking, configure, log_metrics, log_params, metric_key, start_run
from policies.feedback import adoption_report, calibration_report, uplift_report
from policies.logged import LoggedDecision

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
