"""The decision log on a real SQLite file: record, reward join by event id, windows, export."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agent import decision_log as log
from agent.models import DecisionRecord
from environment.actions import ACTION_NAMES, ACTIONS, N_ACTIONS, action_index
from environment.kpis import KPI_NAMES, N_OBS

AT = datetime(2025, 6, 1, 12, 0)


def _uniform() -> list[float]:
    return [1.0 / N_ACTIONS] * N_ACTIONS


def _record(session: Session, **overrides: object) -> DecisionRecord:
    fields: dict[str, object] = {
        "source": "api",
        "decided_at": AT,
        "policy_name": "rules",
        "policy_version": "rules",
        "kpis": dict.fromkeys(KPI_NAMES, 0.5),
        "obs": [0.5] * N_OBS,
        "probabilities": _uniform(),
        "proposed_action": "payment_retry",
        "confidence": 0.9,
        "verdict": "executed",
        "reasons": ["ok"],
    }
    fields.update(overrides)
    return log.record_decision(session, **fields)  # type: ignore[arg-type]


def test_windows_cover_every_action_default_within_maximum() -> None:
    assert set(log.REWARD_WINDOWS) == set(ACTION_NAMES)
    for spec in ACTIONS:
        window = log.REWARD_WINDOWS[spec.name]
        delay = spec.delay_steps * log.CYCLE_STEP
        assert window.default == delay + log.OBSERVATION_PERIOD
        assert window.maximum == delay + log.LONGEST_OBSERVATION
        assert timedelta(0) < window.default <= window.maximum
    assert log.REWARD_WINDOWS["noop"].default == timedelta(days=1)
    assert log.REWARD_WINDOWS["ship_feature"].default == timedelta(days=15)


def test_reward_deadline_bounds() -> None:
    maximum = log.REWARD_WINDOWS["noop"].maximum
    assert log.reward_deadline("noop", AT) == AT + timedelta(days=1)
    assert log.reward_deadline("noop", AT, maximum) == AT + maximum
    assert log.reward_deadline("noop", AT, maximum - timedelta(seconds=1)) < AT + maximum
    with pytest.raises(ValueError, match=r"outside \(0, 7 days"):
        log.reward_deadline("noop", AT, maximum + timedelta(seconds=1))
    with pytest.raises(ValueError, match="outside"):
        log.reward_deadline("noop", AT, timedelta(0))
    with pytest.raises(ValueError, match="unknown action 'nope'"):
        log.reward_deadline("nope", AT)


def test_executed_action_is_noop_unless_executed() -> None:
    assert log.executed_action("data_fix", "executed") == "data_fix"
    for verdict in ("dry_run", "needs_approval", "blocked"):
        assert log.executed_action("data_fix", verdict) == "noop"


def test_record_sets_propensity_of_the_executed_action(sqlite_engine: Engine) -> None:
    probabilities = [0.0] * N_ACTIONS
    probabilities[action_index("payment_retry")] = 1.0
    with Session(sqlite_engine) as session:
        ran = _record(session, probabilities=probabilities)
        held = _record(session, probabilities=probabilities, verdict="needs_approval")
        session.commit()
        assert (ran.executed_action, ran.propensity, ran.ope_usable) == ("payment_retry", 1.0, True)
        # noop ran, and the policy gave noop no probability: not usable for off-policy estimates
        assert (held.executed_action, held.propensity, held.ope_usable) == ("noop", None, False)
        assert ran.reward_deadline == AT + log.REWARD_WINDOWS["payment_retry"].default
        assert ran.event_id and ran.event_id != held.event_id


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"source": "cron"}, "unknown decision source 'cron'"),
        ({"proposed_action": "nope"}, "unknown action 'nope'"),
        ({"executed": "nope"}, "unknown action 'nope'"),
        ({"probabilities": [1.0]}, "one entry per action"),
        ({"event_id": ""}, "1 to 64 characters"),
        ({"event_id": "x" * 65}, "1 to 64 characters"),
    ],
)
def test_record_refuses_bad_input(
    sqlite_engine: Engine, overrides: dict[str, object], match: str
) -> None:
    with Session(sqlite_engine) as session:
        with pytest.raises(ValueError, match=match):
            _record(session, **overrides)
        assert session.query(DecisionRecord).count() == 0


def test_event_id_of_64_characters_is_kept(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session:
        assert _record(session, event_id="x" * 64).event_id == "x" * 64


def test_report_reward_joins_once(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session:
        _record(session, event_id="e1")
        result = log.report_reward(session, "e1", 2.5, now=AT + timedelta(hours=1))
        session.commit()
        assert (result.reward, result.reward_source, result.expired) == (2.5, "reported", False)
        with pytest.raises(log.RewardConflict, match="already has a reported reward"):
            log.report_reward(session, "e1", 3.0, now=AT + timedelta(hours=2))
        assert log.find_by_event_id(session, "e1").reward == 2.5  # type: ignore[union-attr]


def test_report_reward_unknown_event(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session, pytest.raises(LookupError, match="'nope'"):
        log.report_reward(session, "nope", 1.0)


def test_report_reward_at_and_after_the_deadline(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session:
        record = _record(session, event_id="at")
        _record(session, event_id="late")
        deadline = record.reward_deadline
        assert deadline is not None
        on_time = log.report_reward(session, "at", 1.0, now=deadline)
        assert not on_time.expired
        late = log.report_reward(session, "late", 1.0, now=deadline + timedelta(microseconds=1))
        assert late.expired
        assert (late.reward, late.reward_source) == (log.DEFAULT_REWARD, "default")
        again = log.report_reward(session, "late", 1.0, now=deadline + timedelta(days=1))
        assert again.expired and again.reward_source == "default"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1000.001, 1000.001])
def test_report_reward_refuses_out_of_range(sqlite_engine: Engine, value: float) -> None:
    with Session(sqlite_engine) as session:
        _record(session, event_id="e1")
        with pytest.raises(ValueError, match=r"\[-1000.0, 1000.0\]"):
            log.report_reward(session, "e1", value)


@pytest.mark.parametrize("value", [-1000.0, 1000.0])
def test_report_reward_accepts_the_bounds(sqlite_engine: Engine, value: float) -> None:
    with Session(sqlite_engine) as session:
        _record(session, event_id="e1")
        assert log.report_reward(session, "e1", value, now=AT).reward == value


def test_apply_default_rewards_only_past_the_deadline(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session:
        early = _record(session, proposed_action="noop")
        later = _record(session, proposed_action="ship_feature")
        assert log.apply_default_rewards(session, now=early.reward_deadline) == 0
        after = early.reward_deadline + timedelta(seconds=1)  # type: ignore[operator]
        assert log.apply_default_rewards(session, now=after) == 1
        session.refresh(early)
        session.refresh(later)
        assert (early.reward, early.reward_source) == (0.0, "default")
        assert later.reward is None


def test_export_jsonl_has_the_contract_keys(sqlite_engine: Engine, tmp_path: Path) -> None:
    with Session(sqlite_engine) as session:
        _record(session, event_id="e1")
        _record(session, event_id="e2", verdict="blocked")
        log.report_reward(session, "e1", 1.5, now=AT)
        session.commit()
        path = tmp_path / "log.jsonl"
        assert log.export_jsonl(session, path) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert list(lines[0]) == [
        "event_id", "timestamp", "cycle_id", "source", "policy", "policy_version", "kpis",
        "obs", "probabilities", "proposed_action", "action", "propensity", "ope_usable",
        "confidence", "verdict", "reasons", "execution_id", "reward", "reward_joined_at",
        "reward_source",
    ]  # fmt: skip
    assert lines[0]["timestamp"] == "2025-06-01T12:00:00Z"
    assert (lines[0]["reward"], lines[0]["reward_source"]) == (1.5, "reported")
    assert lines[0]["reward_joined_at"] == "2025-06-01T12:00:00Z"
    assert (lines[1]["proposed_action"], lines[1]["action"]) == ("payment_retry", "noop")
    assert lines[1]["reward"] is None and lines[1]["reward_source"] is None
    assert not list(tmp_path.glob(".*partial"))


def test_export_window_filters(sqlite_engine: Engine, tmp_path: Path) -> None:
    with Session(sqlite_engine) as session:
        _record(session, event_id="old", decided_at=AT - timedelta(days=2))
        _record(session, event_id="new")
        session.commit()
        path = tmp_path / "log.jsonl"
        assert log.export_jsonl(session, path, since=AT - timedelta(days=1)) == 1
    assert json.loads(path.read_text())["event_id"] == "new"
