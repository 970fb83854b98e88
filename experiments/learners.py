"""Online learners into the MLflow registry, at a documented cadence.

The learning step (:mod:`agent.learning`) stores every version of an online learner's state in
the database. Every ``every``-th version (the ``learning_publish_every`` setting, default 6:
about once a day at one learning step per 4-hour cycle) is also logged as an MLflow model and
registered as a new version of ``autopilot-policy`` with alias ``challenger``, so that
``autopilot promote --evidence log`` can decide on it. The run (experiment
``autopilot-learners``) is tagged ``learner`` and ``learner_version``, and the model version
gets the same tags plus ``n_updates``; publishing a version twice does nothing the second time.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from agent.learning import latest_snapshot, restore_learner
from experiments.models import log_policy_model
from experiments.tracking import Tracking, configure, experiment_id, log_params, start_run

EXPERIMENT = "autopilot-learners"


def publish_learner(
    session: Session, learner: str, *, every: int, tracking: Tracking | None = None
) -> str | None:
    """Register ``learner``'s latest version when it is a multiple of ``every`` (>= 1) and
    was not published yet; returns the new registry version, else ``None``."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", learner):
        raise ValueError(f"learner name {learner!r} must be letters, digits, '_' or '-'")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every={every!r} must be an integer >= 1")
    snapshot = latest_snapshot(session, learner)
    if snapshot is None or snapshot.version % every != 0:
        return None
    store = tracking or configure()
    found = store.client().search_runs(
        experiment_ids=[experiment_id(store, EXPERIMENT)],
        filter_string=(
            f"tags.learner = '{learner}' and tags.learner_version = '{snapshot.version}'"
        ),
    )
    if found:
        return None
    tags = {
        "learner": learner,
        "learner_version": str(snapshot.version),
        "n_updates": str(snapshot.n_updates),
    }
    with start_run(store, EXPERIMENT, f"{learner} v{snapshot.version}", tags=tags):
        log_params({"learner": learner, "version": snapshot.version, "kind": snapshot.kind})
        logged = log_policy_model(restore_learner(snapshot), tags=tags)
    return logged.version
