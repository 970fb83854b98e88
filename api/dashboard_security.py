"""The dashboard's sign-in session, CSRF protection and security headers.

- **Sign-in**: an operator types an API key once; the server checks it with the API's own
  :func:`agent.api_keys.authenticate` and answers with a session cookie
  (:data:`SESSION_COOKIE`): HttpOnly, SameSite=Strict, expiring after
  ``dashboard_session_ttl_s``. The cookie is the key and the session's CSRF token, encrypted
  and authenticated with Fernet under the server's session secret: the browser cannot read
  it (HttpOnly) and nobody without the secret can read or forge it. The key is never in a URL,
  the page or the browser's storage.
- **The same endpoints, the same roles**: :class:`DashboardSessionMiddleware` turns a valid
  session cookie into the ``X-API-Key`` header of that request, so the page's controls call
  the API's own endpoints and pass its own role checks; a revoked key fails there at once.
- **CSRF**: a state-changing request that rides on the cookie must carry the session's token
  in :data:`CSRF_HEADER` (the page reads it from a ``<meta>`` element), else 403; the sign-in
  form, which has no session yet, must come from the same origin (:func:`same_origin`).
- **Headers**: :class:`SecurityHeadersMiddleware` sets :data:`CONTENT_SECURITY_POLICY` (only
  the app's own scripts, styles and connections; no inline script, no eval, no framing) and
  its usual companions on every response.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api_keys import Principal, authenticate
from api.problems import problem_response

DASHBOARD_ROLES: frozenset[str] = frozenset({"admin", "operator", "viewer"})
"""Who may sign in to the dashboard: a ``client`` key belongs to a service, not a person."""

SESSION_COOKIE = "autopilot_session"
CSRF_HEADER = "X-CSRF-Token"
API_KEY_HEADER = b"x-api-key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_KEY_LENGTH = 200
"""The longest key the sign-in form accepts (the API's own bound on a key)."""
MIN_TTL_S, MAX_TTL_S = 60, 7 * 24 * 3600

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""Only the app's own files run or load; inline scripts, inline style attributes and eval are
refused (the page uses none: uPlot styles through the CSSOM, which CSP allows)."""

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class DashboardSession:
    """What a session cookie carries: the API key and the session's CSRF token."""

    api_key: str
    csrf_token: str


class SignInError(ValueError):
    """A sign-in that cannot be accepted; the message is safe to show."""


class SessionCodec:
    """Seals and opens session cookies. ``secret``: at least 32 characters; ``ttl_s``: how long
    a session lasts, in seconds, within [:data:`MIN_TTL_S`, :data:`MAX_TTL_S`]."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        if len(secret) < 32:
            raise ValueError(f"session secret must be at least 32 characters, got {len(secret)}")
        if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl_s must be within [{MIN_TTL_S}, {MAX_TTL_S}] s, got {ttl_s}")
        self.ttl_s = ttl_s
        digest = hashlib.sha256(b"autopilot-dashboard-session:" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, api_key: str) -> tuple[str, DashboardSession]:
        """A new session for ``api_key``: (cookie value, session)."""
        session = DashboardSession(api_key, secrets.token_urlsafe(32))
        payload = json.dumps({"k": session.api_key, "c": session.csrf_token}).encode()
        return self._fernet.encrypt(payload).decode("ascii"), session

    def open(self, cookie: str | None) -> DashboardSession | None:
        """The session a cookie carries; ``None`` when absent, forged, expired or malformed."""
        if not cookie:
            return None
        try:
            payload = json.loads(self._fernet.decrypt(cookie.encode("ascii"), ttl=self.ttl_s))
            return DashboardSession(str(payload["k"]), str(payload["c"]))
        except (InvalidToken, UnicodeError, ValueError, KeyError, TypeError):
            return None


def sign_in(session: Session, raw_key: str) -> Principal:
    """The principal of a key typed into the sign-in form, or :class:`SignInError`."""
    key = raw_key.strip()
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise SignInError(f"enter an API key (1 to {MAX_KEY_LENGTH} characters)")
    principal = authenticate(session, key)
    if principal is None:
        raise SignInError("unknown or revoked API key")
    if principal.role not in DASHBOARD_ROLES:
        raise SignInError(
            f"a {principal.role} key cannot use the dashboard; allowed roles: "
            f"{sorted(DASHBOARD_ROLES)}"
        )
    return principal


def same_origin(request: Request) -> bool:
    """Whether a request without a session (the sign-in form) came from this site: the
    browser's ``Sec-Fetch-Site`` says ``same-origin`` (or ``none``: typed by the user), or,
    from an older browser, ``Origin`` is this host."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in {"same-origin", "none"}
    origin = request.headers.get("origin")
    if origin is None:
        return True  # no browser posts a cross-site form without one of the two headers
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            jar.load(value.decode("latin-1"))
            if SESSION_COOKIE in jar:
                return jar[SESSION_COOKIE].value
    return None


class DashboardSessionMiddleware:
    """Requests carrying a valid session cookie (and no ``X-API-Key`` of their own) reach the
    app with the session's key as ``X-API-Key``; unsafe methods must carry the session's CSRF
    token or get a 403 problem. Requests without a cookie pass unchanged, as does the sign-in
    form (``exempt``), which checks its origin itself."""

    def __init__(self, app: ASGIApp, codec: SessionCodec, exempt: frozenset[str]) -> None:
        self.app = app
        self.codec = codec
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", ()))
        if any(name == API_KEY_HEADER for name, _ in headers):
            await self.app(scope, receive, send)
            return
        session = self.codec.open(_cookie(scope))
        if session is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS:
            sent = dict(headers).get(CSRF_HEADER.lower().encode(), b"").decode("latin-1")
            if not sent or not hmac.compare_digest(sent, session.csrf_token):
                refused = problem_response(
                    403, f"CSRF check failed: send the session's token in the {CSRF_HEADER} header"
                )
                await refused(scope, receive, send)
                return
        headers.append((API_KEY_HEADER, session.api_key.encode("latin-1")))
        await self.app({**scope, "headers": headers}, receive, send)


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (pure ASGI, so streaming
    responses pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
