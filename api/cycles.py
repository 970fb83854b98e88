"""The one adapter between the API and the orchestrator's cycles.

The seed's operator endpoints map onto the orchestrator's two passes:

==============================  ===================================================
``run-cycle``, ``self-optimize``  :func:`agent.orchestrator.run_full_cycle` (the policy's
                                  decision plus self-healing)
``auto-remediate``, ``self-heal``,  :func:`agent.orchestrator.monitor_and_respond` (critical
``monitor-and-respond``           issues only, no policy)
==============================  ===================================================

The orchestrator's signatures are being refactored (a session the caller owns); this module
is the only place in ``api/`` that calls them, so that change touches it alone. A cycle that
is already running is a 409 naming the lock's holder, its pid, since when and when its lease
expires (:class:`agent.lock.CycleRunning`, raised at once by the lock itself).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from sqlalchemy import Engine

from agent.cycle_config import PolicyLoader
from agent.orchestrator import (
    CycleResult,
    CycleRunning,
    monitor_and_respond,
    run_full_cycle,
)
from agent.settings import Settings
from api import metrics
from api.problems import Problem
from api.schemas import finite_or_none, json_safe
from policies.base import Policy

CycleKind = Literal["full", "monitor"]
ENDPOINT_KINDS: dict[str, CycleKind] = {
    "run-cycle": "full",
    "self-optimize": "full",
    "auto-remediate": "monitor",
    "self-heal": "monitor",
    "monitor-and-respond": "monitor",
}
"""Seed endpoint -> the orchestrator's pass it runs."""


def model_loader(settings: Settings) -> PolicyLoader:
    """The loader of model URIs on the settings' MLflow store (the one policy loader)."""

    def load(uri: str) -> Policy:
        from experiments.models import load_policy_uri
        from experiments.tracking import Tracking

        return load_policy_uri(uri, tracking=Tracking(settings.mlflow_tracking_uri))

    return load


def run_cycle(
    engine: Engine, kind: CycleKind, *, dry_run: bool, actor: str, settings: Settings
) -> CycleResult:
    """Run one pass with ``actor`` (the key's name) as the audit trail's actor, on the
    settings' policy, governance and thresholds."""
    began = time.perf_counter()
    try:
        if kind == "full":
            result = run_full_cycle(
                engine,
                settings=settings,
                dry_run=dry_run,
                actor=actor,
                load_policy=model_loader(settings),
            )
        else:
            result = monitor_and_respond(engine, settings=settings, dry_run=dry_run, actor=actor)
    except CycleRunning as error:
        raise Problem(409, str(error), **error.details()) from None
    metrics.CYCLE_DURATION.labels(kind).observe(time.perf_counter() - began)
    for outcome in result.decisions:
        metrics.DECISIONS.labels(outcome.source, outcome.action, outcome.verdict).inc()
    return result


def cycle_body(result: CycleResult) -> dict[str, Any]:
    """The JSON body of a cycle's result (NaN scores, when a KPI is missing, become null)."""
    return {
        "cycle_id": result.cycle_id,
        "kind": result.kind,
        "mode": result.mode,
        "as_of": result.as_of,
        "duration_s": result.duration_s,
        "health_before": finite_or_none(result.health_before),
        "alignment_before": finite_or_none(result.alignment_before),
        "policy_name": result.policy_name,
        "policy_version": result.policy_version,
        "policy_note": result.policy_note,
        "issues_found": json_safe(result.issues_found),
        "issues_healed": result.issues_healed,
        "optimizations_applied": result.optimizations_applied,
        "decisions": json_safe([d.to_dict() for d in result.decisions]),
        "kpis": {name: finite_or_none(value) for name, value in result.kpis.items()},
    }
