"""The policy the API decides with: loaded once, reloaded when the champion alias moves.

:class:`PolicyHolder` loads ``settings.policy_uri`` (default the MLflow registry's champion,
``models:/autopilot-policy@champion``) at start; when there is none, or loading fails, it
decides with ``rules`` and keeps the reason in ``last_error`` (shown by ``/readyz`` and the
system state). For a registry alias it asks the registry at most every
``api_policy_check_seconds`` which version the alias names, and loads that version when it
changed; :meth:`PolicyHolder.reload` does it at once (the admin endpoint). A failed reload
keeps the last good policy.

Loading goes through :func:`experiments.models.load_policy_uri` (the one loader of policy
URIs; the API never imports MLflow itself).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from policies.base import Policy

log = logging.getLogger(__name__)

_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A loaded policy and the state of loading: ``version`` is the concrete model URI (or the
    spec); ``last_error`` why the latest load or check failed (``None`` when it worked)."""

    policy: Policy
    uri: str
    loaded_at: datetime
    last_error: str | None = None
    checked_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def version(self) -> str:
        return str(self.policy.version)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _rules() -> Policy:
    from policies.rules import calibrated_rules

    return calibrated_rules()


class PolicyHolder:
    """The API's current policy (thread-safe; see the module docstring)."""

    def __init__(self, uri: str, tracking_uri: str, check_seconds: float) -> None:
        self.uri = uri
        self.tracking_uri = tracking_uri
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._next_check = 0.0
        self._current = LoadedPolicy(_rules(), "rules", _now(), "not loaded yet")

    @property
    def current(self) -> LoadedPolicy:
        """The policy to decide with now (checks the alias when a check is due; never waits
        for another thread's load)."""
        if self._is_alias and time.monotonic() >= self._next_check:
            self._check(force=False)
        return self._current

    def reload(self) -> LoadedPolicy:
        """Check the alias (or load the URI) now; returns the resulting state."""
        with self._lock:
            self._load()
        return self._current

    @property
    def _is_alias(self) -> bool:
        return _ALIAS_URI.match(self.uri) is not None

    def _check(self, *, force: bool) -> None:
        if not self._lock.acquire(blocking=force):
            return  # another request is checking; decide with the current policy meanwhile
        try:
            if force or time.monotonic() >= self._next_check:
                self._load()
        finally:
            self._lock.release()

    def _alias_target(self) -> str | None:
        """The concrete ``models:/name/version`` the alias names now, ``None`` if none."""
        from experiments.models import REGISTERED_MODEL, model_version
        from experiments.tracking import Tracking

        match = _ALIAS_URI.match(self.uri)
        assert match is not None
        if match.group("name") != REGISTERED_MODEL:
            return self.uri  # another model: no cheap alias check, load it when asked
        found = model_version(Tracking(self.tracking_uri), match.group("alias"))
        return None if found is None else f"models:/{REGISTERED_MODEL}/{found.version}"

    def _load(self) -> None:
        """Load the policy the URI names unless it is already loaded; on failure keep the
        current one and record why. Called with the lock held."""
        self._next_check = time.monotonic() + self.check_seconds
        checked = _now()
        try:
            target = self._alias_target() if self._is_alias else self.uri
            if target is None:
                raise LookupError(f"no model has the alias of {self.uri}; deciding with rules")
            if target == self._current.version and self._current.last_error is None:
                self._current = replace(self._current, checked_at=checked)
                return
            policy = self._load_uri(target)
        except Exception as error:  # a corrupt or missing model must not stop the API
            reason = f"{type(error).__name__}: {error}"
            if reason != self._current.last_error:
                log.warning("policy %s not loaded (%s); keeping %s", self.uri, reason,
                            self._current.version)  # fmt: skip
            self._current = replace(self._current, last_error=reason, checked_at=checked)
            return
        log.info("policy %s loaded: %s %s", self.uri, policy.name, policy.version)
        self._current = LoadedPolicy(policy, self.uri, checked, None, checked)

    def _load_uri(self, uri: str) -> Policy:
        if uri == "rules":
            return _rules()
        from experiments.models import load_policy_uri
        from experiments.tracking import Tracking

        return load_policy_uri(uri, tracking=Tracking(self.tracking_uri))
