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

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from policies.gate import DEFAULT_DELTA, DEFAULT_MIN_SAMPLES
from policies.ope import DEFAULT_MIN_ESS

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

    # --- scheduling and alerts (issue 12) ----------------------------------------------------

    # --- learning (issue 13) -----------------------------------------------------------------
    learning_delta: float = Field(default=DEFAULT_DELTA, gt=0.0, le=0.5)
    """Error rate of the promotion gate on logged evidence (``AUTOPILOT_LEARNING_DELTA``): a
    worse challenger is promoted at most this often. Default 0.05; in (0, 0.5]."""

    learning_min_samples: int = Field(default=DEFAULT_MIN_SAMPLES, ge=4)
    """Fewest usable logged decisions the gate looks at (``AUTOPILOT_LEARNING_MIN_SAMPLES``);
    fewer and the champion stays. Default 200; at least 4 (two per split)."""

    learning_min_ess: float = Field(default=DEFAULT_MIN_ESS, ge=1.0)
    """Smallest effective sample size of an off-policy estimate to trust
    (``AUTOPILOT_LEARNING_MIN_ESS``): below it ``autopilot ope`` warns and the gate refuses.
    Default 100; at least 1."""

    # --- trust (issue 17) --------------------------------------------------------------------

    @field_validator("db_url", "policy_uri", "mlflow_tracking_uri")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value.strip()

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
