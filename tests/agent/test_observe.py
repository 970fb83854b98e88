"""observe(): hand-built data against values worked out by hand, on SQLite and PostgreSQL;
garbage rows; bad input."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, insert, text

from agent.db import SchemaMissing, make_engine, session_scope
from agent.models import BillingEvent, Event, Setting, Suggestion, User, Workflow
from agent.observe import DEFECT_KINDS, SEGMENTS, KpiSnapshot, observe
from environment.kpis import KPI_NAMES, N_OBS, alignment_score, encode
from tests.agent import handbuilt
from tests.agent.handbuilt import A, at


def snapshot_of(engine: Engine, as_of: datetime | None = A) -> KpiSnapshot:
    with session_scope(engine) as session:
        return observe(session, as_of)


def test_every_kpi_matches_the_hand_computed_value(any_engine: Engine) -> None:
    handbuilt.build(any_engine)
    snapshot = snapshot_of(any_engine)
    expected = handbuilt.expected_kpis()
    expected["alignment_score"] = 0.0
    expected["alignment_score"] = alignment_score(expected)
    assert tuple(snapshot.kpis) == KPI_NAMES
    for name in KPI_NAMES:
        assert snapshot.kpis[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name
    segments = {name: int(snapshot.counts[f"segment_{name}"]) for name in SEGMENTS}
    assert segments == handbuilt.EXPECTED_SEGMENTS
    assert {k: v for k, v in snapshot.defects.items() if v} == handbuilt.EXPECTED_DEFECTS
    assert snapshot.warnings == ()


def test_encode_is_the_environments_encoding(any_engine: Engine) -> None:
    handbuilt.build(any_engine)
    snapshot = snapshot_of(any_engine)
    obs = snapshot.encode()
    assert obs.dtype == np.float32 and obs.shape == (N_OBS,)
    np.testing.assert_array_equal(obs, encode(snapshot.kpis))


def test_windows_exclude_their_start_and_include_their_end(sqlite_engine: Engine) -> None:
    """A conversion exactly 30 days old is outside the window; one at ``as_of`` is inside."""
    handbuilt.build(sqlite_engine)
    before = snapshot_of(sqlite_engine).counts["conversions_30d"]
    with sqlite_engine.begin() as connection:
        connection.execute(
            insert(User),
            [
                {"id": 20, "email": "a@b.co", "signup_at": at(-90), "activated_at": at(-89)},
                {"id": 21, "email": "c@d.co", "signup_at": at(-90), "activated_at": at(-89)},
            ],
        )
        connection.execute(
            text(
                "INSERT INTO subscriptions (user_id, plan, list_price, status, started_at,"
                " start_reason) VALUES (20, 'basic', 49, 'active', :old, 'conversion'),"
                " (21, 'basic', 49, 'active', :now, 'conversion')"
            ),
            {"old": at(-30), "now": A},
        )
    assert snapshot_of(sqlite_engine).counts["conversions_30d"] == before + 1


def test_an_empty_database_gives_finite_kpis_and_says_what_it_assumed(
    sqlite_engine: Engine,
) -> None:
    snapshot = snapshot_of(sqlite_engine)
    assert all(math.isfinite(v) for v in snapshot.kpis.values())
    assert snapshot.kpis["mrr"] == 0.0 and snapshot.kpis["mrr_growth"] == 0.0
    assert any("price_level" in w for w in snapshot.warnings)
    assert any("error_rate" in w for w in snapshot.warnings)


def test_garbage_rows_are_counted_as_defects_and_never_crash(sqlite_engine: Engine) -> None:
    handbuilt.build(sqlite_engine)
    clean = snapshot_of(sqlite_engine)
    with sqlite_engine.begin() as connection:
        connection.execute(
            insert(User),
            [
                {"id": 30, "email": "not an email", "signup_at": at(-50), "activated_at": None},
                {"id": 31, "email": "U4@X.IO", "signup_at": at(-50), "activated_at": None},
                {"id": 32, "email": "late@x.io", "signup_at": at(-50), "activated_at": at(-60)},
            ],
        )
        connection.execute(
            insert(Event),
            [
                {"user_id": 4, "type": "", "occurred_at": at(-1)},
                {"user_id": 4, "type": "logged_in", "occurred_at": at(300)},
                {"user_id": None, "type": "logged_in", "occurred_at": at(-1)},
            ],
        )
        connection.execute(
            insert(Workflow),
            [
                {"user_id": 4, "name": None, "status": "active", "created_at": at(-3)},
                {"user_id": 4, "name": "x", "status": "exploded", "created_at": at(-3)},
            ],
        )
        connection.execute(
            insert(Suggestion),
            [
                {"user_id": 4, "kind": "t", "confidence": 1.5, "shown_at": at(-1), "adopted": True},
                {
                    "user_id": 4,
                    "kind": "t",
                    "confidence": None,
                    "shown_at": at(-1),
                    "adopted": None,
                },
            ],
        )
        connection.execute(
            insert(BillingEvent),
            [
                {
                    "subscription_id": 2,
                    "user_id": 7,
                    "kind": "chargeback?",
                    "status": "succeeded",
                    "amount": 5.0,
                    "occurred_at": at(-3),
                },
                {
                    "subscription_id": 2,
                    "user_id": 7,
                    "kind": "charge",
                    "status": "succeeded",
                    "amount": -1.0,
                    "occurred_at": at(40),
                },  # negative and in the future: one record
            ],
        )
        connection.execute(
            insert(Setting),
            [{"key": "gross_margin", "value": "lots", "effective_at": at(-1), "set_by": "t"}],
        )
    snapshot = snapshot_of(sqlite_engine)
    added = {
        "malformed_email": 1,
        "duplicate_user": 1,
        "activation_before_signup": 1,
        "unknown_event_type": 1,
        "future_timestamp": 2,
        "missing_workflow_name": 1,
        "unknown_workflow_status": 1,
        "invalid_confidence": 2,
        "unknown_billing_value": 1,
        "negative_amount": 1,
        "invalid_setting": 1,
    }
    for kind in DEFECT_KINDS:
        assert snapshot.defects[kind] == clean.defects[kind] + added.get(kind, 0), kind
    new_records = 3 + 3 + 2 + 2 + 2
    new_defects = 3 + 2 + 2 + 2 + 2  # every new row but the orphan event (valid but for its user)
    assert snapshot.counts["records"] == clean.counts["records"] + new_records
    assert snapshot.counts["defective_records"] == clean.counts["defective_records"] + new_defects
    assert snapshot.kpis["orphaned_records"] == clean.kpis["orphaned_records"] + 1
    # the bad value is skipped: the latest valid one (0.8) still holds
    assert snapshot.kpis["ltv_cac"] == pytest.approx(clean.kpis["ltv_cac"], rel=1e-12)
    assert any("gross_margin" in w and "lots" in w for w in snapshot.warnings)


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        ("2025-06-01", "as_of must be a datetime, got '2025-06-01'"),
        (20250601, "as_of must be a datetime, got 20250601"),
    ],
)
def test_bad_as_of_is_rejected(sqlite_engine: Engine, as_of: object, message: str) -> None:
    with session_scope(sqlite_engine) as session, pytest.raises(ValueError, match=message):
        observe(session, as_of)  # type: ignore[arg-type]


def test_an_aware_as_of_is_converted_to_utc(sqlite_engine: Engine) -> None:
    handbuilt.build(sqlite_engine)
    eastern = A.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=-5)))
    assert snapshot_of(sqlite_engine, eastern).kpis == snapshot_of(sqlite_engine, A).kpis


def test_a_database_without_the_schema_says_what_to_run(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    with (
        session_scope(engine) as session,
        pytest.raises(SchemaMissing, match=r"no autopilot schema .* run `autopilot db upgrade"),
    ):
        observe(session, A)
