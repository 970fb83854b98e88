"""A small product database built row by row, with every KPI worked out by hand.

``A`` is the observation time. The accounts (one per segment, plus cohort members, a churned
account and garbage):

== ============================ ===============================================================
id segment at A                 rows
== ============================ ===============================================================
1  trial, activated             signup A-2d, activated A-1d, event A-1d
2  trial, pending               signup A-3d, event A-3d
3  unactivated                  signup A-40d, event A-40d; NULL email (a defect)
4  active free                  signup A-60d, activated A-59d, event A-2d
5  at-risk free                 signup A-90d, activated A-89d, last event A-20d
6  paying, engaged              converted A-10d to basic (49); a charge failed A-0.2d and was
                                recovered A-0.1d; event A-1d
7  paying, at risk              pro (149) since A-150d; charge A-0.5d succeeded; last event A-30d
8  past due                     basic since A-100d; charge failed A-5d, unresolved; event A-3d
9  deleted A-5d (churned)       basic since A-300d, canceled A-5d; 2 events left behind (orphans)
10 active free, cohort          signup A-10d, activated +1d, seen +7.5d (day 7) and A-1d
11 unactivated, cohort          signup A-12d, seen +6d only
12 signup in the future         signup A+5d (a defect; in no segment)
== ============================ ===============================================================

Plus an event of an unknown type (user 4), an event of user 999 (never existed: an orphan), a
negative charge (user 7, A-3d), 3 messages in the last week and 1 older, monitoring (errors 1%,
p95 580 ms over a 180 ms base, failed jobs 5%), marketing spend 3 x 1000 USD, price level 1.0
until A-20d then 1.1, gross margin 0.8.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from agent.models import (
    BillingEvent,
    Event,
    Outbox,
    Setting,
    Subscription,
    UsageMetric,
    User,
    Workflow,
)

A = datetime(2025, 6, 1)


def at(days: float) -> datetime:
    """``A + days``."""
    return A + timedelta(days=days)


USERS: list[dict[str, Any]] = [
    {"id": 1, "email": "u1@x.io", "signup_at": at(-2), "activated_at": at(-1)},
    {"id": 2, "email": "u2@x.io", "signup_at": at(-3)},
    {"id": 3, "email": None, "signup_at": at(-40)},
    {"id": 4, "email": "u4@x.io", "signup_at": at(-60), "activated_at": at(-59)},
    {"id": 5, "email": "u5@x.io", "signup_at": at(-90), "activated_at": at(-89)},
    {"id": 6, "email": "u6@x.io", "signup_at": at(-100), "activated_at": at(-99)},
    {"id": 7, "email": "u7@x.io", "signup_at": at(-200), "activated_at": at(-199)},
    {"id": 8, "email": "u8@x.io", "signup_at": at(-120), "activated_at": at(-119)},
    {
        "id": 9,
        "email": "u9@x.io",
        "signup_at": at(-400),
        "activated_at": at(-399),
        "deleted_at": at(-5),
    },
    {"id": 10, "email": "u10@x.io", "signup_at": at(-10), "activated_at": at(-9)},
    {"id": 11, "email": "u11@x.io", "signup_at": at(-12)},
    {"id": 12, "email": "u12@x.io", "signup_at": at(5)},
]
EVENTS: list[tuple[int | None, str, datetime]] = [
    (1, "logged_in", at(-1)),
    (2, "signed_up", at(-3)),
    (3, "signed_up", at(-40)),
    (4, "logged_in", at(-2)),
    (4, "clicked_thing", at(-4)),  # unknown type
    (5, "logged_in", at(-20)),
    (6, "workflow_run", at(-1)),
    (7, "logged_in", at(-30)),
    (8, "logged_in", at(-3)),
    (9, "logged_in", at(-50)),  # orphan: user deleted
    (9, "workflow_run", at(-40)),  # orphan: user deleted
    (10, "logged_in", at(-10 + 7.5)),  # day 7 of user 10
    (10, "logged_in", at(-1)),
    (11, "logged_in", at(-12 + 6)),
    (999, "logged_in", at(-7)),  # orphan: no such user
]
WORKFLOWS: list[dict[str, Any]] = [
    {"user_id": 4, "name": "Sync CRM", "status": "active", "created_at": at(-59)},
    {"user_id": 6, "name": "Invoices", "status": "active", "created_at": at(-99)},
]
SUBSCRIPTIONS: list[dict[str, Any]] = [
    {
        "id": 1,
        "user_id": 6,
        "plan": "basic",
        "list_price": 49.0,
        "status": "active",
        "started_at": at(-10),
    },
    {
        "id": 2,
        "user_id": 7,
        "plan": "pro",
        "list_price": 149.0,
        "status": "active",
        "started_at": at(-150),
    },
    {
        "id": 3,
        "user_id": 8,
        "plan": "basic",
        "list_price": 49.0,
        "status": "past_due",
        "started_at": at(-100),
    },
    {
        "id": 4,
        "user_id": 9,
        "plan": "basic",
        "list_price": 49.0,
        "status": "canceled",
        "started_at": at(-300),
        "ended_at": at(-5),
        "end_reason": "canceled",
    },
]
BILLING: list[dict[str, Any]] = [
    {
        "subscription_id": 1,
        "user_id": 6,
        "kind": "charge",
        "status": "failed",
        "amount": 53.9,
        "occurred_at": at(-0.2),
        "resolved_at": at(-0.1),
        "resolution": "recovered",
    },
    {
        "subscription_id": 1,
        "user_id": 6,
        "kind": "retry",
        "status": "succeeded",
        "amount": 53.9,
        "occurred_at": at(-0.1),
    },
    {
        "subscription_id": 2,
        "user_id": 7,
        "kind": "charge",
        "status": "succeeded",
        "amount": 163.9,
        "occurred_at": at(-0.5),
    },
    {
        "subscription_id": 3,
        "user_id": 8,
        "kind": "charge",
        "status": "failed",
        "amount": 53.9,
        "occurred_at": at(-5),
    },
    {
        "subscription_id": 2,
        "user_id": 7,
        "kind": "charge",
        "status": "succeeded",
        "amount": -20.0,
        "occurred_at": at(-3),
    },  # negative amount
]
OUTBOX = [at(-1), at(-2), at(-6.5), at(-8)]
METRICS = [
    ("error_rate", at(-1), 0.5),  # older values are superseded by the latest
    ("error_rate", at(-0.1), 0.01),
    ("p95_latency_ms", at(-0.1), 580.0),
    ("failed_job_rate", at(-0.1), 0.05),
    ("marketing_spend_usd", at(-1), 1000.0),
    ("marketing_spend_usd", at(-2), 1000.0),
    ("marketing_spend_usd", at(-29), 1000.0),
    ("marketing_spend_usd", at(-31), 5000.0),  # outside the 30-day window
]
SETTINGS = [
    ("price_level", 1.0, at(-400)),
    ("price_level", 1.1, at(-20)),
    ("gross_margin", 0.8, at(-400)),
    ("base_latency_ms", 180.0, at(-400)),
]


def build(engine: Engine) -> None:
    """Write the rows above into an empty database."""
    with engine.begin() as connection:
        connection.execute(
            insert(User), [{"activated_at": None, "deleted_at": None, **u} for u in USERS]
        )
        connection.execute(
            insert(Event), [{"user_id": u, "type": t, "occurred_at": o} for u, t, o in EVENTS]
        )
        connection.execute(insert(Workflow), WORKFLOWS)
        connection.execute(
            insert(Subscription),
            [{"ended_at": None, "end_reason": None, **s} for s in SUBSCRIPTIONS],
        )
        connection.execute(
            insert(BillingEvent),
            [{"resolved_at": None, "resolution": None, **b} for b in BILLING],
        )
        connection.execute(
            insert(Outbox),
            [
                {"created_at": t, "kind": "message", "topic": "retention_campaign", "user_id": 5}
                for t in OUTBOX
            ],
        )
        connection.execute(
            insert(UsageMetric), [{"name": n, "recorded_at": t, "value": v} for n, t, v in METRICS]
        )
        connection.execute(
            insert(Setting),
            [{"key": k, "value": v, "effective_at": t, "set_by": "test"} for k, v, t in SETTINGS],
        )


def expected_kpis() -> dict[str, float]:
    """Every KPI of the rows above, worked out by hand (see the module docstring)."""
    records = len(USERS) + len(EVENTS) + len(WORKFLOWS) + len(BILLING)
    orphans = 3  # user 9's two events and user 999's
    bloat = orphans / records
    health = 100.0 - (
        35.0 * 0.01 / (0.01 + 0.02)  # errors
        + 25.0 * 400.0 / (400.0 + 400.0)  # latency 580 over a 180 base
        + 20.0 * 0.05 / (0.05 + 0.05)  # failed jobs
        + 20.0 * bloat / (bloat + 0.02)
    )
    mrr = 1.1 * (49.0 + 149.0)  # users 6 and 7 in good standing, price level 1.1
    mrr_month_ago = 1.0 * (149.0 + 49.0 + 49.0)  # users 7, 8 (not yet past due) and 9
    arpa = mrr / 2
    churn = 1 / 2  # user 9 lost; users 6 and 7 paying
    cac = 3000.0 / 1  # one conversion (user 6)
    return {
        "activation_rate": 4 / 7,  # users 1, 4, 10, 6 of 1, 2, 3, 4, 6, 10, 11
        "d7_retention": 1 / 2,  # users 10 and 11 matured; 10 seen on day 7
        "signup_to_activation": 1 / 2,  # user 10 activated on day 1
        "conversion_rate": 1 / 2,  # one conversion; active free users 4 and 10
        "ltv_cac": arpa * 0.8 / churn / cac,
        "health_score": health,
        "data_quality_issue_rate": 4 / records,  # NULL email, future signup, type, amount
        "orphaned_records": float(orphans),
        "billing_failure_rate": 1 / 2,  # charges in the last day: user 6 failed, user 7 ok
        "failed_payment_backlog": 1 / 2,  # user 8 past due; 2 paying
        "at_risk_share": 2 / 5,  # users 5 and 7 of 4, 10, 6, 5, 7
        "message_pressure": 3 / 7,
        "mrr": mrr,
        "mrr_growth": mrr / mrr_month_ago - 1.0,
        "churn_rate": churn,
        "cac": cac,
        "arpa": arpa,
    }


EXPECTED_SEGMENTS = {
    "trial_activated": 1,
    "trial_pending": 1,
    "unactivated": 2,
    "active_free": 2,
    "at_risk_free": 1,
    "paying_engaged": 1,
    "paying_at_risk": 1,
    "past_due": 1,
}
EXPECTED_DEFECTS = {
    "null_email": 1,
    "future_timestamp": 1,
    "unknown_event_type": 1,
    "negative_amount": 1,
}
