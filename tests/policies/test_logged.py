"""The decision-log record: validation, round trip through a file, the estimators' view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from environment.actions import ACTION_NAMES, N_ACTIONS
from environment.kpis import N_OBS
from policies.logged import (
    RECORD_KEYS,
    LogFormatError,
    LoggedDecision,
    bandit_feedback,
    format_timestamp,
    read_jsonl,
    write_jsonl,
)


def record_dict(**overrides: Any) -> dict[str, Any]:
    """A valid record as JSON: uniform probabilities, ``retention_campaign`` executed."""
    data: dict[str, Any] = {
        "event_id": "evt-1",
        "timestamp": "2026-12-01T23:30:00Z",
        "cycle_id": 3,
        "source": "simulator",
        "policy": "rules",
        "policy_version": "rules",
        "kpis": {"activation_rate": 0.41, "mrr": 120000.0},
        "obs": [0.5] * N_OBS,
        "probabilities": [1.0 / N_ACTIONS] * N_ACTIONS,
        "proposed_action": "retention_campaign",
        "action": "retention_campaign",
        "propensity": 1.0 / N_ACTIONS,
        "ope_usable": True,
        "confidence": 0.7,
        "verdict": "executed",
        "reasons": ["ok"],
        "execution_id": None,
        "reward": None,
        "reward_joined_at": None,
        "reward_source": None,
    }
    data.update(overrides)
    return data


def test_the_keys_are_the_contracts_in_order() -> None:
    assert list(RECORD_KEYS) == list(record_dict())


def test_round_trip_through_a_file_is_exact(tmp_path: Path) -> None:
    joined = record_dict(
        event_id="evt-2",
        reward=-0.125,
        reward_joined_at="2026-12-02T03:30:00.250000Z",
        reward_source="computed",
    )
    records = [LoggedDecision.from_dict(record_dict()), LoggedDecision.from_dict(joined)]
    path = tmp_path / "log.jsonl"
    assert write_jsonl(path, records) == 2
    assert read_jsonl(path) == records
    lines = path.read_text().splitlines()
    assert json.loads(lines[1]) == joined


def test_timestamps_are_utc_with_z() -> None:
    offset = LoggedDecision.from_dict(record_dict(timestamp="2026-12-02T01:30:00+02:00"))
    assert offset.timestamp == datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    assert offset.to_dict()["timestamp"] == "2026-12-01T23:30:00Z"
    naive_row = datetime(2026, 12, 1, 23, 30)  # how the database hands back a UTC time
    assert format_timestamp(naive_row) == "2026-12-01T23:30:00Z"
    east = datetime(2026, 12, 2, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(east) == "2026-12-01T23:30:00Z"


BAD_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"event_id": ""}, "event_id", "non-empty"),
    ({"timestamp": "2026-12-01T23:30:00"}, "timestamp", "no UTC offset"),
    ({"timestamp": "yesterday"}, "timestamp", "not ISO-8601"),
    ({"cycle_id": 1.0}, "cycle_id", "integer or null"),
    ({"cycle_id": True}, "cycle_id", "integer or null"),
    ({"source": "cron"}, "source", "allowed"),
    ({"kpis": {"happiness": 1.0}}, "kpis", "unknown KPI"),
    ({"kpis": {"mrr": "lots"}}, "kpis.mrr", "a number"),
    ({"obs": [0.5] * (N_OBS - 1)}, "obs", f"expected {N_OBS} numbers, got {N_OBS - 1}"),
    ({"obs": [0.5] * (N_OBS + 1)}, "obs", f"expected {N_OBS} numbers, got {N_OBS + 1}"),
    ({"obs": [float("nan")] * N_OBS}, "obs[0]", "finite"),
    ({"probabilities": [1.0] + [0.0] * (N_ACTIONS - 2)}, "probabilities", "expected 13"),
    ({"probabilities": [1.1, -0.1] + [0.0] * (N_ACTIONS - 2)}, "probabilities", ">= 0"),
    ({"probabilities": [0.5] + [0.0] * (N_ACTIONS - 1)}, "probabilities", "sum to 0.5"),
    ({"action": "reboot"}, "action", "allowed"),
    ({"proposed_action": "reboot"}, "proposed_action", "allowed"),
    ({"propensity": 0.0}, "propensity", r"outside \(0, 1\]"),
    ({"propensity": 0.5}, "propensity", "differs from probabilities"),
    ({"propensity": None}, "ope_usable", "requires a propensity"),
    ({"ope_usable": 1}, "ope_usable", "true or false"),
    ({"confidence": 1.5}, "confidence", r"outside \[0, 1\]"),
    ({"reasons": "ok"}, "reasons", "list of strings"),
    ({"reasons": [1]}, "reasons[0]", "a string"),
    ({"reward": 1.0}, "reward_joined_at", "null together or set together"),
    ({"reward": float("inf")}, "reward", "finite"),
    ({"reward_source": "guessed"}, "reward_source", "allowed"),
]


@pytest.mark.parametrize(("overrides", "field", "message"), BAD_FIELDS)
def test_a_bad_field_is_named(overrides: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(LogFormatError, match=message) as caught:
        LoggedDecision.from_dict(record_dict(**overrides))
    assert caught.value.field == field


def test_probability_sum_tolerance_boundary() -> None:
    slack = [1.0 / N_ACTIONS] * N_ACTIONS
    slack[0] += 0.9e-6  # just under the 1e-6 tolerance
    LoggedDecision.from_dict(record_dict(probabilities=slack))
    slack[0] += 0.2e-6  # just over
    with pytest.raises(LogFormatError, match="must sum to 1"):
        LoggedDecision.from_dict(record_dict(probabilities=slack))


def test_a_held_decision_without_probability_is_not_usable() -> None:
    probabilities = [0.0] * N_ACTIONS
    probabilities[ACTION_NAMES.index("price_increase")] = 1.0
    held = LoggedDecision.from_dict(
        record_dict(
            probabilities=probabilities,
            proposed_action="price_increase",
            action="noop",
            propensity=None,
            ope_usable=False,
            verdict="needs_approval",
        )
    )
    assert held.action_index == 0
    assert not held.ope_usable


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "expected a JSON object"),
        ({k: v for k, v in record_dict().items() if k != "reward"}, "'reward': missing"),
        ({**record_dict(), "extra": 1}, "'extra': unknown key"),
    ],
)
def test_bad_records_shapes(data: object, message: str) -> None:
    with pytest.raises(LogFormatError, match=message):
        LoggedDecision.from_dict(data, line=7)


def test_read_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    good = json.dumps(record_dict())
    path.write_text(f"{good}\n\n{good}\n{json.dumps(record_dict(confidence=2))}\n")
    with pytest.raises(LogFormatError, match=r"^line 4: field 'confidence'"):
        read_jsonl(path)
    path.write_text(f"{good}\n{{not json\n")
    with pytest.raises(LogFormatError, match=r"line 2: .*invalid JSON"):
        read_jsonl(path)


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write_jsonl(path, [LoggedDecision.from_dict(record_dict())])
    before = path.read_bytes()
    with pytest.raises(TypeError, match="record 1 is a dict"):
        write_jsonl(path, [LoggedDecision.from_dict(record_dict()), record_dict()])  # type: ignore[list-item]
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]


def test_bandit_feedback_keeps_usable_joined_records() -> None:
    joined = {"reward_joined_at": "2026-12-02T00:00:00Z", "reward_source": "reported"}
    records = [
        LoggedDecision.from_dict(record_dict(event_id="a", reward=1.0, **joined)),
        LoggedDecision.from_dict(record_dict(event_id="b")),  # no reward yet
        LoggedDecision.from_dict(
            record_dict(event_id="c", propensity=None, ope_usable=False, reward=0.0, **joined)
        ),
    ]
    feedback, counts = bandit_feedback(records)
    assert (counts.used, counts.no_reward, counts.not_usable) == (1, 1, 1)
    assert feedback.actions.tolist() == [ACTION_NAMES.index("retention_campaign")]
    assert feedback.rewards.tolist() == [1.0]
    np.testing.assert_allclose(feedback.pscores, [1.0 / N_ACTIONS])
    assert feedback.obs.shape == (1, N_OBS)
    assert feedback.probabilities.shape == (1, N_ACTIONS)
    with pytest.raises(ValueError, match="no record of 2 is usable"):
        bandit_feedback(records[1:])
    assert feedback.n_rounds == 1
    assert feedback.subset(np.array([], dtype=np.int64)).n_rounds == 0
