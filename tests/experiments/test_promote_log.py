"""``autopilot promote --evidence log``: the HCPI gate on a simulator log, evidence in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from experiments.models import CHAMPION, model_version, set_alias
from experiments.promote import promote_from_log
from experiments.tracking import Tracking
from policies.exploration import LogConfig, simulate_log
from policies.gate import GateConfig
from policies.logged import write_jsonl
from policies.registry import load_policy
from tests.experiments.test_promote import _register

GATE = GateConfig(min_samples=100, min_ess=20.0)


@pytest.fixture(scope="module")
def uniform_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~1000 decisions of uniform exploration on the steady business. On one-step rewards
    noop (no action cost) is far better than random (which pays for every action and takes
    price moves at random)."""
    path = tmp_path_factory.mktemp("log") / "uniform.jsonl"
    config = LogConfig(scenarios=("steady",), seeds=(0, 1, 2, 3), explore=1.0, steps=300)
    write_jsonl(path, simulate_log(load_policy("random"), config))
    return path


def test_a_better_challenger_is_promoted_and_the_alias_moves(
    tracking: Tracking, uniform_log: Path
) -> None:
    random = _register(tracking, "random")
    set_alias(tracking, CHAMPION, random)
    noop = _register(tracking, "noop")  # now @challenger
    decision = promote_from_log(uniform_log, config=GATE, tracking=tracking)
    assert decision.promoted, decision.gate.reason
    assert decision.champion == f"models:/autopilot-policy/{random}"
    assert decision.champion_version == noop
    assert str(model_version(tracking, CHAMPION).version) == noop  # type: ignore[union-attr]
    run = tracking.client().get_run(decision.run_id)
    assert run.data.tags["decision"] == "promoted" and run.data.tags["evidence"] == "log"
    assert run.data.metrics["gate/lower_bound"] > 0


def test_a_worse_challenger_is_refused(tracking: Tracking, uniform_log: Path) -> None:
    noop = _register(tracking, "noop")
    set_alias(tracking, CHAMPION, noop)
    _register(tracking, "rules")
    decision = promote_from_log(uniform_log, config=GATE, tracking=tracking)
    assert not decision.promoted
    assert "no solution found" in decision.gate.reason
    assert str(model_version(tracking, CHAMPION).version) == noop  # type: ignore[union-attr]
    assert tracking.client().get_run(decision.run_id).data.tags["decision"] == "kept"


def test_the_cli_decides_from_a_log(
    tracking: Tracking, uniform_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["promote", "--evidence", "log", "--log", str(uniform_log), "--tracking-uri"]
    argv += [tracking.uri, "--challenger", "rules", "--champion", "noop"]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("KEPT: no solution found")
    assert main(["promote", "--evidence", "log", "--tracking-uri", tracking.uri]) == 2
    assert "--evidence log needs --log" in capsys.readouterr().err


def test_ope_reads_a_registered_model(
    tracking: Tracking, uniform_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(tracking, "noop")
    argv = ["ope", "--log", str(uniform_log), "--policy", "models:/autopilot-policy@challenger"]
    argv += ["--tracking-uri", tracking.uri]
    assert main([*argv, "--estimators", "ips", "--bootstrap", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    noop = main(
        [
            "ope",
            "--log",
            str(uniform_log),
            "--policy",
            "noop",
            "--estimators",
            "ips",
            "--bootstrap",
            "20",
            "--json",
        ]
    )
    assert noop == 0
    assert json.loads(capsys.readouterr().out)["estimates"] == report["estimates"]
