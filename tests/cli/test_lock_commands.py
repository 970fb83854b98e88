"""`autopilot lock status` and `autopilot lock release --force --by NAME` on a real file."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from agent import lock
from agent.db import make_engine, upgrade
from agent.models import AuditLog, CycleLock
from cli.main import main


@pytest.fixture
def db(tmp_path: Path) -> list[str]:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return ["--db", url]


def _plant(db: list[str], holder: str) -> None:
    engine = make_engine(db[1])
    now = lock.utc_now()
    with engine.begin() as connection:
        connection.execute(
            insert(CycleLock).values(
                name=lock.LOCK_NAME,
                holder=holder,
                acquired_at=now,
                expires_at=now + lock.LEASE_TTL,
            )
        )
    engine.dispose()


def _dead_holder() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}:ghost"


def test_status_without_a_lock(db: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", "status", *db]) == 0
    assert capsys.readouterr().out.strip() == "no cycle lock is held: no cycle is running"


def test_status_names_a_live_holder_and_how_to_release_it(
    db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _plant(db, "elsewhere:4242:abcd")
    assert main(["lock", "status", *db]) == 0
    out = capsys.readouterr().out
    assert "elsewhere:4242:abcd (pid 4242 on elsewhere) since " in out
    assert "lease expires " in out and "alive" in out
    assert "autopilot lock release --force --by NAME" in out


def test_status_says_a_dead_holder_is_stale(
    db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    holder = _dead_holder()
    _plant(db, holder)
    assert main(["lock", "status", *db]) == 0
    out = capsys.readouterr().out
    assert "stale: its process" in out and "is gone" in out
    assert "the next cycle takes it over" in out


def test_release_without_a_lock_says_there_is_none(
    db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lock", "release", "--force", "--by", "ops", *db]) == 1
    assert "no cycle lock is held on this database" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["lock", "release", "--by", "ops"], ["lock", "release", "--force"]],
    ids=["no-force", "no-by"],
)
def test_release_needs_force_and_a_name(
    db: list[str], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _plant(db, "elsewhere:1:x")
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, *db])
    assert exit_info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_release_with_an_empty_name_is_refused_and_keeps_the_lock(
    db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _plant(db, "elsewhere:1:x")
    assert main(["lock", "release", "--force", "--by", "", *db]) == 2
    assert "names who acted" in capsys.readouterr().err
    engine = make_engine(db[1])
    with Session(engine) as session:
        assert session.scalars(select(CycleLock.holder)).all() == ["elsewhere:1:x"]
    engine.dispose()


def test_release_is_audited_and_the_trail_verifies(
    db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    holder = _dead_holder()
    _plant(db, holder)
    assert main(["lock", "release", "--force", "--by", "ops", *db]) == 0
    out = capsys.readouterr().out
    assert f"cycle lock released by ops: it was held by {holder}" in out
    assert "recorded aborted" in out
    engine = make_engine(db[1])
    with Session(engine) as session:
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        assert actions == ["cycle_lock_released", "cycle_aborted"]
        assert session.scalars(select(CycleLock)).all() == []
    engine.dispose()
    assert main(["audit", "verify", *db]) == 0
    assert main(["lock", "status", *db]) == 0


def test_releasing_a_live_holder_warns_that_its_cycle_may_go_on(
    db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _plant(db, "elsewhere:4242:abcd")
    assert main(["lock", "release", "--force", "--by", "ops", *db]) == 0
    assert "looked alive" in capsys.readouterr().err
