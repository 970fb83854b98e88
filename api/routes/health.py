"""Liveness, readiness and metrics (open to anyone: load balancers and Prometheus call them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api import metrics
from api.deps import EngineDep, PolicyDep, public
from api.schemas import ReadyOut
from api.state import engine_state, policy_out, readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[public()])
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyOut,
    dependencies=[public()],
    responses={503: {"model": ReadyOut, "description": "Not ready"}},
)
def readyz(engine: EngineDep, policy: PolicyDep) -> Any:
    """Database reachable, schema current, policy loaded (which, which version); 503 and the
    problems otherwise."""
    body = readiness(engine, policy)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if body.ready else 503)


@router.get("/metrics", dependencies=[public()], response_class=Response)
def metrics_text(request: Request, engine: EngineDep, policy: PolicyDep) -> Response:
    """Prometheus text format."""

    def state() -> dict[str, Any]:
        current = policy_out(policy)
        return {
            **engine_state(engine),
            "policy_name": current.name,
            "policy_version": current.version,
            "policy_error": current.last_error is not None,
        }

    body, content_type = metrics.render(state)
    return Response(body, media_type=content_type)
