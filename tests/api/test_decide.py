"""The decision API through real HTTP: decide, batches, rewards, idempotency, bad input."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from agent import audit, decision_log
from agent.models import AuditLog, DecisionRecord
from api.decisions import CHAIN_ATTEMPTS, DECISIONS_AUDIT, REWARD_AUDIT, committed, request_hash
from api.problems import Problem
from api.schemas import DecideRequest
from environment.actions import ACTION_NAMES
from environment.kpis import N_OBS
from tests.api.conftest import KPIS, Api, start

PROPENSITY_TOLERANCE = 1e-6


def _raw(api: Api, url: str, text: str, role: str = "client") -> Any:
    headers = {**api.headers(role), "content-type": "application/json"}
    return api.client.post(url, headers=headers, content=text)


def test_decide_answers_the_contract(api: Api) -> None:
    response = api.post("/api/v1/decide", "client", {"kpis": KPIS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "event_id", "action", "confidence", "probabilities", "policy", "policy_version",
        "verdict", "reward_deadline",
    }  # fmt: skip
    assert list(body["probabilities"]) == list(ACTION_NAMES)
    assert abs(sum(body["probabilities"].values()) - 1.0) <= PROPENSITY_TOLERANCE
    assert body["probabilities"][body["action"]] > 0
    assert body["verdict"]["verdict"] in ("executed", "needs_approval", "blocked")
    assert body["reward_deadline"].endswith("Z")
    assert (body["policy"], body["policy_version"]) == ("rules", "1")


def test_decide_reward_and_the_log(api: Api, tmp_path: Path) -> None:
    decided = api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "ev-1"}).json()
    rewarded = api.post("/api/v1/events/ev-1/reward", "client", {"value": 2.5})
    assert rewarded.status_code == 200, rewarded.text
    assert rewarded.json()["reward_source"] == "reported"
    with Session(api.engine) as session:
        decision_log.export_jsonl(session, tmp_path / "log.jsonl")
    (line,) = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert line["event_id"] == "ev-1" and line["source"] == "api"
    assert (line["reward"], line["reward_source"]) == (2.5, "reported")
    assert line["proposed_action"] == decided["action"]
    assert line["probabilities"] == list(decided["probabilities"].values())
    assert line["kpis"] == KPIS
    assert len(line["obs"]) == N_OBS


def test_reward_errors(api: Api) -> None:
    api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "ev-1"})
    assert api.post("/api/v1/events/nope/reward", "client", {"value": 1}).status_code == 404
    assert api.post("/api/v1/events/ev-1/reward", "client", {"value": 1}).status_code == 200
    second = api.post("/api/v1/events/ev-1/reward", "client", {"value": 5})
    assert second.status_code == 409 and "already has a reported reward" in second.json()["detail"]
    api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "ev-late"})
    with Session(api.engine) as session:
        session.execute(
            update(DecisionRecord)
            .where(DecisionRecord.event_id == "ev-late")
            .values(reward_deadline=datetime(2020, 1, 1))
        )
        session.commit()
    late = api.post("/api/v1/events/ev-late/reward", "client", {"value": 5})
    assert late.status_code == 410
    assert (late.json()["reward"], late.json()["reward_source"]) == (0.0, "default")
    with Session(api.engine) as session:
        record = decision_log.find_by_event_id(session, "ev-late")
        assert record is not None and record.reward_source == "default"


@pytest.mark.parametrize(
    ("value", "status"),
    [(-1000.0, 200), (1000.0, 200), (-1000.001, 422), (1000.001, 422), ("1", 422), (True, 422)],
)
def test_reward_range(api: Api, value: object, status: int) -> None:
    api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "ev"})
    assert api.post("/api/v1/events/ev/reward", "client", {"value": value}).status_code == status


def test_idempotency(api: Api) -> None:
    body = {"kpis": KPIS, "event_id": "same"}
    first = api.post("/api/v1/decide", "client", body).json()
    assert api.post("/api/v1/decide", "client", body).json() == first
    changed = api.post("/api/v1/decide", "client", {**body, "excluded_actions": ["data_fix"]})
    assert changed.status_code == 422 and "different request" in changed.json()["detail"]
    with Session(api.engine) as session:
        assert session.query(DecisionRecord).filter_by(event_id="same").count() == 1


def _kpis(**changes: object) -> dict[str, object]:
    return {**KPIS, **changes}


@pytest.mark.parametrize(
    ("body", "field", "match"),
    [
        ({"kpis": _kpis(activation_rate=1.5)}, "kpis.activation_rate", "less than or equal to 1"),
        ({"kpis": _kpis(health_score=-0.1)}, "kpis.health_score", "greater than or equal to 0"),
        ({"kpis": _kpis(mrr=-1.0)}, "kpis.mrr", "greater than or equal to 0"),
        ({"kpis": _kpis(bogus=1.0)}, "kpis", r"unknown KPI names \['bogus'\]; allowed"),
        ({"kpis": {"mrr": 1.0}}, "kpis", "KPIs missing"),
        ({"kpis": _kpis(mrr="high")}, "kpis.mrr", "number"),
        ({"kpis": _kpis(mrr=True)}, "kpis.mrr", "number"),
        ({"kpis": KPIS, "excluded_actions": ["nope"]}, "excluded_actions", r"names \['nope'\]"),
        ({"kpis": KPIS, "excluded_actions": ["noop", "noop"]}, "excluded_actions", "duplicates"),
        ({"kpis": KPIS, "excluded_actions": list(ACTION_NAMES)}, "excluded_actions", "at most 12"),
        ({"kpis": KPIS, "recent_actions": {"nope": 1}}, "recent_actions", "unknown action names"),
        ({"kpis": KPIS, "recent_actions": {"noop": -1}}, "recent_actions.noop", ">= 0|equal to 0"),
        ({"kpis": KPIS, "recent_actions": {"noop": 100_001}}, "recent_actions.noop", "less than"),
        ({"kpis": KPIS, "mode": "execute"}, "mode", "advise"),
        ({"kpis": KPIS, "event_id": "has space"}, "event_id", "pattern"),
        ({"kpis": KPIS, "event_id": "x" * 65}, "event_id", "at most 64"),
        ({"kpis": KPIS, "surprise": 1}, "surprise", "Extra inputs"),
        ({}, "kpis", "Field required"),
    ],
)  # fmt: skip
def test_bad_input_is_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str, match: str
) -> None:
    response = api.post("/api/v1/decide", "client", body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert any(e["field"] == field for e in errors), errors
    assert any(re.search(match, e["message"]) for e in errors), errors


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_kpis_are_422(api: Api, literal: str) -> None:
    text = json.dumps({"kpis": KPIS}).replace('"mrr": 90000.0', f'"mrr": {literal}')
    response = _raw(api, "/api/v1/decide", text)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "kpis.mrr"


def test_malformed_json_is_422(api: Api) -> None:
    response = _raw(api, "/api/v1/decide", '{"kpis": ')
    assert response.status_code == 422 and response.json()["status"] == 422


def test_boundary_kpis_are_accepted(api: Api) -> None:
    edges = _kpis(activation_rate=0.0, d7_retention=1.0, health_score=100.0, mrr=0.0)
    assert api.post("/api/v1/decide", "client", {"kpis": edges}).status_code == 200


def test_excluded_actions_are_never_chosen(api: Api) -> None:
    chosen = api.post("/api/v1/decide", "client", {"kpis": KPIS}).json()["action"]
    excluded = [chosen, "price_increase"]
    body = api.post("/api/v1/decide", "client", {"kpis": KPIS, "excluded_actions": excluded}).json()
    assert body["action"] not in excluded
    assert all(body["probabilities"][name] == 0.0 for name in excluded)
    assert abs(sum(body["probabilities"].values()) - 1.0) <= PROPENSITY_TOLERANCE


def test_kill_switch_blocks_decisions(api: Api) -> None:
    api.post("/api/v1/kill-switch", "operator", {"on": True, "reason": "incident 42"})
    body = api.post("/api/v1/decide", "client", {"kpis": KPIS}).json()
    if body["action"] != "noop":
        assert body["verdict"]["verdict"] == "blocked"
        assert "incident 42" in body["verdict"]["reasons"][0]


def test_batch_answers_each_item(api: Api) -> None:
    items = [
        {"kpis": KPIS, "event_id": "b1"},
        {"kpis": KPIS, "event_id": "b1"},
        {"kpis": KPIS, "event_id": "b1", "excluded_actions": ["noop"]},
        {"kpis": _kpis(health_score=10.0)},
    ]
    response = api.post("/api/v1/decide/batch", "client", {"items": items})
    assert response.status_code == 200, response.text
    answers = response.json()["items"]
    assert [a["status"] for a in answers] == [200, 200, 422, 200]
    assert answers[0]["decision"] == answers[1]["decision"]
    assert "different request" in answers[2]["problem"]["detail"]
    single = api.post("/api/v1/decide", "client", {"kpis": _kpis(health_score=10.0)}).json()
    assert answers[3]["decision"]["action"] == single["action"]  # batch == one by one


@pytest.fixture
def small_limits(empty_db: Path, tmp_path: Path) -> Any:
    yield from start(empty_db, tmp_path, api_max_batch=3, api_max_body_bytes=4096)


def test_batch_limit(small_limits: Api) -> None:
    def batch(n: int) -> int:
        items = [{"kpis": KPIS}] * n
        return small_limits.post("/api/v1/decide/batch", "client", {"items": items}).status_code

    assert batch(3) == 200
    assert batch(4) == 413
    assert batch(0) == 422


def test_body_limit(small_limits: Api) -> None:
    base = json.dumps({"kpis": KPIS, "event_id": ""})
    padding = 4096 - len(base)
    at_limit = base.replace('"event_id": ""', '"event_id": "' + "x" * padding + '"')
    assert len(at_limit.encode()) == 4096 + 0
    assert _raw(small_limits, "/api/v1/decide", at_limit).status_code == 422  # read, then refused
    over = at_limit.replace('"x', '"xx', 1)
    response = _raw(small_limits, "/api/v1/decide", over)
    assert response.status_code == 413
    assert "exceeds the limit of 4096 bytes" in response.json()["detail"]


def test_reward_deadline_is_the_actions_default_window(api: Api) -> None:
    body = api.post("/api/v1/decide", "client", {"kpis": KPIS}).json()
    deadline = datetime.fromisoformat(body["reward_deadline"].removesuffix("Z"))
    window = decision_log.REWARD_WINDOWS[body["action"]].default
    now = datetime.utcnow()
    assert now + window - timedelta(minutes=1) <= deadline <= now + window


def _audited(api: Api, action: str) -> list[AuditLog]:
    with Session(api.engine) as session:
        return list(
            session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        )


def test_every_decision_is_in_the_audit_trail_once(api: Api) -> None:
    one = api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "a-1"}).json()
    api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "a-1"})  # a repeat: nothing new
    items = [{"kpis": KPIS, "event_id": f"a-b{i}"} for i in range(3)] + [{"kpis": KPIS}]
    batch = api.post("/api/v1/decide/batch", "client", {"items": items}).json()["items"]
    single, many = _audited(api, DECISIONS_AUDIT)  # one entry per request that decided
    assert (single.actor, single.target) == ("client-key", "a-1")
    assert single.details["decisions"] == [
        {"event_id": "a-1", "action": one["action"], "verdict": one["verdict"]["verdict"]}
    ]
    assert single.details["policy"] == "rules 1"
    assert (many.actor, many.target) == ("client-key", "4 decisions")
    assert [d["event_id"] for d in many.details["decisions"]] == [
        item["decision"]["event_id"] for item in batch
    ]
    with Session(api.engine) as session:
        assert audit.verify_chain(session).ok


def test_a_batch_of_repeats_and_conflicts_adds_no_entry(api: Api) -> None:
    api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "r-1"})
    items = [{"kpis": KPIS, "event_id": "r-1"}, {"kpis": _kpis(mrr=1.0), "event_id": "r-1"}]
    answers = api.post("/api/v1/decide/batch", "client", {"items": items}).json()["items"]
    assert [a["status"] for a in answers] == [200, 422]
    assert len(_audited(api, DECISIONS_AUDIT)) == 1


def test_rewards_are_audited_and_refusals_are_not(api: Api) -> None:
    api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "w-1"})
    assert api.post("/api/v1/events/w-1/reward", "client", {"value": 1.5}).status_code == 200
    assert api.post("/api/v1/events/w-1/reward", "client", {"value": 2.0}).status_code == 409
    assert api.post("/api/v1/events/w-2/reward", "client", {"value": 2.0}).status_code == 404
    (entry,) = _audited(api, REWARD_AUDIT)
    assert (entry.actor, entry.target) == ("client-key", "w-1")
    assert entry.details == {"reported": 1.5, "reward": 1.5, "source": "reported", "expired": False}


def test_a_late_reward_audits_the_default_that_stands(api: Api) -> None:
    api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "late"})
    with Session(api.engine) as session:
        session.execute(
            update(DecisionRecord)
            .where(DecisionRecord.event_id == "late")
            .values(reward_deadline=datetime(2020, 1, 1))
        )
        session.commit()
    assert api.post("/api/v1/events/late/reward", "client", {"value": 9.0}).status_code == 410
    (entry,) = _audited(api, REWARD_AUDIT)
    assert entry.details == {"reported": 9.0, "reward": 0.0, "source": "default", "expired": True}


def test_a_transaction_that_keeps_failing_is_a_503_after_the_attempts(api: Api) -> None:
    api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "taken"})
    attempts: list[int] = []
    with Session(api.engine) as session:
        (row,) = session.execute(select(DecisionRecord.__table__).limit(1)).mappings().all()
        copy = {k: v for k, v in row.items() if k != "id"}  # the same event_id: refused each time

        def work() -> None:
            attempts.append(1)
            decision_log.record_decisions(session, [copy])

        with pytest.raises(Problem) as refused:
            committed(session, work)
    assert refused.value.status == 503 and "retry" in refused.value.detail
    assert len(attempts) == CHAIN_ATTEMPTS


def test_request_hashes_match_those_stored_before_orjson() -> None:
    """Hashes stored by the json-module encoding (sorted keys, no spaces) still match, so a
    repeated event_id logged before the switch is still recognised."""
    body = DecideRequest.model_validate(
        {"kpis": KPIS, "excluded_actions": ["noop"], "recent_actions": {"data_fix": 3}}
    )
    dumped = body.model_dump(mode="json", exclude={"event_id"})
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":")).encode()
    assert request_hash(body) == hashlib.sha256(canonical).hexdigest()
