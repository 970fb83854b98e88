"""`autopilot simulate --log` and `autopilot ope`: a log from the simulator, estimates from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from environment.actions import N_ACTIONS
from policies.logged import read_jsonl
from policies.ope import ESTIMATORS


@pytest.fixture
def random_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """120 decisions of the uniform policy (explore 1: every propensity is 1/13)."""
    path = tmp_path / "log.jsonl"
    argv = ["simulate", "--policies", "noop", "--scenarios", "steady", "--seeds", "2"]
    assert main([*argv, "--steps", "60", "--log", str(path), "--explore", "1"]) == 0
    assert "wrote 120 decisions of noop (explore 1)" in capsys.readouterr().out
    return path


def test_simulate_log_writes_the_contract(random_log: Path) -> None:
    records = read_jsonl(random_log)
    assert len(records) == 120
    assert {r.source for r in records} == {"simulator"}
    assert all(r.propensity == pytest.approx(1 / N_ACTIONS, abs=1e-12) for r in records)
    assert all(r.reward_source == "computed" and r.reward is not None for r in records)
    assert {r.proposed_action for r in records} == {"noop"}
    assert len({r.action for r in records}) > 5  # explored
    assert records[1].timestamp > records[0].timestamp


def test_simulate_log_mixes_exploration_into_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    argv = ["simulate", "--policies", "noop", "--scenarios", "steady", "--seeds", "1"]
    assert main([*argv, "--steps", "5", "--log", str(path), "--explore", "0.26"]) == 0
    first = read_jsonl(path)[0]
    assert first.probabilities[0] == pytest.approx(0.74 + 0.02)
    assert first.probabilities[1] == pytest.approx(0.02)


def test_ope_json_has_every_estimate(random_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ope", "--log", str(random_log), "--policy", "noop", "--json", "--bootstrap", "50"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["used"] == 120 and report["records"] == 120
    assert [e["estimator"] for e in report["estimates"]] == list(ESTIMATORS)
    for estimate in report["estimates"]:
        assert estimate["low"] <= estimate["value"] <= estimate["high"]
        assert 1.0 <= estimate["ess"] <= 120.0
    # noop is taken in about 1/13 of the rounds: the ESS is that count, under the default 100
    assert report["estimates"][0]["warning"] is not None


def test_ope_table(random_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ope", "--log", str(random_log), "--policy", "random", "--estimators", "ips,dr"]
    assert main([*argv, "--bootstrap", "50", "--min-ess", "1"]) == 0
    out = capsys.readouterr().out
    assert "120 of 120 decisions used" in out
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["ips", "dr"]
    assert "warning" not in out  # the uniform target: every weight is 1, ESS = 120


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--estimators", "dr,xyz"], "unknown estimator 'xyz'"),
        (["--policy", "nope"], "unknown policy 'nope'"),
        (["--min-ess", "nan"], "--min-ess must be a finite number"),
        (["--clip", "0"], "clip=0.0"),
    ],
)
def test_ope_rejects_bad_input(
    random_log: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["ope", "--log", str(random_log), "--policy", "noop", "--bootstrap", "10"]
    assert main([*base, *argv]) == 2
    assert message in capsys.readouterr().err


def test_ope_names_a_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"event_id": "x"}\n')
    assert main(["ope", "--log", str(path), "--policy", "noop"]) == 2
    assert "line 1: field 'timestamp': missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policies", "noop,rules"], "one behaviour policy"),
        (["--explore", "1.5"], "--explore must be a number in [0, 1], got 1.5"),
        (["--explore", "-0.01"], "--explore must be a number in [0, 1], got -0.01"),
        (["--steps", "0"], "LogConfig.steps=0"),
    ],
)
def test_simulate_log_rejects_bad_input(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["simulate", "--policies", "noop", "--scenarios", "steady", "--seeds", "1"]
    assert main([*base, "--log", str(tmp_path / "x.jsonl"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_learn_joins_and_updates_on_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import datetime, timedelta

    from sqlalchemy.orm import Session

    from agent.db import make_engine, upgrade
    from agent.decision_log import record_decision
    from environment.kpis import N_OBS

    url = f"sqlite:///{tmp_path / 'learn.db'}"
    engine = make_engine(url)
    upgrade(engine)
    start = datetime(2026, 3, 1)
    with Session(engine) as session:
        for i, (mrr, alignment) in enumerate([(100.0, 50.0), (110.0, 60.0), (120.0, 70.0)]):
            record_decision(
                session,
                source="policy",
                decided_at=start + i * timedelta(days=1),
                policy_name="rules",
                policy_version="rules",
                kpis={"mrr": mrr, "alignment_score": alignment},
                obs=[0.5] * N_OBS,
                probabilities=[1 / N_ACTIONS] * N_ACTIONS,
                proposed_action="noop",
                confidence=0.8,
                verdict="executed",
                reasons=[],
                event_id=f"e{i}",
            )
        session.commit()
    engine.dispose()
    argv = ["learn", "--db", url, "--as-of", "2026-03-03T01:00", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["join"]["computed"] == 2 and report["join"]["open"] == 1
    assert report["learners"] == [{"learner": "linucb", "version": 1, "updates": 2, "n_updates": 2}]
    assert main(["learn", "--db", url, "--as-of", "2026-03-03T01:00"]) == 0
    assert "linucb: 0 updates, 2 in total, no new version" in capsys.readouterr().out
    assert main(["learn", "--db", url, "--learners", "magic"]) == 2
    assert "unknown learner 'magic'" in capsys.readouterr().err
