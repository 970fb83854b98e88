"""The operator's dashboard: the page at ``/``, its sections, its sign-in and its controls.

Routes (all HTML unless said; every one but the sign-in needs a session, see
:mod:`api.dashboard_security`):

- ``GET /``: the whole page when signed in, else the sign-in form.
- ``POST /dashboard/sign-in`` (form ``api_key``): exchange an API key for the session cookie;
  303 to ``/``, or 401 with the form and the reason. ``POST /dashboard/sign-out`` ends it.
- ``GET /dashboard/sections/{name}``: one section re-rendered (the page's partial refresh);
  ``audit`` takes ``before`` (the cursor) and ``size``.
- ``GET /dashboard/audit/verification``: the hash chain checked; the first bad entry if any.
- Controls (JSON ``{"ok", "message", "lines"}``; roles admin and operator; CSRF header):
  ``POST /dashboard/actions/cycle`` ``{"kind": "full"|"self_heal"|"monitor", "dry_run":
  true}`` (dry run unless the body says otherwise), ``POST
  /dashboard/actions/approvals/{id}/approve|reject`` ``{"note"?}``, ``POST
  /dashboard/actions/executions/{id}/undo``, ``POST /dashboard/actions/kill-switch``
  ``{"on", "reason"}``. Errors answer the app's error format with a detail naming the bad
  value and what is allowed.

Each control calls the agent function the CLI and the API call (:func:`run_full_cycle`,
:func:`monitor_and_respond`, :func:`approve`, :func:`reject`, :func:`undo`,
:func:`set_kill_switch`), recorded under the signed-in key's name.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agent.db import session_factory
from agent.settings import Settings
from api import dashboard_views as views
from api.dashboard_security import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    DashboardSession,
    KeyBook,
    SecurityHeadersMiddleware,
    SessionCodec,
    SignInError,
    csrf_ok,
    same_origin,
    sign_in,
)

PACKAGE_DIR = Path(__file__).resolve().parent.parent
TEMPLATES = Jinja2Templates(directory=PACKAGE_DIR / "templates")
STATIC_URL = "/static"
MAX_NOTE = 500
MAX_REASON = 500


@dataclass(frozen=True)
class DashboardConfig:
    """What the dashboard needs from the app: the agent's database, the API's key store, the
    cookie codec, MLflow's tracking URI (for links) and whether cookies are ``Secure``."""

    engine: Engine
    keys: KeyBook
    codec: SessionCodec
    tracking_uri: str
    secure_cookie: bool = False

    @classmethod
    def from_settings(cls, engine: Engine, keys: KeyBook, settings: Settings) -> DashboardConfig:
        """The configuration ``settings`` describe (a random cookie key when none is set)."""
        secret = settings.dashboard_session_secret
        return cls(
            engine=engine,
            keys=keys,
            codec=SessionCodec(
                secret.get_secret_value() if secret else secrets.token_urlsafe(48),
                settings.dashboard_session_ttl_s,
            ),
            tracking_uri=settings.mlflow_tracking_uri,
            secure_cookie=settings.dashboard_secure_cookie,
        )

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)


def _fmt_time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


TEMPLATES.env.filters["utc"] = _fmt_time
TEMPLATES.env.globals["csrf_header"] = CSRF_HEADER


# --- dependencies ---------------------------------------------------------------------------


def get_config(request: Request) -> DashboardConfig:
    config: DashboardConfig = request.app.state.dashboard
    return config


ConfigDep = Annotated[DashboardConfig, Depends(get_config)]


def get_db(config: ConfigDep) -> Iterator[Session]:
    with config.sessions() as session:
        yield session


DbDep = Annotated[Session, Depends(get_db)]


def _problem(status: int, title: str, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail=f"{title}: {detail}")


def optional_session(request: Request, config: ConfigDep) -> DashboardSession | None:
    """The signed-in session, if the cookie is valid and its key still active."""
    found = config.codec.read(request.cookies.get(SESSION_COOKIE))
    if found is None or not config.keys.is_active(found.principal.key_id):
        return None
    return found


