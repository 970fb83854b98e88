"""Publishing online learners' versions to the MLflow registry at the cadence."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agent.db import make_engine, upgrade
from agent.decision_log import record_decision
from agent.learning import learn
from environment.actions import N_ACTIONS
from environment.kpis import N_OBS
from experiments.learners import publish_learner
from experiments.models import CHALLENGER, model_version
from experiments.tracking import Tracking

T0 = datetime(2026, 3, 1)


@pytest.fixture
def engine(tracking: Tracking) -> Engine:  # the tracking fixture chdirs into tmp_path
    engine = make_engine("sqlite:///learners.db")
    upgrade(engine)
    return engine


def test_every_second_version_is_published_once(engine: Engine, tracking: Tracking) -> None:
    with Session(engine) as session:
        for i in range(4):
            record_decision(
                session,
                source="policy",
                decided_at=T0 + i * timedelta(days=1),
                policy_name="rules",
                policy_version="rules",
                kpis={"mrr": 100.0 + i, "alignment_score": 50.0},
                obs=[0.5] * N_OBS,
                probabilities=[1 / N_ACTIONS] * N_ACTIONS,
                proposed_action="noop",
                confidence=0.8,
                verdict="executed",
                reasons=[],
                event_id=f"e{i}",
            )
        published = []
        for day in (1, 2, 3):  # one new reward a day: versions 1, 2, 3
            learn(session, as_of=T0 + day * timedelta(days=1) + timedelta(minutes=1))
            published.append(publish_learner(session, "linucb", every=2, tracking=tracking))
        assert published[0] is None and published[2] is None
        assert published[1] is not None
        assert publish_learner(session, "linucb", every=3, tracking=tracking) is not None
        assert publish_learner(session, "linucb", every=3, tracking=tracking) is None  # once
    challenger = model_version(tracking, CHALLENGER)
    assert challenger is not None and challenger.tags["learner_version"] == "3"
    with pytest.raises(ValueError, match="every=0"):
        publish_learner(Session(engine), "linucb", every=0, tracking=tracking)
