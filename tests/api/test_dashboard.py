"""The dashboard over real HTTP through the app: sign-in, the session cookie, CSRF, headers,
sections by role. (The page in a real browser: ``tests/browser``.)"""

from __future__ import annotations

import re
import time

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from agent.api_keys import revoke_key
from agent.settings import Settings
from api.dashboard_security import (
    CONTENT_SECURITY_POLICY,
    CSRF_HEADER,
    MAX_KEY_LENGTH,
    MAX_TTL_S,
    MIN_TTL_S,
    SESSION_COOKIE,
    SessionCodec,
)
from api.dashboard_views import MAX_AUDIT_PAGE_SIZE, SECTIONS, PerCycle, mlflow_link
from tests.api.conftest import Api

SECRET = "s" * 32


def signed_in(api: Api, role: str) -> str:
    """Sign ``api``'s client in with ``role``'s key; returns the page's CSRF token."""
    answer = api.client.post(
        "/dashboard/sign-in", data={"api_key": api.keys[role]}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    page = api.client.get("/")
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def test_sign_in_sets_an_httponly_strict_cookie_without_the_key_in_clear(api: Api) -> None:
    answer = api.client.post(
        "/dashboard/sign-in", data={"api_key": api.keys["operator"]}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert api.keys["operator"] not in cookie
    assert "Secure" not in cookie  # plain HTTP by default (dashboard_secure_cookie)
    page = api.client.get("/")
    assert page.status_code == 200
    assert "operator-key (operator)" in page.text
    assert api.keys["operator"] not in page.text


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "enter an API key"),
        ("   ", "enter an API key"),
        ("ap_" + "x" * 40, "unknown or revoked API key"),
        ("client", "a client key cannot use the dashboard"),
    ],
)
def test_refused_sign_ins_say_why_and_set_no_cookie(api: Api, key: str, reason: str) -> None:
    raw = api.keys["client"] if key == "client" else key
    answer = api.client.post("/dashboard/sign-in", data={"api_key": raw}, follow_redirects=False)
    assert answer.status_code == 400
    assert reason in answer.text
    assert "set-cookie" not in answer.headers


def test_sign_in_key_length_limit(api: Api) -> None:
    at_limit = api.client.post("/dashboard/sign-in", data={"api_key": "k" * MAX_KEY_LENGTH})
    assert at_limit.status_code == 400  # accepted for checking, unknown
    over = api.client.post("/dashboard/sign-in", data={"api_key": "k" * (MAX_KEY_LENGTH + 1)})
    assert over.status_code == 422
    assert "api_key" in over.json()["detail"]


def test_cross_site_sign_in_is_refused(api: Api) -> None:
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}):
        answer = api.client.post(
            "/dashboard/sign-in", data={"api_key": api.keys["operator"]}, headers=headers
        )
        assert answer.status_code == 403, headers
        assert "set-cookie" not in answer.headers


def test_every_response_carries_the_content_security_policy(api: Api) -> None:
    for path in ("/", "/healthz", "/static/dashboard.js", "/api/v1/approvals"):
        headers = api.client.get(path).headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["x-frame-options"] == "DENY"
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "'unsafe-eval'" not in CONTENT_SECURITY_POLICY


def test_the_page_has_no_inline_script(seeded_api: Api) -> None:
    signed_in(seeded_api, "operator")
    page = seeded_api.client.get("/").text
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert " style=" not in page
    assert " onclick=" not in page


def test_a_state_change_through_the_cookie_needs_the_csrf_token(api: Api) -> None:
    token = signed_in(api, "operator")
    body = {"on": True, "reason": "csrf test"}
    refused = api.client.post("/api/v1/kill-switch", json=body)
    assert refused.status_code == 403
    assert CSRF_HEADER in refused.json()["detail"]
    wrong = api.client.post("/api/v1/kill-switch", json=body, headers={CSRF_HEADER: "x" + token})
    assert wrong.status_code == 403
    assert api.client.get("/api/v1/kill-switch").json()["on"] is False  # nothing changed
    done = api.client.post("/api/v1/kill-switch", json=body, headers={CSRF_HEADER: token})
    assert done.status_code == 200, done.text
    assert done.json()["on"] is True
    entry = api.client.get("/api/v1/audit").json()["items"][0]
    assert entry["actor"] == "operator-key"  # the key's name, as through X-API-Key


