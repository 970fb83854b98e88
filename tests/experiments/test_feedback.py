"""The feedback run: figures of a simulated log logged to a real MLflow store."""

from __future__ import annotations

from experiments.feedback import log_feedback
from experiments.tracking import Tracking
from policies.exploration import LogConfig, simulate_log
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
