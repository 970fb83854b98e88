"""One settings object for every entry point: the CLI, the API, the scheduler and the workers.

Values come, in order of precedence, from keyword arguments (a command's flags), ``AUTOPILOT_*``
environment variables, a ``.env`` file in the working directory, and the defaults below. A
value that cannot be used fails at load with :class:`pydantic_settings`' validation error, which
names the variable (for example ``AUTOPILOT_DB_URL``) and what is allowed.

Obtain the process-wide instance with :func:`get_settings` (cached; a FastAPI dependency as
is); tests and commands that take flags build their own with ``Settings(db_url=...)`` or
``get_settings().model_copy(update={...})``.

Defaults that name a place:

- ``db_url``: ``sqlite:///autopilot.db``, the embedded store, in the working directory (every
  command that opens it prints which database it used);
- ``mlflow_tracking_uri``: ``sqlite:///mlflow.db`` in the working directory (MLflow's own
  ``MLFLOW_TRACKING_URI`` is honoured when ``AUTOPILOT_MLFLOW_TRACKING_URI`` is unset);
- ``governance_file`` and ``thresholds_file``: none, meaning the built-in governance and the
  thresholds shipped with the package; a configured file that does not exist is an error.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from environment.actions import CYCLE_HOURS

DEFAULT_CYCLE_SCHEDULE = f"0 */{CYCLE_HOURS:g} * * *"
"""The cycle's default crontab: one cycle per environment step (``CYCLE_HOURS``), so the
deployment's cadence and the simulator's step are one setting."""

ENV_PREFIX = "AUTOPILOT_"
DEFAULT_DB_URL = "sqlite:///autopilot.db"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CHAMPION_URI = "models:/autopilot-policy@champion"


AUDIT_KEY_MIN_CHARS = 16
"""The shortest audit key accepted (a guessable key signs nothing)."""
ALERT_BACKOFF_CAP_S = 600.0
"""The longest wait between two delivery attempts of an alert, in seconds."""


class WebhookConfig(BaseModel):
    """One alert destination (an item of ``AUTOPILOT_ALERT_WEBHOOKS``).

    ``format``: ``slack`` (a Slack-compatible ``text`` with ``blocks``) or ``pagerduty`` (an
    Events API v2 event; needs ``routing_key``). ``secret`` signs every request as Standard
    Webhooks does; a ``whsec_`` prefix means the rest is the base64 key, else the UTF-8 bytes
    are the key. Secrets never print (they show as ``**********``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    url: AnyHttpUrl
    format: Literal["slack", "pagerduty"] = "slack"
    secret: SecretStr
    routing_key: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)

    @model_validator(mode="after")
    def _pagerduty_needs_routing_key(self) -> WebhookConfig:
        if self.format == "pagerduty" and self.routing_key is None:
            raise ValueError(f"webhook {self.name!r}: format pagerduty needs a routing_key")
        if not self.secret.get_secret_value():
            raise ValueError(f"webhook {self.name!r}: secret must not be empty")
        return self


