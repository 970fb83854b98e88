"""The dashboard's sign-in session, CSRF protection and security headers.

- **Sign-in**: an operator types an API key once; the server resolves it to a
  :class:`Principal` (through a :class:`KeyBook`, the API's key store) and answers with a
  session cookie (:data:`SESSION_COOKIE`): HttpOnly, SameSite=Strict, signed with
  itsdangerous and expiring after ``dashboard_session_ttl_s``. The key itself is never stored
  in the cookie, the URL or the browser's storage; the cookie carries the key's id, name, role
  and the session's CSRF token, and every request checks that the key is still active, so a
  revoked key ends its sessions at once.
- **CSRF**: every state-changing request must send the session's token in
  :data:`CSRF_HEADER` (the page reads it from a ``<meta>`` element); the sign-in form, which
  has no session yet, must come from the same origin (``Origin`` or ``Sec-Fetch-Site``).
- **Headers**: :class:`SecurityHeadersMiddleware` sets :data:`CONTENT_SECURITY_POLICY` (only
  the app's own scripts, styles and connections; no inline script, no framing) and the usual
  companions on every response.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Protocol

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROLES: tuple[str, ...] = ("admin", "operator", "client", "viewer")
"""The API's roles (issue 10), most powerful first."""

DASHBOARD_ROLES: frozenset[str] = frozenset({"admin", "operator", "viewer"})
"""Who may sign in to the dashboard: a ``client`` key belongs to a service, not a person."""

CONTROL_ROLES: frozenset[str] = frozenset({"admin", "operator"})
"""Who sees and may use the controls (cycles, approvals, undo, the kill switch); a viewer
only reads."""

SESSION_COOKIE = "autopilot_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""Only the app's own files run or load; inline script and style attributes are refused (the
page uses none: uPlot styles through the CSSOM, which CSP allows)."""

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a key belongs to: its store id, its (recorded) name and its role."""

    key_id: str
    name: str
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; allowed: {list(ROLES)}")

    @property
    def can_control(self) -> bool:
        return self.role in CONTROL_ROLES


class KeyBook(Protocol):
    """The API's key store as the dashboard needs it."""

    def principal_for(self, raw_key: str) -> Principal | None:
        """The active key's principal, ``None`` when the key is unknown or revoked."""
        ...

    def is_active(self, key_id: str) -> bool:
        """Whether the key with this id may still be used."""
        ...


@dataclass(frozen=True, slots=True)
class DashboardSession:
    """A signed-in operator: the principal and the session's CSRF token."""

    principal: Principal
    csrf_token: str


class SignInError(ValueError):
    """A sign-in that cannot be accepted; the message is safe to show."""


class SessionCodec:
    """Signs and reads session cookies. ``secret``: at least 32 characters; ``ttl_s``: how
    long a session lasts, in seconds (60 s to 7 days, the settings' bounds)."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        if len(secret) < 32:
            raise ValueError(f"session secret must be at least 32 characters, got {len(secret)}")
        if not 60 <= ttl_s <= 7 * 24 * 3600:
            raise ValueError(f"ttl_s must be within [60, 604800] seconds, got {ttl_s}")
        self.ttl_s = ttl_s
        self._serializer = URLSafeTimedSerializer(secret, salt="autopilot-dashboard-session")

    def issue(self, principal: Principal) -> tuple[str, DashboardSession]:
        """A new session for ``principal``: (cookie value, session)."""
        session = DashboardSession(principal, secrets.token_urlsafe(32))
        payload = {
            "k": principal.key_id,
            "n": principal.name,
            "r": principal.role,
            "c": session.csrf_token,
        }
        return self._serializer.dumps(payload), session

    def read(self, cookie: str | None) -> DashboardSession | None:
        """The session a cookie carries; ``None`` when absent, forged, expired or malformed."""
        if not cookie:
            return None
        try:
            payload = self._serializer.loads(cookie, max_age=self.ttl_s)
            return DashboardSession(
                Principal(str(payload["k"]), str(payload["n"]), str(payload["r"])),
                str(payload["c"]),
            )
        except (BadSignature, SignatureExpired, KeyError, TypeError, ValueError):
            return None


def sign_in(book: KeyBook, raw_key: str) -> Principal:
    """The principal of a key typed into the sign-in form, or :class:`SignInError`."""
    key = raw_key.strip()
    if not key or len(key) > 200:
        raise SignInError("enter an API key (1 to 200 characters)")
    principal = book.principal_for(key)
    if principal is None:
        raise SignInError("unknown or revoked API key")
    if principal.role not in DASHBOARD_ROLES:
        raise SignInError(
            f"a {principal.role} key cannot use the dashboard; allowed roles: "
            f"{sorted(DASHBOARD_ROLES)}"
        )
    return principal


def csrf_ok(request: Request, session: DashboardSession) -> bool:
    """Whether a state-changing request carries this session's CSRF token."""
    sent = request.headers.get(CSRF_HEADER, "")
    return bool(sent) and hmac.compare_digest(sent, session.csrf_token)


def same_origin(request: Request) -> bool:
    """Whether a request without a session (the sign-in form) came from this site: the
    browser's ``Sec-Fetch-Site`` says ``same-origin``, or ``Origin`` is this host."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in {"same-origin", "none"}
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site form post (they always send one of the two)
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


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