def test_the_cookie_gets_the_keys_own_role(api: Api) -> None:
    token = signed_in(api, "viewer")
    assert api.client.get("/api/v1/approvals").status_code == 200
    answer = api.client.post(
        "/api/v1/kill-switch", json={"on": True, "reason": "x"}, headers={CSRF_HEADER: token}
    )
    assert answer.status_code == 403
    assert "role 'viewer'" in answer.json()["detail"]


def test_revoking_the_key_ends_its_sessions(api: Api) -> None:
    signed_in(api, "operator")
    assert api.client.get("/dashboard/sections/header").status_code == 200
    with Session(api.engine) as session:
        revoke_key(session, "operator-key", by="test")
        session.commit()
    assert api.client.get("/dashboard/sections/header").status_code == 401
    assert "Sign in" in api.client.get("/").text


def test_sign_out_drops_the_cookie(api: Api) -> None:
    token = signed_in(api, "viewer")
    answer = api.client.post("/dashboard/sign-out", headers={CSRF_HEADER: token})
    assert answer.status_code == 204
    assert f'{SESSION_COOKIE}=""' in answer.headers["set-cookie"]
    api.client.cookies.clear()
    assert api.client.get("/dashboard/sections/header").status_code == 401


@pytest.mark.parametrize("role", ["admin", "operator", "viewer"])
def test_every_section_renders_for_every_reader(seeded_api: Api, role: str) -> None:
    signed_in(seeded_api, role)
    for name in SECTIONS:
        answer = seeded_api.client.get(f"/dashboard/sections/{name}")
        assert answer.status_code == 200, (name, answer.text)
        assert answer.headers["content-type"].startswith("text/html")


def test_sections_need_a_session_and_a_known_name(api: Api) -> None:
    assert api.client.get("/dashboard/sections/header").status_code == 401
    signed_in(api, "viewer")
    unknown = api.client.get("/dashboard/sections/secrets")
    assert unknown.status_code == 404
    assert "allowed: ['header'" in unknown.json()["detail"]


def test_audit_page_size_bounds(api: Api) -> None:
    signed_in(api, "viewer")
    for size, status in ((0, 422), (1, 200), (MAX_AUDIT_PAGE_SIZE, 200), (101, 422)):
        got = api.client.get("/dashboard/sections/audit", params={"size": size})
        assert got.status_code == status, size
    assert api.client.get("/dashboard/sections/audit", params={"before": 0}).status_code == 422


def test_a_viewer_page_has_no_controls_an_operator_page_has_its_own(seeded_api: Api) -> None:
    signed_in(seeded_api, "viewer")
    viewer = seeded_api.client.get("/").text
    for control in (
        'id="controls"',
        'id="kill-toggle"',
        "data-answer=",
        "data-undo=",
        "data-cycle=",
    ):
        assert control not in viewer
    seeded_api.client.cookies.clear()
    signed_in(seeded_api, "operator")
    operator = seeded_api.client.get("/").text
    assert 'id="kill-toggle"' in operator
    assert "data-cycle=" not in operator  # the seed's cycle endpoints are admin-only by default
    seeded_api.client.cookies.clear()
    signed_in(seeded_api, "admin")
    assert 'data-cycle="/api/autonomous/run-cycle"' in seeded_api.client.get("/").text


# --- the cookie codec -------------------------------------------------------------------------


def test_codec_round_trip_and_tampering() -> None:
    codec = SessionCodec(SECRET, MIN_TTL_S)
    cookie, session = codec.seal("ap_secret")
    assert "ap_secret" not in cookie
    assert codec.open(cookie) == session
    # tamper a character in the middle: every bit of it is significant (the last characters
    # before the padding carry insignificant bits, so changing one there can leave the token
    # intact and the test flaky)
    middle = len(cookie) // 2
    tampered = cookie[:middle] + ("A" if cookie[middle] != "A" else "Q") + cookie[middle + 1 :]
    assert codec.open(tampered) is None
    assert codec.open(None) is None
    assert codec.open("not a token") is None
    assert SessionCodec("t" * 32, MIN_TTL_S).open(cookie) is None  # another server's secret
    foreign = Fernet(Fernet.generate_key()).encrypt(b'{"k": "ap_x", "c": "y"}').decode()
    assert codec.open(foreign) is None


