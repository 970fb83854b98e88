"""Dependencies of the routes: settings, the database session, the caller and its role.

- :data:`SettingsDep`: the :class:`~agent.settings.Settings` the app was built with
  (``app.state.settings``: :func:`~agent.settings.get_settings` unless the factory was given
  others, as tests do). Not a ``dependency_overrides`` entry: with any override present
  FastAPI re-analyses every dependency of every request (about 3 ms of a decide);
- :data:`SessionDep`: a session on the app's engine, one per request; the route owns its
  transaction and commits it;
- the dependencies that only read the app's state are ``async`` (no thread hop each: a sync
  dependency runs in the thread pool); the session and the key check do I/O and stay sync;
- access (deny by default): every route declares who may call it with :func:`allow` (the key's
  roles; ``admin`` may always) or :func:`public`. :func:`access_of` reads the declaration back,
  and the app factory refuses to build an app with a route that has none, so an undeclared
  route can never be served.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agent.api_keys import ROLES, Principal, authenticate, record_use, use_due
from agent.observe import as_utc_naive
from agent.settings import Settings
from api.policy import PolicyHolder
from api.problems import Problem

API_KEY_HEADER = "X-API-Key"
API_KEY_SCHEME = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="A key from `autopilot api-key create`; its role decides what it may call.",
)
PUBLIC = "public"


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_engine(request: Request) -> Engine:
    """The app's database engine."""
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """One session per request, closed (and rolled back if uncommitted) afterwards."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
EngineDep = Annotated[Engine, Depends(get_engine)]


async def get_policy_holder(request: Request) -> PolicyHolder:
    """The app's policy holder."""
    holder: PolicyHolder = request.app.state.policy
    return holder


PolicyDep = Annotated[PolicyHolder, Depends(get_policy_holder)]


def identify(session: Session, secret: str | None) -> Principal | None:
    """The principal of an active key (see :func:`~agent.api_keys.authenticate`); when its
    ``last_used_at`` is due (:func:`~agent.api_keys.use_due`: at most once a minute), it is
    written and committed at once on the request's own session (only the key lookup precedes
    it in that transaction), so a read-only request records its use too and a failing one
    does not roll it back. Never on a second connection: with every pooled connection held by
    a request, each waiting for a second one, the pool would deadlock until its timeout.

    The lookup's transaction ends here either way (committed with the use, else rolled
    back), which hands its connection back to the pool: a request holds a connection only
    while a thread runs it, never while it waits for a thread between two dependencies, so
    the pool cannot fill with requests that wait for threads held by requests that wait for
    connections (see ``THREAD_TOKENS`` in :mod:`api.main`)."""
    principal = authenticate(session, secret)
    now = as_utc_naive(None)
    if principal is not None and principal.key_id is not None and use_due(principal, now):
        record_use(session, principal.key_id, now)
        session.commit()
    else:
        session.rollback()
    return principal


class Allow:
    """Access for keys of ``roles`` (and ``admin``): 401 without a valid key, 403 for another
    role; returns the caller."""

    def __init__(self, *roles: str) -> None:
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown roles {unknown}; allowed: {list(ROLES)}")
        self.roles = frozenset({"admin", *roles})

    def __call__(
        self,
        request: Request,
        session: SessionDep,
        x_api_key: Annotated[str | None, Depends(API_KEY_SCHEME)] = None,
    ) -> Principal:
        principal = identify(session, x_api_key)
        if principal is None:
            raise Problem(
                401,
                f"a valid API key is required in the {API_KEY_HEADER} header",
                headers={"WWW-Authenticate": API_KEY_HEADER},
            )
        if principal.role not in self.roles:
            raise Problem(
                403,
                f"role {principal.role!r} may not call this endpoint; allowed roles: "
                f"{sorted(self.roles)}",
            )
        request.state.principal = principal
        return principal


def caller_of(request: Request) -> Principal:
    """The caller that the route's :func:`allow` declaration authenticated."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise Problem(401, f"a valid API key is required in the {API_KEY_HEADER} header")
    return principal


async def current_caller(request: Request) -> Principal:
    """:func:`caller_of` as a dependency."""
    return caller_of(request)


CallerDep = Annotated[Principal, Depends(current_caller)]


class Public:
    """Access for anyone (health, readiness, metrics)."""

    async def __call__(self) -> None:
        return None


def allow(*roles: str) -> Any:
    """The dependency declaring that keys of ``roles`` (and admin) may call a route."""
    return Depends(Allow(*roles))


def public() -> Any:
    """The dependency declaring a route open to anyone."""
    return Depends(Public())


def _declarations(dependant: Dependant) -> Iterator[Allow | Public]:
    for sub in dependant.dependencies:
        if isinstance(sub.call, Allow | Public):
            yield sub.call
        yield from _declarations(sub)


def access_of(route: APIRoute) -> frozenset[str] | str | None:
    """The roles that may call ``route``, :data:`PUBLIC`, or ``None`` when undeclared (or
    declared twice, which is as bad)."""
    found = list(_declarations(route.dependant))
    if len(found) != 1:
        return None
    return PUBLIC if isinstance(found[0], Public) else found[0].roles


class UndeclaredAccess(RuntimeError):
    """A route declares no access (or more than one); the app refuses to serve it."""
