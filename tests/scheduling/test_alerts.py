"""Alerts: the outbox, the payloads, Standard Webhooks signatures, retries, dedup, restarts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from agent.alerts import deliver_pending, list_alerts, raise_alert
from agent.db import make_engine
from agent.models import Alert, AlertDelivery
from agent.settings import Settings
from agent.ticks import utc_now
from cli.main import main
from tests.scheduling.conftest import Spawn, child_env
from tests.scheduling.receiver import Received, Receiver, serve

SECRET = "whsec_" + base64.b64encode(b"a key of thirty-two bytes, fixed").decode()
T0 = datetime(2026, 12, 1, 12, 0, 0)


def hook(receiver: Receiver, name: str = "ops", **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": receiver.url, "secret": SECRET, "timeout_s": 2.0, **extra}


def settings_for(*hooks: dict[str, Any], **values: Any) -> Settings:
    return Settings(alert_webhooks=list(hooks), alert_backoff_s=0.05, **values)


@pytest.fixture
def engine(sqlite_url: str) -> Engine:
    return make_engine(sqlite_url)


def raise_one(engine: Engine, settings: Settings, key: str = "issue:billing", **kw: Any) -> int:
    with Session(engine) as session:
        alert = raise_alert(
            session,
            "critical_issue",
            key,
            "payments failing",
            "critical",
            details={"count": 3},
            settings=settings,
            **kw,
        )
        session.commit()
        assert alert is not None
        return alert.id


def assert_signed(request: Received) -> None:
    """The Standard Webhooks check, written out here rather than borrowed from the code."""
    message_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    assert abs(int(timestamp) - time.time()) < 300
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    versions = dict(part.split(",", 1) for part in request.headers["webhook-signature"].split())
    assert hmac.compare_digest(versions["v1"], expected)


def test_slack_and_pagerduty_receive_their_own_signed_payloads(engine: Engine) -> None:
    with serve() as slack, serve() as pager:
        settings = settings_for(
            hook(slack), hook(pager, "pd", format="pagerduty", routing_key="R0UTING")
        )
        raise_one(engine, settings)
        report = deliver_pending(engine, settings)
    assert len(report.delivered) == 2 and not report.failed
    for request in (*slack.requests, *pager.requests):
        assert_signed(request)
    message = json.loads(slack.requests[0].body)
    assert message["text"] == "[CRITICAL] critical_issue: payments failing"
    assert [block["type"] for block in message["blocks"]] == ["section", "context"]
    event = json.loads(pager.requests[0].body)
    assert (event["routing_key"], event["event_action"], event["dedup_key"]) == (
        "R0UTING",
        "trigger",
        "issue:billing",
    )
    assert {k: event["payload"][k] for k in ("summary", "source", "severity")} == {
        "summary": "payments failing",
        "source": "autopilot",
        "severity": "critical",
    }


def test_a_receiver_failing_twice_then_answering_200_gets_the_alert_once(engine: Engine) -> None:
    with serve([(503, "1"), (500, None)]) as receiver:
        settings = settings_for(hook(receiver))
        raise_one(engine, settings)
        report = deliver_pending(engine, settings)
    assert len(report.delivered) == 1
    assert [r.status for r in receiver.requests] == [503, 500, 200]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # one message
    for request in receiver.requests:
        assert_signed(request)
    first, second, _ = receiver.requests
    assert second.at - first.at >= 0.95  # Retry-After: 1 waited (clock granularity aside)
    with Session(engine) as session:
        delivery = session.scalars(select(AlertDelivery)).one()
        assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert deliver_pending(engine, settings).delivered == []  # nothing is sent twice


def test_a_client_error_fails_at_once_and_attempts_are_capped(engine: Engine) -> None:
    with serve([(400, None)]) as bad, serve([(503, None)] * 5) as down:
        settings = settings_for(hook(bad), hook(down, "down"), alert_max_attempts=3)
        raise_one(engine, settings)
        report = deliver_pending(engine, settings)
    assert len(report.failed) == 2
    assert len(bad.requests) == 1 and len(down.requests) == 3
    with Session(engine) as session:
        states = {d.webhook: (d.status, d.attempts) for d in session.scalars(select(AlertDelivery))}
    assert states == {"ops": ("failed", 1), "down": ("failed", 3)}


def test_a_restart_between_failures_loses_nothing(
    engine: Engine, sqlite_url: str, spawn: Spawn
) -> None:
    with serve([(503, "3"), (503, None)]) as receiver:
        settings = settings_for(hook(receiver))
        raise_one(engine, settings)
        env = child_env(
            db_url=sqlite_url,
            alert_webhooks=json.dumps([hook(receiver)]),
            alert_backoff_s="0.05",
        )
        deliverer = spawn("-m", "cli.main", "alerts", "deliver", env=env, log_name="deliver")
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the failure is recorded before the deliverer sleeps on Retry-After
        os.kill(deliverer.pid, signal.SIGKILL)
        deliverer.wait(10)
        with Session(engine) as session:
            delivery = session.scalars(select(AlertDelivery)).one()
            assert (delivery.status, delivery.attempts) == ("pending", 1)
            due = delivery.claimed_until
        assert due is not None
        while utc_now() <= due:
            time.sleep(0.1)
        report = deliver_pending(engine, settings)
    assert len(report.delivered) == 1
    assert [r.status for r in receiver.requests] == [503, 503, 200]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    with Session(engine) as session:
        assert session.scalars(select(AlertDelivery.attempts)).one() == 3


@pytest.mark.parametrize(
    ("later_s", "deduplicated"),
    [(59.999, True), (60.0, False), (60.001, False)],
    ids=["just-under-cooldown", "at-cooldown", "just-over-cooldown"],
)
def test_one_alert_per_key_within_the_cooldown(
    engine: Engine, later_s: float, deduplicated: bool
) -> None:
    settings = settings_for(alert_cooldown_s=60)
    first = raise_one(engine, settings, now=T0)
    with Session(engine) as session:
        again = raise_alert(
            session,
            "critical_issue",
            "issue:billing",
            "still failing",
            "critical",
            settings=settings,
            now=T0 + timedelta(seconds=later_s),
        )
        other = raise_alert(
            session,
            "critical_issue",
            "issue:orphans",
            "orphans",
            "critical",
            settings=settings,
            now=T0 + timedelta(seconds=1),
        )
        session.commit()
        assert other is not None
        assert (again is None) is deduplicated
        assert session.get(Alert, first).repeats == (1 if deduplicated else 0)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "key", "summary", "severity", "message"),
    [
        ("x", "k", "s", "fatal", r"severity must be one of .*got 'fatal'"),
        ("", "k", "s", "info", "kind must have 1 to 40 characters"),
        ("x", "k" * 201, "s", "info", "key must have 1 to 200 characters"),
        ("x", "k", "  ", "info", "summary must not be empty"),
    ],
)
def test_bad_alerts_are_refused(
    engine: Engine, kind: str, key: str, summary: str, severity: str, message: str
) -> None:
    with Session(engine) as session, pytest.raises(ValueError, match=message):
        raise_alert(session, kind, key, summary, severity, settings=settings_for())


def test_alerts_list_shows_each_alert_and_its_delivery_state(
    engine: Engine,
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with serve() as receiver:
        settings = settings_for(hook(receiver))
        raise_one(engine, settings)
        deliver_pending(engine, settings)
    with Session(engine) as session:
        views = list_alerts(session)
    assert [(v.kind, v.deliveries) for v in views] == [
        ("critical_issue", (("ops", "delivered", 1),))
    ]
    assert main(["alerts", "list", "--db", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "critical_issue" in out and "ops delivered (1 tries)" in out


def test_every_kill_switch_change_is_its_own_alert(engine: Engine) -> None:
    from agent.alerts import kill_switch_alert

    settings = settings_for(alert_cooldown_s=3600)
    with Session(engine) as session:
        on = kill_switch_alert(session, True, "incident 42", "alice", now=T0, settings=settings)
        off = kill_switch_alert(
            session, False, "", "bob", now=T0 + timedelta(seconds=1), settings=settings
        )
        again = kill_switch_alert(
            session, True, "", "bob", now=T0 + timedelta(seconds=2), settings=settings
        )
        session.commit()
        assert on is not None and off is not None and again is not None
        assert (on.severity, on.summary) == ("critical", "kill switch on by alice: incident 42")
        assert (off.severity, off.summary) == ("info", "kill switch off by bob")


def test_one_attempt_per_call_leaves_a_failure_pending_until_its_backoff(engine: Engine) -> None:
    with serve([(503, "1")]) as receiver:
        settings = settings_for(hook(receiver))
        raise_one(engine, settings)
        first = deliver_pending(engine, settings, attempts_now=1)
        with Session(engine) as session:
            delivery = session.scalars(select(AlertDelivery)).one()
        assert (first.pending, delivery.status, delivery.attempts) == ([delivery.id], "pending", 1)
        assert delivery.next_attempt_at - utc_now() > timedelta(seconds=0.5)  # Retry-After: 1
        assert deliver_pending(engine, settings, attempts_now=1).pending == []  # not due yet
        time.sleep(1.1)
        assert deliver_pending(engine, settings, attempts_now=1).delivered == [delivery.id]
    assert [r.status for r in receiver.requests] == [503, 200]
    with pytest.raises(ValueError, match="attempts_now must be at least 1 or None, got 0"):
        deliver_pending(engine, settings, attempts_now=0)
