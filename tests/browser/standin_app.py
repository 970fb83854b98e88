"""A stand-in for the app factory of the HTTP service (issue 10) until it lands on this branch:
FastAPI with ``/healthz`` and the dashboard installed, keys from ``$DASHBOARD_TEST_KEYS``.

``DASHBOARD_TEST_KEYS``: JSON ``{"raw key": ["name", "role"], ...}``; a name listed in
``$DASHBOARD_TEST_REVOKED`` (comma-separated) counts as revoked. Served by
``uvicorn --factory tests.browser.standin_app:create_app``.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI

from agent.db import connect
from agent.settings import get_settings
from api.dashboard_security import Principal
from api.routes.dashboard import DashboardConfig, install_dashboard


class EnvKeyBook:
    """Keys from the environment: the stand-in for the API's hashed key store."""

    def __init__(self, keys: dict[str, list[str]], revoked: set[str]) -> None:
        self._principals = {raw: Principal(name, name, role) for raw, (name, role) in keys.items()}
        self._revoked = revoked

    def principal_for(self, raw_key: str) -> Principal | None:
        principal = self._principals.get(raw_key)
        return principal if principal and self.is_active(principal.key_id) else None

    def is_active(self, key_id: str) -> bool:
        return key_id not in self._revoked


def create_app() -> FastAPI:
    settings = get_settings()
    keys = json.loads(os.environ.get("DASHBOARD_TEST_KEYS", "{}"))
    revoked = {n for n in os.environ.get("DASHBOARD_TEST_REVOKED", "").split(",") if n}
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    install_dashboard(
        app,
        DashboardConfig.from_settings(
            connect(settings.db_url), EnvKeyBook(keys, revoked), settings
        ),
    )
    return app
