"""Keys of the HTTP API: created once and shown once, stored only as a hash, one role each.

A key is ``ap_`` followed by 43 URL-safe characters (32 random bytes from :mod:`secrets`). Only
its SHA-256 is stored (``api_keys.key_hash``): the secret has 256 bits of entropy, so a fast
hash cannot be brute-forced and a slow password hash would only add latency to every request.
Lookups are by hash (a unique index), so no secret is ever compared character by character.

Roles (:data:`ROLES`), from most to least powerful:

- ``admin``: everything, the seed's twelve endpoints included;
- ``operator``: run cycles, answer approvals, undo executions, the kill switch, and every read;
- ``client``: ask for decisions and report rewards (the decision API for services);
- ``viewer``: reads only.

An operator cannot approve a decision it requested itself (:func:`requested_by`: the actor
that started the cycle which held it). Creating and revoking keys is audited.

``last_used_at`` says when a key last authenticated, to within :data:`LAST_USED_RESOLUTION`:
:func:`authenticate` reads it with the key, :func:`use_due` says whether it is older than the
resolution, and only then does the caller write it (:func:`record_use`, a conditional UPDATE,
so requests racing past the same stale value write it once). A key used all day costs one
write a minute, not one per request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent import audit
from agent.models import ApiKey, Approval, AuditLog, DecisionRecord
from agent.observe import as_utc_naive

ROLES: tuple[str, ...] = ("admin", "operator", "client", "viewer")
"""Every role a key can have."""
KEY_PREFIX = "ap_"
SHOWN_PREFIX_LENGTH = 10
"""Characters of the secret kept in clear (``prefix``) so operators can tell keys apart."""
NAME_MAX_LENGTH = 100
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""How stale ``api_keys.last_used_at`` may be: it is written at most once per this period."""


class ApiKeyError(ValueError):
    """A key that cannot be created or revoked; the message says why."""


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key as listed: never its secret."""

    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's name (the audit trail's actor) and role; ``key_id`` and
    ``last_used_at`` as read when it authenticated (``None`` for a principal not read from the
    key store)."""

    name: str
    role: str
    key_id: int | None = None
    last_used_at: datetime | None = None


def hash_key(secret: str) -> str:
    """The stored form of a key: SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else ``ValueError`` naming them."""
    if role not in ROLES:
        raise ApiKeyError(f"unknown role {role!r}; allowed: {list(ROLES)}")
    return role


def _check_name(name: str) -> str:
    cleaned = name.strip() if isinstance(name, str) else ""
    if not cleaned or len(cleaned) > NAME_MAX_LENGTH:
        raise ApiKeyError(f"key name must have 1 to {NAME_MAX_LENGTH} characters, got {name!r}")
    return cleaned


def _view(key: ApiKey) -> KeyView:
    return KeyView(
        id=key.id,
        name=key.name,
        role=key.role,
        prefix=key.prefix,
        created_at=key.created_at,
        created_by=key.created_by,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


def create_key(
    session: Session, *, name: str, role: str, by: str = "cli", now: datetime | None = None
) -> tuple[KeyView, str]:
    """Create a key (audited, flushed, not committed); returns its view and the secret, which
    is shown this once. Raises :class:`ApiKeyError` for a bad role, a bad or taken name."""
    check_role(role)
    cleaned = _check_name(name)
    at = as_utc_naive(now)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=cleaned,
        role=role,
        key_hash=hash_key(secret),
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        created_at=at,
        created_by=by,
    )
    try:
        with session.begin_nested():
            session.add(key)
            session.flush()
    except IntegrityError:
        raise ApiKeyError(f"a key named {cleaned!r} already exists; choose another name") from None
    audit.append(
        session,
        actor=by,
        action="api_key_created",
        target=cleaned,
        details={"role": role, "prefix": key.prefix},
        now=at,
    )
    return _view(key), secret


def list_keys(session: Session, *, include_revoked: bool = True) -> list[KeyView]:
    """Every key (newest first), without secrets."""
    query = select(ApiKey).order_by(ApiKey.id.desc())
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return [_view(key) for key in session.scalars(query)]


def revoke_key(
    session: Session, name: str, *, by: str = "cli", now: datetime | None = None
) -> KeyView:
    """Revoke the key named ``name`` (audited, flushed, not committed). ``LookupError`` for an
    unknown name; :class:`ApiKeyError` when already revoked."""
    at = as_utc_naive(now)
    key = session.scalars(select(ApiKey).where(ApiKey.name == name)).one_or_none()
    if key is None:
        known = [k.name for k in list_keys(session)]
        raise LookupError(f"no API key named {name!r}; keys: {known}")
    if key.revoked_at is not None:
        raise ApiKeyError(
            f"API key {name!r} was already revoked at {key.revoked_at:%Y-%m-%d %H:%M}"
        )
    key.revoked_at = at
    audit.append(session, actor=by, action="api_key_revoked", target=name, details={}, now=at)
    session.flush()
    return _view(key)


def authenticate(session: Session, secret: str | None) -> Principal | None:
    """The principal of an active key with this secret, else ``None`` (no, unknown or revoked
    key: the caller answers 401 without saying which)."""
    if not secret or not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    row = session.execute(
        select(ApiKey.name, ApiKey.role, ApiKey.id, ApiKey.last_used_at).where(
            ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    return Principal(name=row[0], role=row[1], key_id=row[2], last_used_at=row[3])


def use_due(principal: Principal, now: datetime) -> bool:
    """Whether ``principal``'s ``last_used_at`` should be written at ``now``: never written, or
    at least :data:`LAST_USED_RESOLUTION` old."""
    if principal.key_id is None:
        return False
    last = principal.last_used_at
    return last is None or as_utc_naive(now) - last >= LAST_USED_RESOLUTION


def record_use(session: Session, key_id: int, now: datetime) -> bool:
    """Set key ``key_id``'s ``last_used_at`` to ``now`` unless another request did within
    :data:`LAST_USED_RESOLUTION` (flushed, not committed); returns whether this call wrote."""
    at = as_utc_naive(now)
    written = session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= at - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=at)
    )
    return bool(written.rowcount)  # type: ignore[attr-defined]


def requested_by(session: Session, approval_id: int) -> str | None:
    """Who requested approval ``approval_id``: the actor that started the cycle which held
    its decision (``None`` when unknown)."""
    cycle_id = session.execute(
        select(DecisionRecord.cycle_id)
        .join(Approval, Approval.decision_id == DecisionRecord.id)
        .where(Approval.id == approval_id)
    ).scalar_one_or_none()
    if cycle_id is None:
        return None
    return session.execute(
        select(AuditLog.actor)
        .where(AuditLog.cycle_id == cycle_id, AuditLog.action == "cycle_started")
        .limit(1)
    ).scalar_one_or_none()
