"""The operator's dashboard: the page at ``/``, its sections and its sign-in.

Routes (HTML, in the OpenAPI document under the ``dashboard`` tag; each declares its access
like every route):

- ``GET /`` (public): the whole page when the session cookie is valid, else the sign-in form.
- ``POST /dashboard/sign-in`` (public; form ``api_key``): exchange an API key for the session
  cookie (:mod:`api.dashboard_security`); 303 to ``/``, or 400 with the form and the reason.
  ``POST /dashboard/sign-out`` ends the session.
- ``GET /dashboard/sections/{name}`` (viewer, operator): one section re-rendered, the page's
  partial refresh; ``audit`` takes ``before`` (the cursor) and ``size``.

The page's controls are the API's own endpoints (:data:`CONTROLS`), called by the page's script
with the session cookie (turned into the key by the session middleware) and the CSRF token;
a control is shown only to a role that the endpoint's own access declaration admits, so a
viewer sees none.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from agent.api_keys import Principal
from agent.settings import Settings
from api import dashboard_views as views
from api.dashboard_security import (
    CSRF_HEADER,
    SESSION_COOKIE,
    DashboardSessionMiddleware,
    SecurityHeadersMiddleware,
    SessionCodec,
    SignInError,
    same_origin,
    sign_in,
)
from api.deps import (
    PUBLIC,
    CallerDep,
    SessionDep,
    SettingsDep,
    access_of,
    allow,
    identify,
    public,
)
from api.problems import COMMON_ERRORS, Problem, problem_responses

PACKAGE_DIR = Path(__file__).resolve().parent.parent
TEMPLATES = Jinja2Templates(directory=PACKAGE_DIR / "templates")
STATIC_URL = "/static"
SIGN_IN_PATH = "/dashboard/sign-in"
READERS = ("viewer", "operator")

CONTROLS: dict[str, tuple[str, str]] = {
    "run-cycle": ("POST", "/api/autonomous/run-cycle"),
    "self-heal": ("POST", "/api/autonomous/self-heal"),
    "monitor": ("POST", "/api/autonomous/monitor-and-respond"),
    "approve": ("POST", "/api/v1/approvals/{approval_id}/approve"),
    "reject": ("POST", "/api/v1/approvals/{approval_id}/reject"),
    "undo": ("POST", "/api/v1/executions/{execution_id}/undo"),
    "kill-switch": ("POST", "/api/v1/kill-switch"),
    "audit-verify": ("GET", "/api/v1/audit/verify"),
}
"""Each control of the page: the API endpoint it calls (the page's script uses these paths)."""


def _fmt_time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


TEMPLATES.env.filters["utc"] = _fmt_time
TEMPLATES.env.globals["csrf_header"] = CSRF_HEADER
TEMPLATES.env.globals["controls"] = CONTROLS


def control_access(app: FastAPI) -> dict[str, frozenset[str] | str | None]:
    """Each control's access as its endpoint declares it (roles, :data:`PUBLIC`, or ``None``
    when the app has no such endpoint), read from the app's routes once and kept."""
    cached: dict[str, frozenset[str] | str | None] | None = getattr(
        app.state, "dashboard_control_access", None
    )
    if cached is None:
        declared = {
            (method, context.original_route.path): access_of(context.original_route)
            for context in iter_route_contexts(app.routes)
            if isinstance(context.original_route, APIRoute)
            for method in context.original_route.methods or ()
        }
        cached = {name: declared.get(key) for name, key in CONTROLS.items()}
        app.state.dashboard_control_access = cached
    return cached


def permitted_controls(app: FastAPI, principal: Principal) -> frozenset[str]:
    """The controls whose endpoint's own access declaration admits ``principal``'s role."""
    return frozenset(
        name
        for name, access in control_access(app).items()
        if access == PUBLIC or (isinstance(access, frozenset) and principal.role in access)
    )


router = APIRouter()


def _learning(request: Request) -> views.PerCycle:
    kept: views.PerCycle = request.app.state.dashboard_learning
    return kept


def _codec(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.dashboard_codec
    return codec


def _section(
    name: str, session: SessionDep, settings: Settings, kept: views.PerCycle, **query: Any
) -> Any:
    if name == "header":
        return views.header(session, settings)
    if name == "scores":
        return views.scores(session)
    if name == "issues":
        return views.findings(session)
    if name == "approvals":
        rows = views.approvals(session)
        session.commit()  # the agent marks expired approvals first
        return rows
    if name == "activity":
        return views.activity(session)
    if name == "audit":
        return views.audit_page(session, **query)
    return kept.get(session)  # learning, once per cycle


@router.get("/", response_class=HTMLResponse, tags=["dashboard"], dependencies=[public()])
def page(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The dashboard, or the sign-in form when there is no valid session."""
    found = _codec(request).open(request.cookies.get(SESSION_COOKIE))
    principal = identify(session, found.api_key) if found else None
    if found is None or principal is None:
        return TEMPLATES.TemplateResponse(request, "signin.html", {"error": None})
    data = {
        name: _section(name, session, settings, _learning(request))
        for name in views.SECTIONS
        if name not in views.DEFERRED_SECTIONS
    }
    context = {
        "csrf_token": found.csrf_token,
        "principal": principal,
        "can": permitted_controls(request.app, principal),
        **data,
    }
    return TEMPLATES.TemplateResponse(request, "dashboard.html", context)


@router.get(
    "/dashboard/sections/{name}",
    response_class=HTMLResponse,
    tags=["dashboard"],
    dependencies=[allow(*READERS)],
    responses=problem_responses(*COMMON_ERRORS, 404),
)
def section(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    name: Annotated[str, PathParam(max_length=20)],
    before: Annotated[int | None, Query(ge=1)] = None,
    size: Annotated[int, Query(ge=1, le=views.MAX_AUDIT_PAGE_SIZE)] = views.AUDIT_PAGE_SIZE,
) -> Response:
    """One section re-rendered, for the page's partial refresh."""
    if name not in views.SECTIONS:
        raise Problem(404, f"unknown section {name!r}; allowed: {list(views.SECTIONS)}")
    query = {"before": before, "size": size} if name == "audit" else {}
    context = {
        name: _section(name, session, settings, _learning(request), **query),
        "principal": caller,
        "can": permitted_controls(request.app, caller),
    }
    return TEMPLATES.TemplateResponse(request, f"partials/{name}.html", context)


@router.post(
    SIGN_IN_PATH,
    status_code=303,
    response_class=RedirectResponse,
    tags=["dashboard"],
    dependencies=[public()],
    responses={400: {"description": "the key cannot be used: the form again, with why"}},
)
def sign_in_form(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    api_key: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Exchange an API key for the session cookie."""
    if not same_origin(request):
        raise Problem(403, "cross-site sign-in refused: sign in from this site's own form")
    try:
        sign_in(session, api_key)
    except SignInError as error:
        return TEMPLATES.TemplateResponse(
            request, "signin.html", {"error": str(error)}, status_code=400
        )
    codec = _codec(request)
    cookie, _ = codec.seal(api_key.strip())
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=codec.ttl_s,
        httponly=True,
        samesite="strict",
        secure=settings.dashboard_secure_cookie,
        path="/",
    )
    return response


@router.post("/dashboard/sign-out", status_code=204, tags=["dashboard"], dependencies=[public()])
def sign_out() -> Response:
    """End the session (the cookie is dropped; a POST, so the CSRF check applies)."""
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def session_codec(settings: Settings) -> SessionCodec:
    """The cookie codec ``settings`` describe (a random secret per process when none is set)."""
    secret = settings.dashboard_session_secret
    return SessionCodec(
        secret.get_secret_value() if secret else secrets.token_urlsafe(48),
        settings.dashboard_session_ttl_s,
    )


def install_dashboard(app: FastAPI, settings: Settings) -> None:
    """Serve the dashboard from ``app``: its routes, its static files at ``/static``, the
    session middleware and the security headers on every response."""
    codec = session_codec(settings)
    app.state.dashboard_codec = codec
    app.state.dashboard_learning = views.PerCycle(views.learning)
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    app.add_middleware(DashboardSessionMiddleware, codec=codec, exempt=frozenset({SIGN_IN_PATH}))
    app.add_middleware(SecurityHeadersMiddleware)
