"""Celery's own command line on autopilot's app, with the policy loader of the CLI installed
(MLflow model URIs load, as in every ``autopilot`` command):

    celery -A cli.celery_entry worker -l info
    celery -A cli.celery_entry beat -l info

(``autopilot worker`` and ``autopilot beat`` are the same commands.) ``agent.celery_app`` alone
works too, but its cycles cannot load an MLflow champion and decide with ``rules``.
"""

from __future__ import annotations

from agent.celery_app import app
from agent.cycle_config import use_policy_loader
from cli.common import load_policy_uri

use_policy_loader(load_policy_uri)

__all__ = ["app"]
