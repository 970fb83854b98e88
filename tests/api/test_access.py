"""Deny by default: every route declares its roles, and the sweep gets exactly what they say."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from agent.api_keys import LAST_USED_RESOLUTION, ROLES, Principal, record_use, use_due
from agent.db import make_engine
from agent.models import ApiKey
from agent.settings import Settings
from api.deps import PUBLIC, UndeclaredAccess, access_of, allow, identify
from api.main import api_routes, check_access_declared, create_app
from tests.api.conftest import KPIS, Api

ADMIN_ONLY_PREFIXES = ("/api/autonomous/", "/api/ml/")


def _routes(api: Api) -> list[APIRoute]:
    return api_routes(api.client.app)  # type: ignore[arg-type]


def test_every_route_declares_its_access(api: Api) -> None:
    routes = _routes(api)
    assert len(routes) >= 27
    for route in routes:
        assert access_of(route) is not None, route.path


def test_the_seeds_twelve_need_admin_by_default(api: Api) -> None:
    seed = [r for r in _routes(api) if r.path.startswith(ADMIN_ONLY_PREFIXES)]
    assert len(seed) == 12
    assert {access_of(r) for r in seed} == {frozenset({"admin"})}


def test_an_undeclared_route_cannot_be_served(api: Api) -> None:
    app = api.client.app

    @app.get("/api/v1/forgotten")  # type: ignore[attr-defined,misc]
    def forgotten() -> dict[str, str]:
        return {}

    with pytest.raises(UndeclaredAccess, match=r"\['GET'\] /api/v1/forgotten"):
        check_access_declared(app)  # type: ignore[arg-type]

    @app.get("/api/v1/twice", dependencies=[allow("viewer"), allow("client")])  # type: ignore[attr-defined,misc]
    def twice() -> dict[str, str]:
        return {}

    with pytest.raises(UndeclaredAccess, match="/api/v1/twice"):
        check_access_declared(app)  # type: ignore[arg-type]


def test_unknown_role_in_a_declaration_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown roles \['root'\]"):
        allow("root")


def test_seed_endpoints_open_to_operators_when_configured(tmp_path: object) -> None:
    settings = Settings(db_url="sqlite:///unused.db", policy_uri="rules", api_seed_admin_only=False)
    app = create_app(settings)
    routes = {r.path: access_of(r) for r in api_routes(app)}
    assert routes["/api/autonomous/run-cycle"] == frozenset({"admin", "operator"})
    assert routes["/api/ml/feedback"] == frozenset({"admin", "operator", "viewer"})


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _body(path: str) -> object:
    if path.endswith("/decide"):
        return {"kpis": KPIS}
    if path.endswith("/decide/batch"):
        return {"items": [{"kpis": KPIS}]}
    if path.endswith("/reward"):
        return {"value": 1.0}
    if path.endswith("/kill-switch"):
        return {"on": False}
    return {"dry_run": True}


def test_endpoint_sweep(seeded_api: Api) -> None:
    """Every OpenAPI operation with no key and with each role: 401 without a key, 403 for a
    role the table does not list, otherwise neither (and never a 5xx)."""
    table = {
        (method.upper(), r.path): access_of(r)
        for r in _routes(seeded_api)
        for method in r.methods or ()
    }
    document = seeded_api.client.get("/openapi.json").json()
    operations = [(m.upper(), p) for p, item in document["paths"].items() for m in item]
    documented = {
        (method.upper(), r.path)
        for r in _routes(seeded_api)
        if r.include_in_schema
        for method in r.methods or ()
    }
    assert set(operations) == documented
    for method, path in operations:
        roles = table[(method, path)]
        for role in (None, *ROLES):
            headers = {} if role is None else seeded_api.headers(role)
            kwargs = {"json": _body(path)} if method == "POST" else {}
            status = seeded_api.client.request(
                method, _concrete(path), headers=headers, **kwargs
            ).status_code
            where = f"{method} {path} as {role}"
            assert status < 500, where
            if roles == PUBLIC:
                assert status not in (401, 403), where
            elif role is None:
                assert status == 401, where
            elif role in roles:  # type: ignore[operator]
                assert status not in (401, 403), where
            else:
                assert status == 403, where


def test_revoked_and_unknown_keys_are_401(api: Api) -> None:
    from sqlalchemy.orm import Session

    from agent.api_keys import revoke_key

    assert api.get("/api/v1/kill-switch", "viewer").status_code == 200
    with Session(api.engine) as session:
        revoke_key(session, "viewer-key")
        session.commit()
    response = api.get("/api/v1/kill-switch", "viewer")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    for key in ("ap_not-a-key", "", "x" * 500):
        assert api.client.get("/api/v1/kill-switch", headers={"X-API-Key": key}).status_code == 401


def test_problem_bodies_reveal_no_internals(api: Api) -> None:
    body = api.client.get("/api/v1/audit").json()
    assert body == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "a valid API key is required in the X-API-Key header",
    }
    forbidden = api.get("/api/v1/audit", "client").json()
    assert forbidden["status"] == 403 and "client" in forbidden["detail"]
    assert "Traceback" not in str(forbidden)


def _last_used(api: Api, role: str) -> datetime | None:
    with Session(api.engine) as session:
        return session.scalars(
            select(ApiKey.last_used_at).where(ApiKey.name == f"{role}-key")
        ).one()


def _set_last_used(api: Api, role: str, at: datetime) -> None:
    with Session(api.engine) as session:
        session.execute(update(ApiKey).where(ApiKey.name == f"{role}-key").values(last_used_at=at))
        session.commit()


def test_last_used_at_is_written_at_most_once_a_minute(api: Api) -> None:
    assert _last_used(api, "viewer") is None
    began = datetime.now(UTC).replace(tzinfo=None)
    assert api.get("/api/v1/audit", "viewer").status_code == 200  # a read records its use
    first = _last_used(api, "viewer")
    assert first is not None and first >= began - timedelta(seconds=1)
    api.get("/api/v1/audit", "viewer")
    assert _last_used(api, "viewer") == first  # within the minute: not written again
    assert _last_used(api, "client") is None  # only the key that was used
    for age, rewritten in (
        (LAST_USED_RESOLUTION - timedelta(seconds=5), False),
        (LAST_USED_RESOLUTION + timedelta(seconds=5), True),
    ):
        stale = datetime.now(UTC).replace(tzinfo=None) - age
        _set_last_used(api, "viewer", stale)
        api.get("/api/v1/audit", "viewer")
        assert (_last_used(api, "viewer") != stale) is rewritten, age


def test_a_refused_request_still_records_the_use_of_its_key(api: Api) -> None:
    assert api.post("/api/v1/kill-switch", "viewer", {"on": True, "reason": "x"}).status_code == 403
    assert _last_used(api, "viewer") is not None


def test_use_is_due_at_the_resolution_and_not_just_under_it() -> None:
    at = datetime(2025, 1, 1, 12, 0, 0)
    used = Principal("k", "viewer", key_id=1, last_used_at=at)
    assert use_due(used, at + LAST_USED_RESOLUTION)
    assert not use_due(used, at + LAST_USED_RESOLUTION - timedelta(microseconds=1))
    assert use_due(Principal("k", "viewer", key_id=1), at)  # never used
    assert not use_due(Principal("k", "viewer"), at)  # not from the key store


def test_record_use_writes_once_for_racing_requests(api: Api) -> None:
    at = datetime(2030, 1, 1)
    with Session(api.engine) as session:
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.name == "client-key")).one()
        assert record_use(session, key_id, at) is True
        assert record_use(session, key_id, at + timedelta(seconds=30)) is False
        assert record_use(session, key_id, at + LAST_USED_RESOLUTION) is True
        session.commit()


def test_recording_a_keys_use_needs_no_second_connection(api: Api) -> None:
    """With one pooled connection, held by the request, a second checkout would wait for the
    pool's timeout: the use is recorded on the request's own connection."""
    app = create_app(api.settings)
    app.state.engine = make_engine(api.settings.db_url, pool_size=1, max_overflow=0, pool_timeout=2)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/api/v1/audit", headers=api.headers("viewer"))
    assert answer.status_code == 200, answer.text
    assert _last_used(api, "viewer") is not None


@pytest.mark.parametrize("role", ["viewer", "client"])
def test_the_key_check_holds_no_connection_afterwards(api: Api, role: str) -> None:
    """Between the key check and the route a request waits for a thread; holding a pooled
    connection meanwhile could fill the pool with requests that wait for threads held by
    requests that wait for connections."""
    if role == "client":
        _set_last_used(api, role, datetime.now(UTC).replace(tzinfo=None))  # not due: no write
    with Session(api.engine) as session:
        assert identify(session, api.keys[role]) is not None
        assert not session.in_transaction()
