"""The operator's endpoints on a seeded business: cycles, approvals, undo, audit, kill switch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agent.models import Approval, CycleLock, Execution
from agent.orchestrator import cycle_lock
from tests.api.conftest import Api, start

APPROVE_EVERYTHING = """\
version: 1
defaults: {requires_approval: true, max_rows: null, max_share: null, cooldown_hours: 0}
"""


@pytest.fixture
def ops(seeded_db: Path, tmp_path: Path) -> Iterator[Api]:
    """Operators may run cycles; every action needs a human."""
    governance = tmp_path / "governance.yaml"
    governance.write_text(APPROVE_EVERYTHING)
    yield from start(seeded_db, tmp_path, api_seed_admin_only=False, governance_file=governance)


def _pending(api: Api) -> list[dict[str, Any]]:
    return api.get("/api/v1/approvals", "viewer", status="pending").json()["items"]


def test_cycle_is_a_dry_run_by_default(seeded_api: Api) -> None:
    for body in (None, {}, {"dry_run": True}):
        response = seeded_api.post("/api/autonomous/run-cycle", "admin", body)
        assert response.status_code == 200, response.text
        assert response.json()["mode"] == "dry_run"
    with Session(seeded_api.engine) as session:
        assert session.scalar(select(func.count()).select_from(Execution)) == 0


@pytest.mark.parametrize("body", [{"dry_run": "no"}, {"dry_run": 0}, {"live": True}])
def test_cycle_body_is_validated(seeded_api: Api, body: dict[str, Any]) -> None:
    assert seeded_api.post("/api/autonomous/run-cycle", "admin", body).status_code == 422


def test_monitor_endpoints_run_the_monitor_pass(seeded_api: Api) -> None:
    for path in ("auto-remediate", "self-heal", "monitor-and-respond"):
        body = seeded_api.post(f"/api/autonomous/{path}", "admin").json()
        assert body["kind"] == "monitor", path
    assert seeded_api.post("/api/autonomous/self-optimize", "admin").json()["kind"] == "full"


def test_a_running_cycle_is_409_naming_the_holder(seeded_api: Api) -> None:
    with cycle_lock(seeded_api.engine) as holder:
        response = seeded_api.post("/api/autonomous/run-cycle", "admin")
    assert response.status_code == 409
    body = response.json()
    assert body["holder"] == holder and holder in body["detail"]
    assert body["since"].endswith("Z")


def _lock_held(api: Api) -> bool:
    with Session(api.engine) as session:
        return session.scalar(select(func.count()).select_from(CycleLock)) == 1


def test_concurrent_cycles_one_runs_the_other_409(ops: Api) -> None:
    """While one live cycle holds the lock a second is refused; nothing is held twice."""
    for _ in range(5):
        first: list[int] = []

        def run_first(into: list[int] = first) -> None:
            response = ops.post("/api/autonomous/run-cycle", "operator", {"dry_run": False})
            into.append(response.status_code)

        runner = threading.Thread(target=run_first)
        runner.start()
        deadline = time.monotonic() + 30
        while runner.is_alive() and not _lock_held(ops) and time.monotonic() < deadline:
            time.sleep(0.002)
        second = ops.post("/api/autonomous/run-cycle", "operator2", {"dry_run": False})
        runner.join()
        if second.status_code == 409:  # the first held the lock: the case under test
            assert first == [200]
            assert "already running" in second.json()["detail"]
            break
        assert second.status_code == 200  # the first had finished already: try again
    else:
        pytest.fail("the first cycle never held the lock while the second was sent")
    with Session(ops.engine) as session:
        held = session.scalars(select(Approval.decision_id)).all()
        assert len(held) == len(set(held))
        assert session.scalar(select(func.count()).select_from(Execution)) == 0


def test_operator_cannot_approve_its_own_request(ops: Api) -> None:
    cycle = ops.post("/api/autonomous/run-cycle", "operator", {"dry_run": False})
    assert cycle.status_code == 200, cycle.text
    pending = _pending(ops)
    assert pending, cycle.json()["decisions"]
    approval = pending[0]["id"]
    own = ops.post(f"/api/v1/approvals/{approval}/approve", "operator")
    assert own.status_code == 403 and "its own request" in own.json()["detail"]
    approved = ops.post(f"/api/v1/approvals/{approval}/approve", "operator2", {"note": "ok"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["decided_by"] == "operator-two"
    again = ops.post(f"/api/v1/approvals/{approval}/approve", "operator2")
    assert again.status_code == 409 and "already approved" in again.json()["detail"]
    assert ops.post("/api/v1/approvals/999999/approve", "operator2").status_code == 404
    trail = ops.get("/api/v1/audit", "viewer", limit=50).json()["items"]
    assert any(e["action"] == "approval_approved" and e["actor"] == "operator-two" for e in trail)


def test_reject_and_undo(ops: Api) -> None:
    ops.post("/api/autonomous/run-cycle", "operator", {"dry_run": False})
    pending = _pending(ops)
    assert len(pending) >= 1
    rejected = ops.post(f"/api/v1/approvals/{pending[0]['id']}/reject", "operator2")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    executed = None
    for approval in pending[1:]:
        answer = ops.post(f"/api/v1/approvals/{approval['id']}/approve", "admin").json()
        if answer.get("execution_id"):
            executed = answer["execution_id"]
            break
    if executed is None:
        pytest.skip("no held decision with an undoable execution in this business")
    undone = ops.post(f"/api/v1/executions/{executed}/undo", "operator")
    assert undone.status_code == 200, undone.text
    assert undone.json()["status"] == "undone"
    assert ops.post(f"/api/v1/executions/{executed}/undo", "operator").status_code == 409
    assert ops.post("/api/v1/executions/999999/undo", "operator").status_code == 404


def test_kill_switch(api: Api) -> None:
    assert api.get("/api/v1/kill-switch", "viewer").json() == {"on": False, "reason": ""}
    missing = api.post("/api/v1/kill-switch", "operator", {"on": True})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "reason"
    assert (
        api.post("/api/v1/kill-switch", "operator", {"on": True, "reason": "x" * 501}).status_code
        == 422
    )
    on = api.post("/api/v1/kill-switch", "operator", {"on": True, "reason": "x" * 500})
    assert on.status_code == 200 and on.json()["on"] is True
    assert api.post("/api/v1/kill-switch", "operator", {"on": False}).json()["on"] is False
    trail = api.get("/api/v1/audit", "viewer").json()["items"]
    assert [e["action"] for e in trail[:2]] == ["kill_switch_off", "kill_switch_on"]
    assert {e["actor"] for e in trail[:2]} == {"operator-key"}


def test_audit_pages_cover_the_trail_once(api: Api) -> None:
    for i in range(7):
        api.post("/api/v1/kill-switch", "operator", {"on": i % 2 == 0, "reason": f"r{i}"})
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/audit", "viewer", **params).json()
        assert len(page["items"]) <= 3
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen))
    total = api.get("/api/v1/audit/verify", "viewer").json()
    assert total["ok"] and total["entries"] == len(seen)


@pytest.mark.parametrize(("limit", "status"), [(500, 200), (501, 422), (0, 422)])
def test_page_size_is_bounded(api: Api, limit: int, status: int) -> None:
    assert api.get("/api/v1/audit", "viewer", limit=limit).status_code == status
    assert api.get("/api/autonomous/decisions", "admin", limit=limit).status_code == status


def test_system_state_and_readouts(seeded_api: Api) -> None:
    seeded_api.post("/api/autonomous/run-cycle", "admin")
    state = seeded_api.get("/api/autonomous/system-state", "admin").json()
    assert state["mode"] == "dry_run" and state["last_cycle"]["status"] == "finished"
    assert state["policy"]["name"] == "rules"
    for path in (
        "/api/autonomous/decisions",
        "/api/autonomous/learning",
        "/api/autonomous/optimization-opportunities",
        "/api/ml/feedback",
        "/api/ml/optimize-thresholds",
        "/api/ml/suggestion-quality",
    ):
        assert seeded_api.get(path, "admin").status_code == 200, path
    decisions = seeded_api.get("/api/autonomous/decisions", "admin").json()["items"]
    assert decisions and decisions[0]["source"] in ("policy", "self_healing")