class Settings(BaseSettings):
    """Every setting of autopilot; each field's docstring is its specification."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    # --- core (the database, the policy, the guardrails' files, MLflow) ----------------------
    db_url: str = DEFAULT_DB_URL
    """SQLAlchemy URL of the product and agent store (``AUTOPILOT_DB_URL``)."""

    policy_uri: str = CHAMPION_URI
    """Policy spec or MLflow model URI the agent decides with (``AUTOPILOT_POLICY_URI``)."""

    governance_file: Path | None = None
    """Governance YAML (``AUTOPILOT_GOVERNANCE_FILE``); none: the built-in governance."""

    thresholds_file: Path | None = None
    """Confidence-thresholds YAML (``AUTOPILOT_THRESHOLDS_FILE``); none: the shipped ones."""

    kill_switch: bool = False
    """Force the kill switch on from the environment (``AUTOPILOT_KILL_SWITCH``)."""

    mlflow_tracking_uri: str = Field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    )
    """MLflow tracking and registry URI (``AUTOPILOT_MLFLOW_TRACKING_URI``)."""

    # --- API (issue 10) ----------------------------------------------------------------------
    api_max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=67_108_864)
    """Largest request body the API reads, in bytes (``AUTOPILOT_API_MAX_BODY_BYTES``);
    default 1 MiB, allowed 1 KiB to 64 MiB. A larger body is answered 413."""

    api_max_batch: int = Field(default=1_000, ge=1, le=10_000)
    """Most items of one ``POST /api/v1/decide/batch`` (``AUTOPILOT_API_MAX_BATCH``); default
    1000, allowed 1 to 10000. More items are answered 413."""

    api_policy_check_seconds: float = Field(default=5.0, ge=0.0, le=3_600.0)
    """How often, at most, the API asks the MLflow registry whether the champion alias moved
    (``AUTOPILOT_API_POLICY_CHECK_SECONDS``); default 5 s, 0 to 3600 (0: on every decision)."""

    api_seed_admin_only: bool = True
    """The seed's twelve ``/api/autonomous`` and ``/api/ml`` endpoints need ``admin`` (as the
    seed did) when true, the default; when false operators may call their POSTs and viewers
    their GETs (``AUTOPILOT_API_SEED_ADMIN_ONLY``)."""

    # --- dashboard (issue 11) ----------------------------------------------------------------
    dashboard_session_secret: SecretStr | None = None
    """Key that signs the dashboard's session cookie (``AUTOPILOT_DASHBOARD_SESSION_SECRET``),
    at least 32 characters. Default none: a random key per process, so sessions end when the
    server restarts; set it when several workers or replicas serve the dashboard."""

    dashboard_session_ttl_s: int = Field(default=8 * 3600, ge=60, le=7 * 24 * 3600)
    """How long a dashboard sign-in lasts, in seconds (``AUTOPILOT_DASHBOARD_SESSION_TTL_S``):
    default 8 hours, from 60 s to 7 days."""

    dashboard_secure_cookie: bool = False
    """Mark the session cookie ``Secure`` (``AUTOPILOT_DASHBOARD_SECURE_COOKIE``): set it when the
    dashboard is served over HTTPS; default off, since ``autopilot serve`` speaks plain HTTP."""

    # --- scheduling and alerts (issue 12) ----------------------------------------------------
    cycle_schedule: str = DEFAULT_CYCLE_SCHEDULE
    """When the full cycle runs (``AUTOPILOT_CYCLE_SCHEDULE``), UTC: a five-field crontab, an
    interval ``every N[s|m|h]`` (aligned to the Unix epoch, so every scheduler agrees on the
    ticks) or ``off``. Default every 4 hours on the hour; checked by
    :func:`agent.scheduling.parse_schedule`."""

    monitor_schedule: str = "30 * * * *"
    """When the monitor pass runs (``AUTOPILOT_MONITOR_SCHEDULE``), same forms; default hourly
    at :30 UTC."""

    schedule_live: bool = False
    """Scheduled passes execute (``AUTOPILOT_SCHEDULE_LIVE``); default false: dry runs."""

    misfire_grace_s: float = Field(default=600.0, ge=1.0, le=86_400.0)
    """How late a tick may still run, in seconds (``AUTOPILOT_MISFIRE_GRACE_S``), default 600,
    from 1 to 86400. A scheduler that was down runs a missed tick once on return when it is
    this recent; older ticks are not caught up (never a burst)."""

    tick_lease_s: float = Field(default=120.0, ge=1.0, le=3_600.0)
    """Lease of a tick claim, in seconds (``AUTOPILOT_TICK_LEASE_S``), default 120, from 1 to
    3600. A running pass renews it every third of the lease; a claim whose lease has expired
    belongs to a crashed runner and its successor may take it over."""

    broker_url: str = "redis://127.0.0.1:6379/0"
    """Celery broker (``AUTOPILOT_BROKER_URL``), default the local Redis, database 0."""

    broker_key_prefix: str = "autopilot:"
    """Prefix of every broker key (``AUTOPILOT_BROKER_KEY_PREFIX``), default ``autopilot:``,
    so several deployments can share one Redis."""

    visibility_timeout_s: float = Field(default=3_600.0, ge=1.0, le=86_400.0)
    """Seconds before Redis hands an unacknowledged task to another worker
    (``AUTOPILOT_VISIBILITY_TIMEOUT_S``), default 3600, from 1 to 86400. Keep it above the
    longest cycle and the tick lease: a redelivery before the lease expires is skipped."""

    alert_webhooks: list[WebhookConfig] = Field(default_factory=list)
    """Where alerts go (``AUTOPILOT_ALERT_WEBHOOKS``, a JSON list of
    :class:`WebhookConfig`); default none: alerts are kept in the outbox only."""

    alert_cooldown_s: float = Field(default=3_600.0, ge=0.0, le=7 * 86_400.0)
    """An alert with the same key within this many seconds of the last is counted, not sent
    again (``AUTOPILOT_ALERT_COOLDOWN_S``), default 3600, from 0 to a week."""

    alert_max_attempts: int = Field(default=8, ge=1, le=50)
    """Delivery attempts per webhook before an alert is marked failed
    (``AUTOPILOT_ALERT_MAX_ATTEMPTS``), default 8, from 1 to 50."""

    alert_backoff_s: float = Field(default=2.0, gt=0.0, le=600.0)
    """First retry delay in seconds (``AUTOPILOT_ALERT_BACKOFF_S``), default 2, above 0 and at
    most 600; it doubles per attempt, with up to as much again of random jitter, capped at
    :data:`ALERT_BACKOFF_CAP_S`. A ``Retry-After`` answer waits at least what it asks."""

    @field_validator("cycle_schedule", "monitor_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from agent.scheduling import parse_schedule  # one parser for settings and flags

        parse_schedule(value)
        return value.strip()

    @field_validator("alert_webhooks")
    @classmethod
    def _unique_webhook_names(cls, value: list[WebhookConfig]) -> list[WebhookConfig]:
        names = [hook.name for hook in value]
        if len(names) != len(set(names)):
            raise ValueError(f"webhook names must be unique, got {names}")
        return value

    # --- learning (issue 13) -----------------------------------------------------------------
    # The three gate defaults equal policies.gate.DEFAULT_DELTA / DEFAULT_MIN_SAMPLES and
    # policies.ope.DEFAULT_MIN_ESS (tested equal); written here so that loading the settings
    # does not import numpy and the estimators (``autopilot --help`` stays fast).
    learning_delta: float = Field(default=0.05, gt=0.0, le=0.5)
    """Error rate of the promotion gate on logged evidence (``AUTOPILOT_LEARNING_DELTA``): a
    worse challenger is promoted at most this often. Default 0.05; in (0, 0.5]."""

    learning_min_samples: int = Field(default=200, ge=4)
    """Fewest usable logged decisions the gate looks at (``AUTOPILOT_LEARNING_MIN_SAMPLES``);
    fewer and the champion stays. Default 200; at least 4 (two per split)."""

    learning_min_ess: float = Field(default=100.0, ge=1.0)
    """Smallest effective sample size of an off-policy estimate to trust
    (``AUTOPILOT_LEARNING_MIN_ESS``): below it ``autopilot ope`` warns and the gate refuses.
    Default 100; at least 1."""

    learning_publish_every: int = Field(default=6, ge=1)
    """Publish every N-th version of an online learner to the MLflow registry as the
    challenger (``AUTOPILOT_LEARNING_PUBLISH_EVERY``; :mod:`experiments.learners`). Default 6
    (about daily at one learning step per 4-hour cycle); at least 1."""

    # --- trust (issue 17) --------------------------------------------------------------------

    fallback_mode: Literal["hold", "act"] = "hold"
    """What a live cycle does when loading the policy failed and it fell back to ``rules``
    (``AUTOPILOT_FALLBACK_MODE``): ``hold`` every decision for approval (the default), or
    ``act`` on the rules' decisions under the usual guardrails. One of ``hold``, ``act``."""

    audit_key: SecretStr | None = None
    """The key that signs the audit trail's head record (``AUTOPILOT_AUDIT_KEY``; HMAC-SHA256,
    at least 16 characters), kept outside the database (a secret store, the service's
    environment): with it, ``audit verify`` detects a log rewritten or truncated together with
    its head. Unset: the head is checked against the log only."""

    @field_validator("audit_key")
    @classmethod
    def _long_enough_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < AUDIT_KEY_MIN_CHARS:
            raise ValueError(
                f"AUTOPILOT_AUDIT_KEY must have at least {AUDIT_KEY_MIN_CHARS} characters, got "
                f"{len(value.get_secret_value())}"
            )
        return value

    @field_validator("db_url", "policy_uri", "mlflow_tracking_uri")
    @classmethod
    def _non_empty(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError(f"{env_name(info.field_name)} must be a non-empty string")
        return value.strip()

    @field_validator("dashboard_session_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(f"must be at least 32 characters, got {len(value.get_secret_value())}")
        return value

    @field_validator("governance_file", "thresholds_file")
    @classmethod
    def _existing_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(
                f"{env_name(info.field_name)}: file {str(value)!r} does not exist "
                "(unset it to use the default)"
            )
        return value


def env_name(field_name: str | None) -> str:
    """The environment variable of a settings field: ``db_url`` -> ``AUTOPILOT_DB_URL``."""
    return f"{ENV_PREFIX}{(field_name or '').upper()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and ``.env``."""
    return Settings()