def require_session(
    request: Request, found: Annotated[DashboardSession | None, Depends(optional_session)]
) -> DashboardSession:
    """The session, or 401; a state-changing request without the CSRF token gets 403."""
    if found is None:
        raise _problem(401, "Not signed in", "sign in at / with an API key")
    if request.method not in SAFE_METHODS and not csrf_ok(request, found):
        raise _problem(403, "CSRF check failed", f"send the session's token in {CSRF_HEADER}")
    return found


SessionDep = Annotated[DashboardSession, Depends(require_session)]


def require_control(found: SessionDep) -> DashboardSession:
    """The session of an admin or operator, or 403."""
    if not found.principal.can_control:
        raise _problem(
            403,
            "Forbidden",
            f"role {found.principal.role!r} may only read; controls need admin or operator",
        )
    return found


ControlDep = Annotated[DashboardSession, Depends(require_control)]


# --- bodies ---------------------------------------------------------------------------------


class CycleBody(BaseModel):
    """Run a cycle: ``full`` (policy plus self-healing), ``self_heal`` (self-healing only: the
    policy proposes nothing) or ``monitor`` (critical issues only); a dry run unless
    ``dry_run`` is false."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["full", "self_heal", "monitor"] = "full"
    dry_run: bool = True


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class KillSwitchBody(BaseModel):
    """Turn the kill switch on (a reason is required) or off."""

    model_config = ConfigDict(extra="forbid")
    on: bool
    reason: str = Field(default="", max_length=MAX_REASON)


def _answer(message: str, lines: list[str] | None = None) -> dict[str, Any]:
    return {"ok": True, "message": message, "lines": lines or []}


# --- the page and its sections ---------------------------------------------------------------

router = APIRouter()


def _section_context(name: str, db: Session, config: DashboardConfig, **query: Any) -> Any:
    if name == "header":
        return views.header(db, config.tracking_uri)
    if name == "scores":
        return views.scores(db)
    if name == "issues":
        return views.findings(db)
    if name == "approvals":
        return views.approvals(db)
    if name == "activity":
        return views.activity(db)
    if name == "audit":
        return views.audit_page(db, **query)
    return views.learning(db)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page(
    request: Request,
    db: DbDep,
    config: ConfigDep,
    found: Annotated[DashboardSession | None, Depends(optional_session)],
) -> Response:
    """The dashboard, or the sign-in form when there is no valid session."""
    if found is None:
        return TEMPLATES.TemplateResponse(request, "signin.html", {"error": None})
    data = {name: _section_context(name, db, config) for name in views.SECTIONS}
    return TEMPLATES.TemplateResponse(
        request, "dashboard.html", {"session": found, "principal": found.principal, **data}
    )


@router.get("/dashboard/sections/{name}", response_class=HTMLResponse, include_in_schema=False)
def section(
    request: Request,
    db: DbDep,
    config: ConfigDep,
    found: SessionDep,
    name: Annotated[str, PathParam(max_length=20)],
    before: Annotated[int | None, Query(ge=1)] = None,
    size: Annotated[int, Query(ge=1, le=views.MAX_AUDIT_PAGE_SIZE)] = views.AUDIT_PAGE_SIZE,
) -> Response:
    """One section re-rendered, for the page's partial refresh."""
    if name not in views.SECTIONS:
        raise _problem(404, "Unknown section", f"section {name!r}; allowed: {list(views.SECTIONS)}")
    query = {"before": before, "size": size} if name == "audit" else {}
    context = {name: _section_context(name, db, config, **query), "principal": found.principal}
    return TEMPLATES.TemplateResponse(request, f"partials/{name}.html", context)


@router.get("/dashboard/audit/verification", response_class=HTMLResponse, include_in_schema=False)
def audit_verification(request: Request, db: DbDep, found: SessionDep) -> Response:
    """The audit trail's hash chain verified: intact, or the first bad entry and why."""
    report = views.audit_verification(db)
    return TEMPLATES.TemplateResponse(request, "partials/verification.html", {"report": report})


# --- sign-in ----------------------------------------------------------------------------------


