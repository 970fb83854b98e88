"""`autopilot serve`, `api-key` and `decisions export` as the command line runs them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from cli.main import main
from tests.api.conftest import KPIS
from tests.serving import start_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(empty_db: Path, tmp_path: Path) -> str:
    path = tmp_path / "cli.db"
    shutil.copyfile(empty_db, path)
    return f"sqlite:///{path}"


def test_api_key_lifecycle(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api-key", "create", "--role", "client", "--name", "svc", "--db", db]) == 0
    secret = capsys.readouterr().out.splitlines()[-1]
    assert secret.startswith("ap_") and len(secret) == 46
    assert main(["api-key", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert "svc" in listing and "active" in listing and secret not in listing
    assert "last used never" in listing
    assert main(["api-key", "create", "--role", "client", "--name", "svc", "--db", db]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["api-key", "create", "--role", "root", "--name", "x", "--db", db]) == 2
    assert "unknown role 'root'; allowed" in capsys.readouterr().err
    assert main(["api-key", "revoke", "svc", "--db", db]) == 0
    assert main(["api-key", "revoke", "svc", "--db", db]) == 2
    assert main(["api-key", "revoke", "nobody", "--db", db]) == 1
    assert "no API key named 'nobody'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "match"),
    [(["--port", "0"], "port must be"), (["--port", "65536"], "port must be"),
     (["--workers", "0"], "workers must be"), (["--workers", "65"], "workers must be")],
)  # fmt: skip
def test_serve_flags_are_validated(
    flags: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", *flags])
    assert exited.value.code == 2 and match in capsys.readouterr().err


def test_serve_refuses_a_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--db", f"sqlite:///{tmp_path}/none.db"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_serve_answers_over_loopback(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real `autopilot serve`: decide, report the reward, export the log."""
    assert main(["api-key", "create", "--role", "client", "--name", "svc", "--db", db]) == 0
    secret = capsys.readouterr().out.splitlines()[-1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOPILOT_POLICY_URI": "rules"}
    env.pop("AUTOPILOT_DB_URL", None)  # the --db flag names the database
    server = start_server(env, tmp_path / "server.log", extra=("--db", db), cwd=tmp_path)
    base = server.url
    try:
        headers = {"X-API-Key": secret}
        decided = httpx.post(
            f"{base}/api/v1/decide", json={"kpis": KPIS, "event_id": "loop-1"}, headers=headers
        )
        assert decided.status_code == 200, decided.text
        reward = httpx.post(
            f"{base}/api/v1/events/loop-1/reward", json={"value": 1}, headers=headers
        )
        assert reward.status_code == 200
        assert httpx.get(f"{base}/readyz").json()["ready"] is True
        assert "autopilot_http_requests_total" in httpx.get(f"{base}/metrics").text
    finally:
        server.stop()
    out = tmp_path / "log.jsonl"
    assert main(["decisions", "export", "--out", str(out), "--db", db]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["event_id"] == "loop-1" and record["reward_source"] == "reported"
