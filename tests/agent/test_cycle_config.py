"""Settings and what a cycle resolves from them: no working-directory surprises, errors that
name the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.cycle_config import (
    BUILT_IN_THRESHOLDS,
    resolve_cycle_config,
    resolve_thresholds_and_source,
)
from agent.db import resolve_url
from agent.guardrails import default_thresholds
from agent.settings import Settings

THRESHOLDS_FILE = "version: 1\nthresholds: {data_fix: 0.5}\n"


def test_a_thresholds_file_in_the_working_directory_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "guardrails").mkdir()
    (tmp_path / "guardrails" / "thresholds.yaml").write_text(THRESHOLDS_FILE)
    monkeypatch.chdir(tmp_path)
    thresholds, source = resolve_thresholds_and_source(None, settings=Settings())
    assert thresholds == default_thresholds() and source == BUILT_IN_THRESHOLDS


def test_a_configured_thresholds_file_is_read_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(THRESHOLDS_FILE)
    monkeypatch.setenv("AUTOPILOT_THRESHOLDS_FILE", str(path))
    config = resolve_cycle_config(settings=Settings(), policy="rules")
    assert config.thresholds["data_fix"] == 0.5 and config.thresholds_source == str(path)
    assert config.governance.source == "built-in defaults"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AUTOPILOT_DB_URL", "", "AUTOPILOT_DB_URL must be a non-empty string"),
        ("AUTOPILOT_DB_URL", "   ", "AUTOPILOT_DB_URL must be a non-empty string"),
        ("AUTOPILOT_POLICY_URI", "", "AUTOPILOT_POLICY_URI must be a non-empty string"),
        ("AUTOPILOT_THRESHOLDS_FILE", "missing.yaml", "AUTOPILOT_THRESHOLDS_FILE: file"),
        ("AUTOPILOT_GOVERNANCE_FILE", "missing.yaml", "AUTOPILOT_GOVERNANCE_FILE: file"),
        ("AUTOPILOT_KILL_SWITCH", "perhaps", "kill_switch"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)  # the missing files are relative to an empty folder
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_an_empty_url_argument_is_named() -> None:
    with pytest.raises(ValueError, match="database URL '' is empty"):
        resolve_url("")


def test_flags_override_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOPILOT_DB_URL", "sqlite:///from-env.db")
    settings = Settings()
    assert resolve_url(None, settings) == "sqlite:///from-env.db"
    flagged = settings.model_copy(update={"db_url": "sqlite:///from-flag.db"})
    assert resolve_url(None, flagged) == "sqlite:///from-flag.db"
    assert "AUTOPILOT_DB_URL" in os.environ  # the environment itself is untouched
