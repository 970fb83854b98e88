"""`/metrics`: requests by route template, decisions by action and verdict, engine state."""

from __future__ import annotations

import re

from tests.api.conftest import KPIS, Api


def _value(text: str, metric: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(metric + "{") and not line.startswith(metric + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_routes_decisions_and_state(api: Api) -> None:
    before = api.client.get("/metrics").text
    decided = api.post("/api/v1/decide", "client", {"kpis": KPIS, "event_id": "m-1"}).json()
    api.post("/api/v1/events/m-1/reward", "client", {"value": 1.0})
    api.post("/api/v1/events/nope/reward", "client", {"value": 1.0})
    api.post("/api/v1/kill-switch", "operator", {"on": True, "reason": "metrics"})
    text = api.client.get("/metrics").text
    route = "/api/v1/events/{event_id}/reward"
    for status, added in (("200", 1), ("404", 1)):
        labels = {"method": "POST", "route": route, "status": status}
        was = _value(before, "autopilot_http_requests_total", **labels)
        assert _value(text, "autopilot_http_requests_total", **labels) == was + added
    assert "/api/v1/events/m-1/reward" not in text  # templates, never raw paths
    verdict = decided["verdict"]["verdict"]
    assert (
        _value(
            text,
            "autopilot_decisions_total",
            source="api",
            action=decided["action"],
            verdict=verdict,
        )
        >= 1
    )
    assert _value(text, "autopilot_kill_switch") == 1.0
    assert _value(text, "autopilot_approvals_pending") == 0.0
    assert _value(text, "autopilot_policy_info", name="rules", version="1") == 1.0
    assert re.search(
        r'autopilot_http_request_duration_seconds_bucket\{.*route="/api/v1/decide"', text
    )
