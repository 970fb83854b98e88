"""The agent's command-line group, end to end on a seeded SQLite file."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, delete, select

from agent.db import session_factory
from agent.models import Approval, AuditLog, Execution
from agent.seed import SeedResult
from cli.main import main


def test_cycle_approvals_undo_audit_and_kill_switch(
    seeded: tuple[Engine, SeedResult], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, result = seeded
    db = ["--db", str(engine.url)]
    at = result.as_of.isoformat()
    assert main(["cycle", *db, "--as-of", at, "--policy", "rules"]) == 0
    out = capsys.readouterr().out
    assert "(full, dry_run)" in out and f"database {engine.url}" in out
    assert "governance: built-in defaults; thresholds: built-in thresholds" in out
    assert main(["cycle", "--live", *db, "--as-of", at, "--policy", "rules"]) == 0
    assert "needs_approval" in capsys.readouterr().out
    with session_factory(engine)() as session:
        approval_id = session.scalars(
            select(Approval.id).where(Approval.status == "pending")
        ).first()
    assert approval_id is not None
    assert main(["approvals", "approve", str(approval_id), "--by", "ann", "--now", at, *db]) == 0
    assert f"approval {approval_id} approved by ann" in capsys.readouterr().out
    assert main(["approvals", "approve", str(approval_id), "--by", "bob", "--now", at, *db]) == 1
    assert "already approved by ann" in capsys.readouterr().err
    with session_factory(engine)() as session:
        execution_id = session.scalars(select(Execution.id)).first()
    assert execution_id is not None
    assert main(["undo", str(execution_id), *db, "--by", "ops"]) == 0
    assert f"execution {execution_id}" in capsys.readouterr().out
    assert main(["undo", str(execution_id), *db]) == 1
    assert "already undone" in capsys.readouterr().err
    assert main(["approvals", "list", *db]) == 0
    assert main(["approvals", "approve", "424242", "--by", "ann", *db]) == 1
    assert "approval 424242 does not exist" in capsys.readouterr().err
    assert main(["kill-switch", "on", "--reason", "drill", *db]) == 0
    assert "kill switch on, set by operator: drill" in capsys.readouterr().out
    assert main(["monitor", *db, "--as-of", at]) == 0
    assert main(["kill-switch", "off", *db]) == 0
    assert main(["audit", "verify", *db]) == 0
    assert "audit trail intact" in capsys.readouterr().out
    with engine.begin() as connection:
        connection.execute(delete(AuditLog).where(AuditLog.id == 3))
    assert main(["audit", "verify", *db]) == 1
    assert "BROKEN at entry 3" in capsys.readouterr().out


def test_a_missing_database_is_reported(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cycle", "--db", f"sqlite:///{tmp_path}/nothing.db"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_a_bad_setting_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOPILOT_DB_URL", " ")
    assert main(["cycle"]) == 2
    assert "AUTOPILOT_DB_URL must be a non-empty string" in capsys.readouterr().err
