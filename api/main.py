"""The app factory: ``create_app(settings=None)`` (``uvicorn --factory api.main:create_app``).

The app holds one database engine (``settings.db_url``) and one :class:`~api.policy.
PolicyHolder` (``settings.policy_uri``, the MLflow registry's champion by default, loaded at
start). Every error is problem+json (:mod:`api.problems`); bodies above
``settings.api_max_body_bytes`` are a 413 (:mod:`api.limits`); every request is counted and
timed by route (:mod:`api.metrics`). Every route declares who may call it (:mod:`api.deps`);
the factory refuses to build an app with an undeclared route.

Routes: ``/healthz``, ``/readyz``, ``/metrics``; the decision API under ``/api/v1``
(``decide``, ``decide/batch``, ``events/{event_id}/reward``); the operator's controls under
``/api/v1`` (approvals, executions' undo, audit, kill switch, policy); the seed's endpoints
under ``/api/autonomous`` and ``/api/ml``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from agent.cycle_config import resolve_governance, resolve_thresholds, use_policy_loader
from agent.db import make_engine
from agent.settings import Settings, get_settings
from api import problems
from api.cycles import model_loader
from api.deps import UndeclaredAccess, access_of
from api.limits import BodyLimit
from api.metrics import MetricsMiddleware
from api.policy import PolicyHolder
from api.routes import autonomous, decide, health, operator
from api.routes.dashboard import install_dashboard

TITLE = "autopilot"
THREAD_TOKENS = 8
"""Threads running sync routes and dependencies at once, per worker process (anyio's default
is 40). The decision API is CPU-bound Python around one short SQLite write; more threads only
queue on the GIL, and a thread that holds the database's write lock waits its turn with them
while every other writer waits on it. Requests beyond these wait in the event loop. At most
the engine's pool size (5 + 10 overflow by default), since each thread holds at most one
connection and a request holds none between threads (:func:`api.deps.identify`)."""


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route of ``app``, included routers' routes too."""
    return [
        context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def check_access_declared(app: FastAPI) -> None:
    """Raise :class:`UndeclaredAccess` naming every route that declares no access."""
    undeclared = [
        f"{sorted(route.methods or ())} {route.path}"
        for route in api_routes(app)
        if access_of(route) is None
    ]
    if undeclared:
        raise UndeclaredAccess(
            f"routes without exactly one access declaration (allow(...) or public()): "
            f"{undeclared}; deny by default means they cannot be served"
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API on ``settings`` (default :func:`get_settings`)."""
    config = settings or get_settings()
    use_policy_loader(model_loader(config))  # cycles started by this process load alike
    holder = PolicyHolder(
        config.policy_uri, config.mlflow_tracking_uri, config.api_policy_check_seconds
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = THREAD_TOKENS
        holder.reload()
        yield
        app.state.engine.dispose()

    app = FastAPI(
        title=TITLE,
        version="1",
        summary="Decisions for services, controls for operators.",
        lifespan=lifespan,
    )
    app.state.settings = config
    app.state.engine = make_engine(config.db_url)
    app.state.policy = holder
    app.state.governance = resolve_governance(config.governance_file)
    app.state.thresholds = resolve_thresholds(config.thresholds_file)
    problems.install(app)
    for router in (
        health.router,
        decide.router,
        operator.router,
        autonomous.build_router(config),
    ):
        app.include_router(router)
    install_dashboard(app, config)
    check_access_declared(app)
    app.add_middleware(BodyLimit, max_bytes=config.api_max_body_bytes)
    app.add_middleware(MetricsMiddleware)
    return app
