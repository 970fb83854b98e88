"""Prometheus metrics of the API (prometheus-client).

Served at ``/metrics`` in the text format:

- ``autopilot_http_requests_total{method,route,status}`` and
  ``autopilot_http_request_duration_seconds{method,route}``: by route template (``/api/v1/
  events/{event_id}/reward``, never the raw path, so ids cannot explode the label set);
- ``autopilot_decisions_total{source,action,verdict}``: decisions answered by the API and
  made by cycles started through it;
- ``autopilot_cycle_duration_seconds{kind}``: cycles run through the API;
- read from the database at scrape time: ``autopilot_approvals_pending``,
  ``autopilot_kill_switch`` (1 on), and ``autopilot_policy_info{name,version}`` (1) with
  ``autopilot_policy_load_error`` (1 when the last load or check failed).

With several workers (``autopilot serve --workers N``) each process writes its counters to
``$PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and a scrape of any
worker aggregates them all; the scrape-time values are the same in every process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

REGISTRY = CollectorRegistry(auto_describe=True)
"""This process's metrics (in multiprocess mode the values also go to the shared folder)."""

REQUESTS = Counter(
    "autopilot_http_requests",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "autopilot_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
DECISIONS = Counter(
    "autopilot_decisions",
    "Decisions by source, action and guardrail verdict",
    ["source", "action", "verdict"],
    registry=REGISTRY,
)
CYCLE_DURATION = Histogram(
    "autopilot_cycle_duration_seconds",
    "Duration of cycles run through the API",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)


class EngineCollector(Collector):
    """The engine's state, read when scraped: ``state()`` returns approvals pending, the kill
    switch, the policy's name and version and whether its last load failed."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self._state()
        yield GaugeMetricFamily(
            "autopilot_approvals_pending", "Approvals awaiting a human", state["approvals_pending"]
        )
        yield GaugeMetricFamily(
            "autopilot_kill_switch", "1 when the kill switch is on", int(state["kill_switch"])
        )
        info = GaugeMetricFamily(
            "autopilot_policy_info", "The policy the API decides with", labels=["name", "version"]
        )
        info.add_metric([state["policy_name"], state["policy_version"]], 1)
        yield info
        yield GaugeMetricFamily(
            "autopilot_policy_load_error",
            "1 when the last policy load or check failed",
            int(state["policy_error"]),
        )


def render(state: Callable[[], dict[str, Any]]) -> tuple[bytes, str]:
    """The metrics text (all workers' counters in multiprocess mode) and its content type."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
        registry.register(EngineCollector(state))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    registry.register(EngineCollector(state))
    return generate_latest(REGISTRY) + generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (pure ASGI: no per-request
    task or body copy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "")
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - began)