@router.post("/dashboard/sign-in", include_in_schema=False)
def sign_in_form(
    request: Request, config: ConfigDep, api_key: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    """Exchange an API key for the session cookie; the key is not kept anywhere."""
    if not same_origin(request):
        raise _problem(403, "Cross-site sign-in refused", "sign in from this site's own form")
    try:
        principal = sign_in(config.keys, api_key)
    except SignInError as error:
        return TEMPLATES.TemplateResponse(
            request, "signin.html", {"error": str(error)}, status_code=401
        )
    cookie, _ = config.codec.issue(principal)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=config.codec.ttl_s,
        httponly=True,
        samesite="strict",
        secure=config.secure_cookie,
        path="/",
    )
    return response


@router.post("/dashboard/sign-out", include_in_schema=False)
def sign_out(found: SessionDep) -> Response:
    response = JSONResponse(_answer("signed out"))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# --- controls ---------------------------------------------------------------------------------


@router.post("/dashboard/actions/cycle", include_in_schema=False)
def run_cycle(body: CycleBody, config: ConfigDep, found: ControlDep) -> dict[str, Any]:
    """Run a cycle now (the same agent call as ``autopilot cycle`` and the API's run-cycle)."""
    from agent.orchestrator import CycleRunning, monitor_and_respond, run_full_cycle

    engine = config.engine
    actor = found.principal.name
    try:
        if body.kind == "monitor":
            result = monitor_and_respond(engine, dry_run=body.dry_run, actor=actor)
        else:
            policy = "noop" if body.kind == "self_heal" else None
            result = run_full_cycle(engine, dry_run=body.dry_run, policy=policy, actor=actor)
    except CycleRunning as error:
        raise _problem(409, "A cycle is already running", str(error)) from None
    lines = result.summary().splitlines()
    return _answer(lines[0], lines[1:])


@router.post("/dashboard/actions/approvals/{approval_id}/{answer}", include_in_schema=False)
def answer_approval(
    db: DbDep,
    found: ControlDep,
    approval_id: Annotated[int, PathParam(ge=1)],
    answer: Literal["approve", "reject"],
    body: NoteBody | None = None,
) -> dict[str, Any]:
    """Approve (and execute, live) or reject a held decision."""
    from agent.approvals import ApprovalError, approve, reject

    verb = approve if answer == "approve" else reject
    note = body.note if body else None
    try:
        view = verb(db, approval_id, by=found.principal.name, note=note)
    except ApprovalError as error:
        raise _problem(409, f"Cannot {answer} approval {approval_id}", str(error)) from None
    extra = f", execution {view.execution_id}" if view.execution_id else ""
    return _answer(f"approval {view.id} {view.status} by {view.decided_by}: {view.action}{extra}")


@router.post("/dashboard/actions/executions/{execution_id}/undo", include_in_schema=False)
def undo_execution(
    db: DbDep, found: ControlDep, execution_id: Annotated[int, PathParam(ge=1)]
) -> dict[str, Any]:
    """Reverse an execution exactly."""
    from agent.actuators import ActuatorError, undo

    try:
        execution = undo(db, execution_id, actor=found.principal.name)
    except ActuatorError as error:
        raise _problem(409, f"Cannot undo execution {execution_id}", str(error)) from None
    return _answer(f"execution {execution.id} ({execution.action}) undone")


@router.post("/dashboard/actions/kill-switch", include_in_schema=False)
def kill_switch(body: KillSwitchBody, db: DbDep, found: ControlDep) -> dict[str, Any]:
    """Pause (with a reason) or resume every execution."""
    from agent.orchestrator import kill_switch_state, set_kill_switch

    reason = body.reason.strip()
    if body.on and not reason:
        raise _problem(422, "A reason is required", "field 'reason': say why executions pause")
    set_kill_switch(db, body.on, reason=reason, by=found.principal.name)
    on, why = kill_switch_state(db)
    return _answer(f"kill switch {'on: ' + why if on else 'off'}")


# --- installing it into an app ----------------------------------------------------------------


def install_dashboard(app: FastAPI, config: DashboardConfig) -> None:
    """Serve the dashboard from ``app``: its routes, its static files at ``/static`` and the
    security headers on every response."""
    app.state.dashboard = config
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    app.add_middleware(SecurityHeadersMiddleware)
