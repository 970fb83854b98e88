"""The README walk-through's outputs explain themselves: the kill switch says what it did and
who did it, observe explains its issue columns, seed-db what ``--users`` counts, thresholds
what ``inf`` and a missing threshold mean."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agent.db import make_engine, upgrade
from agent.settings import get_settings
from cli.experiment_commands import THRESHOLD_COLUMNS, threshold_text
from cli.main import main


@pytest.fixture
def db(tmp_path: Path) -> list[str]:
    url = f"sqlite:///{tmp_path / 'walk.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return ["--db", url]


def test_the_kill_switch_says_what_it_did_once(
    db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kill-switch", "on", "--reason", "incident 42", "--by", "ann", *db]) == 0
    out = capsys.readouterr().out
    assert "kill switch on, set by ann: incident 42" in out
    assert "kill switch set" not in out  # the stored reason's prefix is not repeated
    assert main(["kill-switch", "off", "--by", "ann", *db]) == 0
    assert "kill switch off, set by ann" in capsys.readouterr().out


def test_a_kill_switch_forced_on_by_the_environment_is_not_reported_off(
    db: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOPILOT_KILL_SWITCH", "on")
    get_settings.cache_clear()
    assert main(["kill-switch", "off", "--by", "ann", *db]) == 1
    assert "kill switch is still on: environment variable AUTOPILOT_KILL_SWITCH" in (
        capsys.readouterr().out
    )


def test_seed_and_observe_explain_their_numbers(
    db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["seed-db", "--users", "200", "--days", "7", "--seed", "1", "--quiet", *db]
    assert main(argv) == 0
    assert "--users 200 is the living accounts at the start" in capsys.readouterr().out
    assert main(["observe", *db]) == 0
    out = capsys.readouterr().out
    assert "count: the records affected" in out and "sample: a few of the affected rows" in out


@pytest.mark.parametrize(
    ("threshold", "action", "shown"),
    [
        (None, "data_fix", "built-in 0.75 (too few samples)"),
        (None, "price_increase", "built-in 0.8 (too few samples)"),
        (math.inf, "data_fix", "never (always needs a human)"),
        (1.0, "data_fix", "1"),
        (0.75, "data_fix", "0.75"),
        (0.0, "data_fix", "0 (always automatic)"),
    ],
)
def test_thresholds_say_what_inf_and_the_default_mean(
    threshold: float | None, action: str, shown: str
) -> None:
    assert threshold_text(threshold, action) == shown


def test_the_thresholds_table_names_its_columns() -> None:
    header = ["action", "automatic", "at", "confidence", ">=", "evidence"]
    assert THRESHOLD_COLUMNS.split() == header


def test_a_cycle_without_a_champion_creates_no_mlflow_store(
    db: list[str],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AUTOPILOT_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI", "AUTOPILOT_POLICY_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    assert main(["cycle", *db]) == 0
    captured = capfd.readouterr()
    assert not (tmp_path / "mlflow.db").exists()
    assert "INFO mlflow" not in captured.out + captured.err
    assert "no MLflow store at sqlite:///mlflow.db" in captured.out
    assert "policy rules" in captured.out
