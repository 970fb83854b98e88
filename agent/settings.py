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

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AUTOPILOT_"
DEFAULT_DB_URL = "sqlite:///autopilot.db"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CHAMPION_URI = "models:/autopilot-policy@champion"


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

    # --- learning (issue 13) -----------------------------------------------------------------

    # --- trust (issue 17) --------------------------------------------------------------------

    @field_validator("db_url", "policy_uri", "mlflow_tracking_uri")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value.strip()

    @field_validator("dashboard_session_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                f"must be at least 32 characters, got {len(value.get_secret_value())}"
            )
        return value

    @field_validator("governance_file", "thresholds_file")
    @classmethod
    def _existing_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {str(value)!r} does not exist (unset it to use the default)")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and ``.env``."""
    return Settings()
