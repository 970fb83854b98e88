"""The ``autopilot`` experiment commands: thin shells with clear errors (exit status 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from experiments.models import CHALLENGER, CHAMPION, model_version
from experiments.tracking import Tracking

TINY = ["--set", "eval_scenarios=steady", "--set", "eval_seeds=2", "--no-progress"]


def _run(tracking: Tracking, *argv: str) -> int:
    return main([*argv, "--tracking-uri", tracking.uri, "--artifact-root", "artifacts"])


def test_train_evaluate_promote_thresholds_tune(
    tracking: Tracking, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tracking, "train", "--algo", "rules", *TINY) == 0
    out = capsys.readouterr().out
    assert "registered autopilot-policy version 1 as 'challenger'" in out
    assert "mlflow ui --backend-store-uri" in out
    assert model_version(tracking, CHALLENGER) is not None

    assert (
        _run(
            tracking,
            "evaluate",
            "--policies",
            "models:/autopilot-policy@challenger,noop",
            "--scenarios",
            "steady",
            "--seeds",
            "2",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "[noop] - [models:/autopilot-policy@challenger] (paired)" in out

    assert (
        _run(
            tracking,
            "promote",
            "--scenarios",
            "steady,mixed",
            "--seeds",
            "3",
            "--baselines",
            "noop",
        )
        == 0
    )
    assert "PROMOTED" in capsys.readouterr().out
    assert model_version(tracking, CHAMPION) is not None

    assert (
        _run(
            tracking,
            "thresholds",
            "--scenarios",
            "steady",
            "--seeds",
            "1",
            "--stride",
            "12",
            "--min-samples",
            "2",
            "--output",
            "out/t.yaml",
        )
        == 0
    )
    assert Path("out/t.yaml").is_file()
    assert "wrote out/t.yaml" in capsys.readouterr().out

    assert (
        _run(tracking, "tune", "--algo", "ucb1", "--trials", "1", "--set", "timesteps=540", *TINY)
        == 0
    )
    assert "trials complete 1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--algo", "xgboost"], "unknown algo 'xgboost'; allowed: ['ppo'"),
        (
            ["train", "--algo", "ppo", "--set", "n_steps=many"],
            "PPOParams.n_steps='many' is invalid: Input should be a valid integer",
        ),
        (["train", "--algo", "ppo", "--set", "wings=2"], "unknown --set key 'wings'; allowed:"),
        (["train", "--algo", "ppo", "--config", "missing.yaml"], "'missing.yaml' does not exist"),
        (["evaluate", "--policies", "rules,unicorn"], "unknown policy 'unicorn'; known:"),
        (["evaluate", "--policies", "rules", "--scenarios", "moon"], "unknown scenarios ['moon']"),
        (["promote"], "no 'challenger' version"),
        (
            ["thresholds", "--policy", "models:/autopilot-policy@champion"],
            "no registered model 'autopilot-policy'",
        ),
        (
            ["evaluate", "--policies", "models:/autopilot-policy@champion"],
            "no registered model 'autopilot-policy'",
        ),
        (
            ["tune", "--algo", "ppo", "--trials", "1", "--storage", "nonsense"],
            "Optuna storage 'nonsense' is not a database URL",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_value(
    tracking: Tracking, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert _run(tracking, *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"autopilot {argv[0]}: error: ")
    assert message in err
    assert "Traceback" not in err
