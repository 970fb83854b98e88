"""Analytics by SQL against brute force in Python; the planted first-week signals; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, insert

from agent.analytics import high_performing_patterns, suggestion_feedback
from agent.db import session_scope
from agent.models import Event, Suggestion, User
from agent.seed import FIRST_WEEK_SIGNALS, SeedResult
from tests.agent.handbuilt import A, at

CONFIDENCES = [0.05, 0.15, 0.3, 0.35, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
ADOPTED = [0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1]


def build_suggestions(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(insert(User), [{"id": 1, "email": "a@b.co", "signup_at": at(-100)}])
        rows = [
            {
                "user_id": 1,
                "kind": "t",
                "confidence": conf,
                "shown_at": at(-5),
                "adopted": bool(y),
                "responded_at": at(-4),
            }
            for conf, y in zip(CONFIDENCES, ADOPTED, strict=True)
        ]
        rows += [  # ignored: unanswered, garbage confidence, shown after as_of
            {
                "user_id": 1,
                "kind": "t",
                "confidence": 0.9,
                "shown_at": at(-1),
                "adopted": None,
                "responded_at": None,
            },
            {
                "user_id": 1,
                "kind": "t",
                "confidence": 1.7,
                "shown_at": at(-5),
                "adopted": True,
                "responded_at": at(-4),
            },
            {
                "user_id": 1,
                "kind": "t",
                "confidence": 0.2,
                "shown_at": at(2),
                "adopted": True,
                "responded_at": at(3),
            },
        ]
        c.execute(insert(Suggestion), rows)


def test_suggestion_feedback_matches_brute_force(any_engine: Engine) -> None:
    build_suggestions(any_engine)
    with session_scope(any_engine) as session:
        feedback = suggestion_feedback(session, A, buckets=4, min_precision=0.7)
    conf, y = np.array(CONFIDENCES), np.array(ADOPTED, dtype=float)
    bucket = np.minimum((conf * 4).astype(int), 3)
    ece = sum(
        (bucket == b).sum() / len(conf) * abs(y[bucket == b].mean() - conf[bucket == b].mean())
        for b in set(bucket)
    )
    assert feedback.count == len(conf)
    assert feedback.adoption_rate == pytest.approx(y.mean())
    assert feedback.ece == pytest.approx(ece)
    assert feedback.brier == pytest.approx(np.mean((conf - y) ** 2))
    assert [b.count for b in feedback.buckets] == [int((bucket == b).sum()) for b in range(4)]
    # brute force: the threshold with the most adoptions at precision >= 0.7
    best = max(
        ((t, y[conf >= t].sum(), y[conf >= t].mean()) for t in conf if y[conf >= t].mean() >= 0.7),
        key=lambda item: (item[1], item[0]),
    )
    assert feedback.threshold is not None
    assert (feedback.threshold.threshold, feedback.threshold.adoptions) == (
        pytest.approx(best[0]),
        best[1],
    )
    assert feedback.threshold.precision == pytest.approx(best[2])


def test_no_threshold_reaches_an_impossible_precision(sqlite_engine: Engine) -> None:
    build_suggestions(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        assert suggestion_feedback(session, A, min_precision=1.0).threshold is not None  # top ones
        session.execute(
            insert(Suggestion),
            [
                {
                    "user_id": 1,
                    "kind": "t",
                    "confidence": 1.0,
                    "shown_at": at(-5),
                    "adopted": False,
                    "responded_at": at(-4),
                }
            ],
        )
        assert suggestion_feedback(session, A, min_precision=1.0).threshold is None


def test_patterns_match_hand_counts(any_engine: Engine) -> None:
    """Ten accounts old enough; account 10 is the most engaged later on (the top 10%)."""
    with any_engine.begin() as c:
        users = [
            {"id": i, "email": f"u{i}@x.io", "signup_at": at(-60), "deleted_at": None}
            for i in range(1, 11)
        ]
        users += [
            {"id": 11, "email": "young@x.io", "signup_at": at(-10), "deleted_at": None},
            {"id": 12, "email": "gone@x.io", "signup_at": at(-60), "deleted_at": at(-1)},
        ]
        c.execute(insert(User), users)
        events = []
        for i in range(1, 13):
            events.append({"user_id": i, "type": "logged_in", "occurred_at": at(-60 + 1)})
            events += [
                {"user_id": i, "type": "workflow_run", "occurred_at": at(-60 + 10 + k)}
                for k in range(i)
            ]
        events += [
            {"user_id": i, "type": "integration_connected", "occurred_at": at(-60 + 2)}
            for i in (1, 2, 3, 10, 11, 12)
        ]
        events.append(
            {"user_id": 5, "type": "integration_connected", "occurred_at": at(-60 + 8)}
        )  # not week 1
        c.execute(insert(Event), events)
    with session_scope(any_engine) as session:
        report = high_performing_patterns(session, A, top_share=0.1, min_support=0.0)
    assert (report.eligible_users, report.top_users, report.engagement_threshold) == (10, 1, 10)
    patterns = {p.event_type: p for p in report.patterns}
    assert set(patterns) == {"integration_connected", "logged_in"}
    assert patterns["integration_connected"].lift == pytest.approx((1 / 1) / (4 / 10))
    assert patterns["logged_in"].lift == pytest.approx(1.0)
    assert report.patterns[0].event_type == "integration_connected"


def test_the_planted_first_week_signals_stand_out(seeded: tuple[Engine, SeedResult]) -> None:
    engine, result = seeded
    with session_scope(engine) as session:
        report = high_performing_patterns(session, result.as_of)
    top = [p.event_type for p in report.patterns[:4]]
    assert report.top_users == pytest.approx(report.eligible_users * 0.1, abs=1)
    assert sum(signal in top for signal in FIRST_WEEK_SIGNALS) >= 2
    assert all(p.lift > 1.3 for p in report.patterns if p.event_type in FIRST_WEEK_SIGNALS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"buckets": 0}, r"buckets=0 is invalid: must be an integer in \[1, 100\]"),
        ({"buckets": 2.5}, r"buckets=2.5 is invalid: must be an integer"),
        ({"min_precision": 0.0}, r"min_precision=0.0 is invalid: must be a number in \(0.0, 1.0\]"),
        ({"min_precision": float("nan")}, "min_precision=nan is invalid"),
        ({"since": at(1)}, "since=2025-06-02 00:00 is after as_of=2025-06-01 00:00"),
    ],
)
def test_bad_feedback_arguments(
    sqlite_engine: Engine, kwargs: dict[str, object], message: str
) -> None:
    with session_scope(sqlite_engine) as session, pytest.raises(ValueError, match=message):
        suggestion_feedback(session, A, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_share": 0.9}, r"top_share=0.9 is invalid: must be a number in \(0.0, 0.5\]"),
        ({"first_week_days": 0}, r"first_week_days=0 is invalid: must be an integer in \[1, 60\]"),
        ({"engagement_days": "28"}, "engagement_days='28' is invalid: must be an integer"),
        ({"min_support": 2}, r"min_support=2 is invalid: must be a number in \[0.0, 1.0\]"),
    ],
)
def test_bad_pattern_arguments(
    sqlite_engine: Engine, kwargs: dict[str, object], message: str
) -> None:
    with session_scope(sqlite_engine) as session, pytest.raises(ValueError, match=message):
        high_performing_patterns(session, A, **kwargs)  # type: ignore[arg-type]
