"""The learning step on a real SQLite database: reward join across windows, online updates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from agent.decision_log import (
    DEFAULT_REWARD,
    export_jsonl,
    find_by_event_id,
    record_decision,
    report_reward,
)
from agent.learning import (
    OBSERVATION_GRACE,
    interim_kpi_window_reward,
    join_rewards,
    latest_snapshot,
    learn,
    learning_status,
    load_log,
    restore_learner,
)
from agent.models import DecisionRecord, LearnerSnapshot
from environment.actions import ACTION_NAMES, N_ACTIONS
from environment.kpis import N_OBS
from policies.bandits import LinUCBBandit, features
from policies.logged import bandit_feedback, read_jsonl

T0 = datetime(2026, 3, 1)
DAY = timedelta(days=1)
UNIFORM = [1.0 / N_ACTIONS] * N_ACTIONS


@pytest.fixture
def session(sqlite_engine: Engine) -> Iterator[Session]:
    """A session on an empty SQLite file at the head migration."""
    with Session(sqlite_engine) as db:
        yield db


def decide(
    db: Session,
    event_id: str,
    at: datetime,
    mrr: float,
    alignment: float,
    action: str = "noop",
    obs: list[float] | None = None,
    probabilities: list[float] | None = None,
) -> DecisionRecord:
    return record_decision(
        db,
        source="policy",
        decided_at=at,
        policy_name="rules",
        policy_version="rules",
        kpis={"mrr": mrr, "alignment_score": alignment},
        obs=obs if obs is not None else [0.5] * N_OBS,
        probabilities=probabilities if probabilities is not None else UNIFORM,
        proposed_action=action,
        confidence=0.9,
        verdict="executed",
        reasons=[],
        event_id=event_id,
    )


def reward_of(db: Session, event_id: str) -> tuple[float | None, str | None]:
    row = find_by_event_id(db, event_id)
    assert row is not None
    return row.reward, row.reward_source


EXPECTED = interim_kpi_window_reward(
    {"mrr": 100.0, "alignment_score": 50.0}, {"mrr": 110.0, "alignment_score": 60.0}, DAY
)


def test_the_interim_reward_by_hand() -> None:
    assert pytest.approx(0.1) == EXPECTED  # value weight 1; alignment is not paid (weight 0)
    with pytest.raises(KeyError):
        interim_kpi_window_reward({"mrr": 1.0}, {"mrr": 1.0}, DAY)
    with pytest.raises(ValueError, match="mrr before the window must be > 0"):
        interim_kpi_window_reward(
            {"mrr": 0.0, "alignment_score": 1}, {"mrr": 1, "alignment_score": 1}, DAY
        )


def test_on_time_the_reward_is_computed_from_the_close(session: Session) -> None:
    decide(session, "d", T0, 100.0, 50.0)  # noop: a one-day window
    decide(session, "obs", T0 + DAY + timedelta(hours=1), 110.0, 60.0)
    decide(session, "later", T0 + DAY + timedelta(hours=3), 200.0, 90.0)  # not the close
    before = join_rewards(session, as_of=T0 + DAY - timedelta(seconds=1))
    assert before.open == 3 and not before.computed
    report = join_rewards(session, as_of=T0 + DAY + timedelta(hours=3))
    assert report.computed == ("d",) and not report.late and not report.defaulted
    assert reward_of(session, "d") == (pytest.approx(EXPECTED), "computed")


def test_late_the_close_still_decides(session: Session) -> None:
    decide(session, "d", T0, 100.0, 50.0)
    decide(session, "obs", T0 + DAY + timedelta(hours=1), 110.0, 60.0)
    decide(session, "much-later", T0 + 4 * DAY, 300.0, 95.0)
    report = join_rewards(session, as_of=T0 + 5 * DAY)  # the scheduler was down four days
    assert "d" in report.computed and report.late[0] == "d"
    assert reward_of(session, "d") == (pytest.approx(EXPECTED), "computed")


def test_never_observed_gets_the_default_after_the_grace(session: Session) -> None:
    decide(session, "d", T0, 100.0, 50.0)
    close = T0 + DAY
    waiting = join_rewards(session, as_of=close + OBSERVATION_GRACE)  # at the grace: wait
    assert waiting.waiting == 1 and reward_of(session, "d") == (None, None)
    report = join_rewards(session, as_of=close + OBSERVATION_GRACE + timedelta(seconds=1))
    assert report.defaulted == ("d",)
    assert reward_of(session, "d") == (DEFAULT_REWARD, "default")


def test_the_cycles_own_snapshot_is_an_observation(session: Session) -> None:
    decide(session, "d", T0, 100.0, 50.0)
    report = join_rewards(
        session, as_of=T0 + DAY, current_kpis={"mrr": 110.0, "alignment_score": 60.0}
    )
    assert report.computed == ("d",)


def test_reported_rewards_stand_and_dangling_ones_are_named(session: Session) -> None:
    decide(session, "reported", T0, 100.0, 50.0)
    report_reward(session, "reported", 0.7, now=T0 + timedelta(hours=1))
    session.add(
        DecisionRecord(
            decided_at=T0,
            policy_name="old",
            policy_version="0",
            context_obs=[0.5] * N_OBS,
            context_kpis={},
            propensities=UNIFORM,
            action="noop",
            confidence=0.5,
            verdict="executed",
            verdict_reasons=[],
            event_id="pre-0003",
        )
    )
    session.flush()
    report = join_rewards(session, as_of=T0 + 30 * DAY)
    assert reward_of(session, "reported") == (0.7, "reported")
    assert report.dangling == ("pre-0003",)
    assert report.to_dict()["dangling_ids"] == ["pre-0003"]


def test_online_updates_over_cycles_equal_one_pass(session: Session) -> None:
    """60 decisions over 30 days, learned at 60 steps 12 hours apart (each committed and the
    learner restored from the database), against a fresh LinUCB trained once on the same
    rewards: update counts equal, ``b`` equal to 1e-12, ``A^-1`` equal to the closed form
    ``(I + sum x x^T)^-1`` to 1e-9 relative (Sherman-Morrison's rounding)."""
    rng = np.random.default_rng(0)
    mrr = 100.0
    for i in range(60):
        mrr *= 1.0 + rng.normal(0.0, 0.02)
        probabilities = rng.dirichlet(np.ones(N_ACTIONS)).tolist()
        action = ACTION_NAMES[int(rng.choice(N_ACTIONS, p=probabilities))]
        decide(
            session,
            f"e{i}",
            T0 + i * timedelta(hours=12),
            mrr,
            float(rng.uniform(40, 90)),
            action=action,
            obs=rng.uniform(0, 1, N_OBS).tolist(),
            probabilities=probabilities,
        )
    session.commit()
    for step in range(1, 61):
        learn(session, as_of=T0 + step * timedelta(hours=12) + timedelta(minutes=1))
        session.commit()
    rows = session.scalars(
        select(DecisionRecord)
        .where(DecisionRecord.reward_source == "computed")
        .order_by(DecisionRecord.reward_joined_at, DecisionRecord.id)
    ).all()
    assert len(rows) > 30
    snapshots = session.scalars(select(LearnerSnapshot).order_by(LearnerSnapshot.version)).all()
    assert [s.version for s in snapshots] == list(range(1, len(snapshots) + 1))
    assert sum(len(s.learned_event_ids) for s in snapshots) == len(rows)
    assert [e for s in snapshots for e in s.learned_event_ids] == [r.event_id for r in rows]
    latest = latest_snapshot(session, "linucb")
    assert latest is not None
    online = restore_learner(latest)
    assert isinstance(online, LinUCBBandit) and online.n_updates == len(rows)

    one_pass = LinUCBBandit()
    for row in rows:
        one_pass.update(
            np.asarray(row.context_obs, dtype=np.float32),
            ACTION_NAMES.index(row.executed_action),
            float(row.reward),
            float(row.propensity),
        )
    np.testing.assert_array_equal(online.model.counts, one_pass.model.counts)
    np.testing.assert_allclose(online.model.b, one_pass.model.b, atol=1e-12)
    x = features(np.array([r.context_obs for r in rows], dtype=np.float32))
    actions = np.array([ACTION_NAMES.index(r.executed_action) for r in rows])
    ridge = one_pass.config.ridge
    for arm in range(N_ACTIONS):
        xa = x[actions == arm]
        closed_form = np.linalg.inv(ridge * np.eye(x.shape[1]) + xa.T @ xa)
        np.testing.assert_allclose(online.model.a_inv[arm], closed_form, rtol=1e-9, atol=1e-12)
    # a step with nothing new writes no version
    again = learn(session, as_of=T0 + 61 * timedelta(hours=12))
    assert again.learners[0].version is None


def test_the_database_export_reads_as_the_contract(session: Session, tmp_path: Path) -> None:
    """Decisions joined by the learning step, exported by the decision log, read back by
    ``policies.logged`` and usable by the estimators."""
    decide(session, "d", T0, 100.0, 50.0, action="payment_retry")
    decide(session, "obs", T0 + DAY + timedelta(hours=1), 110.0, 60.0)
    join_rewards(session, as_of=T0 + 30 * DAY)
    path = tmp_path / "export.jsonl"
    assert export_jsonl(session, path) == 2
    records = read_jsonl(path)
    assert [r.event_id for r in records] == ["d", "obs"]
    assert records[1].reward_source == "default" and records[1].reward == DEFAULT_REWARD
    feedback, counts = bandit_feedback(records)
    assert counts.used == 2
    assert feedback.pscores.tolist() == pytest.approx([1 / N_ACTIONS] * 2)


def test_learning_status_and_the_log_for_the_api(session: Session) -> None:
    decide(session, "d", T0, 100.0, 50.0)
    decide(session, "obs", T0 + DAY, 110.0, 60.0)
    decide(session, "open", T0 + 2 * DAY, 120.0, 60.0)
    decide(session, "reported", T0 + 2 * DAY, 120.0, 60.0)
    report_reward(session, "reported", 0.5, now=T0 + 2 * DAY)
    as_of = T0 + 2 * DAY + timedelta(hours=1)
    learn(session, as_of=as_of)
    status = learning_status(session, as_of=as_of)
    assert status["joined"] == {"computed": 2, "reported": 1, "default": 0}
    assert (status["open"], status["waiting"], status["dangling"]) == (1, 0, 0)
    assert status["learners"] == [
        {
            "learner": "linucb",
            "version": 1,
            "kind": "linucb",
            "n_updates": 3,
            "updated_at": "2026-03-03T01:00:00Z",
        }
    ]
    records = load_log(session)
    assert [r.event_id for r in records] == ["d", "obs", "open", "reported"]
    assert records[0].reward_source == "computed"


@pytest.mark.postgres
def test_the_join_and_an_update_on_postgresql(postgres_engine: Engine) -> None:
    """On time and never on PostgreSQL, then one learner version (its LargeBinary state)."""
    with Session(postgres_engine) as db:
        decide(db, "on-time", T0, 100.0, 50.0)
        decide(db, "obs", T0 + DAY + timedelta(hours=1), 110.0, 60.0)
        decide(db, "never", T0 + 10 * DAY, 100.0, 50.0)
        on_time = join_rewards(db, as_of=T0 + DAY + timedelta(hours=2))
        assert on_time.computed == ("on-time",)
        later = join_rewards(db, as_of=T0 + 30 * DAY)
        assert later.defaulted == ("obs", "never")
        report = learn(db, as_of=T0 + 30 * DAY)
        db.commit()
        assert report.learners[0].version == 1 and report.learners[0].updates == 1
        snapshot = latest_snapshot(db, "linucb")
        assert snapshot is not None and restore_learner(snapshot).n_updates == 1


def test_the_settings_defaults_are_the_gates() -> None:
    from agent.settings import Settings
    from policies.gate import DEFAULT_DELTA, DEFAULT_MIN_SAMPLES
    from policies.ope import DEFAULT_MIN_ESS

    defaults = {name: spec.default for name, spec in Settings.model_fields.items()}
    assert defaults["learning_delta"] == DEFAULT_DELTA
    assert defaults["learning_min_samples"] == DEFAULT_MIN_SAMPLES
    assert defaults["learning_min_ess"] == DEFAULT_MIN_ESS


@pytest.mark.parametrize(
    ("field", "bad", "good"),
    [
        ("learning_delta", 0.0, 0.5),
        ("learning_delta", 0.5000001, 1e-9),
        ("learning_min_samples", 3, 4),
        ("learning_min_ess", 0.99, 1.0),
        ("learning_publish_every", 0, 1),
    ],
)
def test_learning_settings_bounds(field: str, bad: float, good: float) -> None:
    from pydantic import ValidationError

    from agent.settings import Settings

    assert getattr(Settings(**{field: good}), field) == good
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: bad})
