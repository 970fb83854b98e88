"""The feedback run: figures of a simulated log logged to a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import yaml

from cli.main import main
from experiments.feedback import log_feedback
from experiments.tracking import Tracking
from policies.exploration import LogConfig, simulate_log
from policies.logged import write_jsonl
from policies.registry import load_policy


def test_a_feedback_run_logs_its_figures(tracking: Tracking) -> None:
    records = simulate_log(
        load_policy("random"), LogConfig(scenarios=("steady",), seeds=(0,), explore=1.0, steps=150)
    )
    report, run_id = log_feedback(
        records, [("price_increase", 0.9, "approved")], tracking=tracking, n_bootstrap=50
    )
    run = tracking.client().get_run(run_id)
    assert run.data.metrics["calibration/brier"] == report["calibration"]["brier"]
    assert run.data.metrics["uplift/data_fix"] == report["uplift"]["data_fix"]["uplift"]
    assert run.data.metrics["adoption/price_increase/0.8-1/approval_rate"] == 1.0
    assert run.data.params["records"] == "150"


def test_thresholds_from_a_log(tracking: Tracking, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    config = LogConfig(scenarios=("steady",), seeds=(0,), explore=1.0, steps=300)
    write_jsonl(log, simulate_log(load_policy("random"), config))
    output = tmp_path / "thresholds.yaml"
    argv = ["thresholds", "--evidence", "log", "--log", str(log), "--output", str(output)]
    assert main([*argv, "--min-samples", "5", "--tracking-uri", tracking.uri]) == 0
    document = yaml.safe_load(output.read_text())
    assert document["source"]["scenarios"] == [f"log:{log}"]
    evidence = document["evidence"]
    assert "noop" not in evidence
    assert sum(entry["samples"] for entry in evidence.values()) > 200  # ~12/13 of 300 acted
    assert set(document["thresholds"]) <= set(evidence)
    run = tracking.client().get_run(document["mlflow_run_id"])
    assert run.data.tags["evidence"] == "log"