def test_codec_expiry() -> None:
    codec = SessionCodec(SECRET, MIN_TTL_S)
    cookie, _ = codec.seal("ap_secret")
    payload = codec._fernet.decrypt(cookie.encode())
    at_limit = codec._fernet.encrypt_at_time(payload, int(time.time()) - MIN_TTL_S + 2)
    assert codec.open(at_limit.decode()) is not None
    expired = codec._fernet.encrypt_at_time(payload, int(time.time()) - MIN_TTL_S - 2)
    assert codec.open(expired.decode()) is None


@pytest.mark.parametrize(
    ("secret", "ttl", "match"),
    [
        ("s" * 31, MIN_TTL_S, "at least 32 characters, got 31"),
        (SECRET, MIN_TTL_S - 1, r"ttl_s must be within \[60, 604800\] s, got 59"),
        (SECRET, MAX_TTL_S + 1, "got 604801"),
    ],
)
def test_codec_refuses_bad_configuration(secret: str, ttl: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SessionCodec(secret, ttl)


def test_codec_accepts_its_bounds() -> None:
    assert SessionCodec("s" * 32, MIN_TTL_S).ttl_s == MIN_TTL_S
    assert SessionCodec("s" * 32, MAX_TTL_S).ttl_s == MAX_TTL_S


def test_settings_bound_the_dashboard_fields() -> None:
    with pytest.raises(ValueError, match="at least 32 characters, got 31"):
        Settings(dashboard_session_secret="s" * 31)
    with pytest.raises(ValueError, match="dashboard_session_ttl_s"):
        Settings(dashboard_session_ttl_s=MIN_TTL_S - 1)
    assert Settings(dashboard_session_ttl_s=MAX_TTL_S).dashboard_session_ttl_s == MAX_TTL_S


@pytest.mark.parametrize(
    ("uri", "version", "link"),
    [
        (
            "http://mlflow:5000/",
            "models:/autopilot-policy/3",
            "http://mlflow:5000/#/models/autopilot-policy/versions/3",
        ),
        (
            "https://ml.example",
            "models:/autopilot-policy@champion",
            "https://ml.example/#/models/autopilot-policy",
        ),
        ("sqlite:///mlflow.db", "models:/autopilot-policy/3", None),  # no UI to link to
        ("http://mlflow:5000", "1", None),  # not a registered model (the rules policy)
        ("http://mlflow:5000", None, None),
    ],
)
def test_mlflow_link(uri: str, version: str | None, link: str | None) -> None:
    assert mlflow_link(uri, version) == link


def test_a_per_cycle_section_is_computed_once_per_recorded_cycle(seeded_api: Api) -> None:
    computed: list[int] = []

    def compute(_: Session) -> int:
        computed.append(len(computed) + 1)
        return computed[-1]

    kept = PerCycle(compute)
    with Session(seeded_api.engine) as session:
        assert (kept.get(session), kept.get(session)) == (1, 1)  # the second is served kept
    assert seeded_api.post("/api/autonomous/run-cycle", "admin").status_code == 200
    with Session(seeded_api.engine) as session:
        assert (kept.get(session), kept.get(session)) == (2, 2)  # recomputed after the cycle
    assert computed == [1, 2]


def test_the_learning_section_is_served_from_the_apps_per_cycle_cache(seeded_api: Api) -> None:
    signed_in(seeded_api, "viewer")
    first = seeded_api.client.get("/dashboard/sections/learning")
    assert first.status_code == 200 and "Learning" in first.text
    kept = seeded_api.client.app.state.dashboard_learning  # type: ignore[attr-defined]
    assert kept._kept is not None
    assert seeded_api.client.get("/dashboard/sections/learning").text == first.text
