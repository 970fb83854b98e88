"""The seed's operator endpoints, at the seed's paths.

They need ``admin`` (as in the seed) unless ``AUTOPILOT_API_SEED_ADMIN_ONLY`` is false, when
operators may call the POSTs and viewers (and operators) the GETs. Every POST takes
``{"dry_run": true}``; dry run is the default when the body or the member is absent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from sqlalchemy import select

from agent import decision_log
from agent.analytics import suggestion_feedback
from agent.detect import KPI_ACTIONS, detect
from agent.learning import learning_status
from agent.models import DecisionRecord
from agent.observe import as_utc_naive, observe
from agent.orchestrator import resolve_thresholds
from agent.settings import Settings
from api.cycles import ENDPOINT_KINDS, cycle_body, run_cycle
from api.deps import CallerDep, EngineDep, PolicyDep, SessionDep, SettingsDep, allow
from api.pagination import DEFAULT_PAGE_SIZE, Cursor, Limit
from api.problems import COMMON_ERRORS, problem_responses
from api.schemas import CycleResponse, DryRunRequest, SystemState, json_safe
from api.state import system_state


def _roles(settings: Settings, write: bool) -> tuple[str, ...]:
    if settings.api_seed_admin_only:
        return ()
    return ("operator",) if write else ("viewer", "operator")


def build_router(settings: Settings) -> APIRouter:
    """The seed's twelve endpoints with the roles the settings give them."""
    router = APIRouter(tags=["seed"])
    reader = allow(*_roles(settings, write=False))
    writer = _roles(settings, write=True)
    errors = problem_responses(*COMMON_ERRORS)

    @router.get(
        "/api/autonomous/system-state",
        response_model=SystemState,
        dependencies=[reader],
        responses=errors,
    )
    def get_system_state(session: SessionDep, holder: PolicyDep) -> Any:
        """Mode, kill switch, policy, approvals pending and the last cycle."""
        return system_state(session, holder)

    for path, kind in ENDPOINT_KINDS.items():
        _add_cycle_endpoint(router, path, kind, writer)

    @router.get("/api/autonomous/decisions", dependencies=[reader], responses=errors)
    def decisions(
        session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE_SIZE
    ) -> dict[str, Any]:
        """The decision log, newest first, in the decision-log record format (with ``id``)."""
        size = limit
        query = select(DecisionRecord).order_by(DecisionRecord.id.desc()).limit(size + 1)
        if cursor is not None:
            query = query.where(DecisionRecord.id < cursor)
        rows = session.scalars(query).all()
        items = [{"id": r.id, **decision_log.to_log_record(r)} for r in rows[:size]]
        more = len(rows) > size and items
        return {"items": json_safe(items), "next_cursor": items[-1]["id"] if more else None}

    @router.get("/api/autonomous/learning", dependencies=[reader], responses=errors)
    def learning(session: SessionDep) -> dict[str, Any]:
        """Decisions by reward state and each learner's latest version
        (:func:`agent.learning.learning_status`), rewards per executed action, and the join
        windows."""
        summary = decision_log.reward_summary(session)
        return {
            **json_safe(learning_status(session, as_of=as_utc_naive(None))),
            "actions": [
                {
                    "action": s.action,
                    "decisions": s.decisions,
                    "rewarded": s.rewarded,
                    "mean_reward": s.mean_reward,
                }
                for s in summary
            ],
            "reward_windows_hours": {
                name: {
                    "default": w.default.total_seconds() / 3600,
                    "maximum": w.maximum.total_seconds() / 3600,
                }
                for name, w in decision_log.REWARD_WINDOWS.items()
            },
        }

    @router.get(
        "/api/autonomous/optimization-opportunities", dependencies=[reader], responses=errors
    )
    def optimization_opportunities(session: SessionDep) -> dict[str, Any]:
        """KPIs short of their targets now, with the action that addresses each."""
        snapshot = observe(session)
        issues = [
            i.to_dict()
            for i in detect(session, snapshot, sample_size=0)
            if i.kpi in KPI_ACTIONS and i.kind == "kpi_below_target"
        ]
        return {"as_of": snapshot.as_of.isoformat() + "Z", "opportunities": json_safe(issues)}

    @router.get("/api/ml/feedback", dependencies=[reader], responses=errors)
    def feedback(session: SessionDep) -> dict[str, Any]:
        """How many suggestions were answered and how many adopted."""
        report = suggestion_feedback(session)
        return {"answered": report.count, "adoption_rate": report.adoption_rate}

    @router.get("/api/ml/suggestion-quality", dependencies=[reader], responses=errors)
    def suggestion_quality(session: SessionDep) -> dict[str, Any]:
        """Calibration of suggestion confidences: buckets, ECE, Brier score."""
        report = suggestion_feedback(session)
        return json_safe(
            {
                "answered": report.count,
                "ece": report.ece,
                "brier": report.brier,
                "buckets": [
                    {
                        "low": b.low,
                        "high": b.high,
                        "count": b.count,
                        "mean_confidence": b.mean_confidence,
                        "adoption_rate": b.adoption_rate,
                    }
                    for b in report.buckets
                ],
            }
        )

    @router.get("/api/ml/optimize-thresholds", dependencies=[reader], responses=errors)
    def optimize_thresholds(session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
        """The suggestion threshold that maximizes adoptions at the precision floor, and the
        guardrails' confidence thresholds in force."""
        report = suggestion_feedback(session)
        choice = report.threshold
        return json_safe(
            {
                "min_precision": report.min_precision,
                "suggestion_threshold": None
                if choice is None
                else {
                    "threshold": choice.threshold,
                    "precision": choice.precision,
                    "adoptions": choice.adoptions,
                    "shown": choice.shown,
                },
                "guardrail_thresholds": resolve_thresholds(settings.thresholds_file),
            }
        )

    return router


def _add_cycle_endpoint(router: APIRouter, path: str, kind: Any, roles: tuple[str, ...]) -> None:
    def endpoint(
        engine: EngineDep,
        settings: SettingsDep,
        caller: CallerDep,
        body: Annotated[DryRunRequest | None, Body()] = None,
    ) -> Any:
        dry_run = True if body is None else body.dry_run
        result = run_cycle(engine, kind, dry_run=dry_run, actor=caller.name, settings=settings)
        return cycle_body(result)

    endpoint.__name__ = path.replace("-", "_")
    endpoint.__doc__ = (
        f"Run the {'full cycle' if kind == 'full' else 'monitor pass'} (dry run by default); "
        "409 when a cycle is already running."
    )
    router.add_api_route(
        f"/api/autonomous/{path}",
        endpoint,
        methods=["POST"],
        dependencies=[allow(*roles)],
        response_model=CycleResponse,
        responses=problem_responses(*COMMON_ERRORS, 409),
    )
