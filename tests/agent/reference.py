"""A plain-Python reference for the KPI definitions: load every row, compute in loops.

Written from the definitions in :mod:`agent.observe`'s docstring, sharing no code with it but
the table models, so that the SQL and this can only agree by both being right.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from agent.models import (
    BILLING_KINDS,
    BILLING_STATUSES,
    EVENT_TYPES,
    WORKFLOW_STATUSES,
    BillingEvent,
    Event,
    Outbox,
    Setting,
    Subscription,
    Suggestion,
    UsageMetric,
    User,
    Workflow,
)
from environment.kpis import alignment_score

DAY = timedelta(days=1)
_EMAIL = re.compile(r"^.+@.+\..+$")


def _setting(settings: list[Any], key: str, at: datetime, default: float) -> float:
    values = [(s.effective_at, s.value) for s in settings if s.key == key and s.effective_at <= at]
    return float(max(values)[1]) if values else default


def reference_kpis(engine: Engine, a: datetime) -> dict[str, float]:
    with engine.connect() as c:
        users = c.execute(select(User)).all()
        events = c.execute(select(Event.user_id, Event.type, Event.occurred_at)).all()
        workflows = c.execute(select(Workflow)).all()
        suggestions = c.execute(select(Suggestion)).all()
        subs = c.execute(select(Subscription)).all()
        bills = c.execute(select(BillingEvent)).all()
        messages = (
            c.execute(select(Outbox.created_at).where(Outbox.kind == "message")).scalars().all()
        )
        metrics = c.execute(select(UsageMetric).where(UsageMetric.user_id.is_(None))).all()
        settings = c.execute(select(Setting)).all()

    by_user: dict[int | None, list[Any]] = defaultdict(list)
    for e in events:
        by_user[e.user_id].append(e)

    def unresolved(sub_id: int, t: datetime) -> bool:
        return any(
            b.subscription_id == sub_id
            and b.kind == "charge"
            and b.status == "failed"
            and b.occurred_at <= t
            and (b.resolved_at is None or b.resolved_at > t)
            for b in bills_by_sub[sub_id]
        )

    bills_by_sub: dict[int, list[Any]] = defaultdict(list)
    for b in bills:
        bills_by_sub[b.subscription_id].append(b)

    def active(s: Any, t: datetime) -> bool:
        return s.started_at <= t and (s.ended_at is None or s.ended_at > t)

    subs_by_user: dict[int, list[Any]] = defaultdict(list)
    for s in subs:
        subs_by_user[s.user_id].append(s)

    segments: Counter[str] = Counter()
    matured = matured_activated = matured_retained = 0
    for u in users:
        if u.signup_at > a or (u.deleted_at is not None and u.deleted_at <= a):
            continue
        seen = [e.occurred_at for e in by_user[u.id] if a - 14 * DAY < e.occurred_at <= a]
        silent = not seen
        activated = u.activated_at is not None and u.activated_at <= a
        live = [s for s in subs_by_user[u.id] if active(s, a)]
        good = any(not unresolved(s.id, a) for s in live)
        due = any(unresolved(s.id, a) for s in live)
        if good:
            segments["paying_at_risk" if silent else "paying_engaged"] += 1
        elif due:
            segments["past_due"] += 1
        elif u.signup_at > a - 7 * DAY:
            segments["trial_activated" if activated else "trial_pending"] += 1
        elif not activated:
            segments["unactivated"] += 1
        else:
            segments["at_risk_free" if silent else "active_free"] += 1
        if a - 15 * DAY < u.signup_at <= a - 8 * DAY:
            matured += 1
            if activated and u.activated_at - u.signup_at < 7 * DAY:
                matured_activated += 1
            if any(
                7 * DAY <= e.occurred_at - u.signup_at < 8 * DAY and e.occurred_at <= a
                for e in by_user[u.id]
            ):
                matured_retained += 1

    month = a - 30 * DAY
    conversions = sum(
        1 for s in subs if s.start_reason == "conversion" and month < s.started_at <= a
    )
    churned = sum(
        1
        for s in subs
        if s.end_reason in ("canceled", "payment_failed")
        and s.ended_at is not None
        and month < s.ended_at <= a
    )
    charges = [b for b in bills if b.kind == "charge" and a - DAY < b.occurred_at <= a]
    failures = sum(1 for b in charges if b.status == "failed")
    n_messages = sum(1 for t in messages if a - 7 * DAY < t <= a)
    spend = sum(
        m.value for m in metrics if m.name == "marketing_spend_usd" and month < m.recorded_at <= a
    )

    def list_mrr(t: datetime) -> float:
        return sum(float(s.list_price) for s in subs if active(s, t) and not unresolved(s.id, t))

    mrr = _setting(settings, "price_level", a, 1.0) * list_mrr(a)
    mrr_then = _setting(settings, "price_level", month, 1.0) * list_mrr(month)

    # records, defects, orphans
    alive_ids = {u.id for u in users if u.deleted_at is None or u.deleted_at > a}
    emails = Counter(
        u.email.lower()
        for u in users
        if u.email is not None and _EMAIL.match(u.email) and " " not in u.email
    )
    defective = sum(n - 1 for n in emails.values() if n > 1)
    for u in users:
        bad_email = u.email is None or not _EMAIL.match(u.email) or " " in u.email
        before = u.activated_at is not None and u.activated_at < u.signup_at
        defective += bad_email or u.signup_at > a or before
    defective += sum(e.type not in EVENT_TYPES or e.occurred_at > a for e in events)
    defective += sum(
        w.name is None or w.status not in WORKFLOW_STATUSES or w.created_at > a for w in workflows
    )
    defective += sum(
        s.confidence is None or not 0.0 <= s.confidence <= 1.0 or s.shown_at > a
        for s in suggestions
    )
    defective += sum(
        b.amount < 0
        or b.kind not in BILLING_KINDS
        or b.status not in BILLING_STATUSES
        or b.occurred_at > a
        for b in bills
    )
    records = len(users) + len(events) + len(workflows) + len(suggestions) + len(bills)
    orphans = sum(1 for e in events if e.user_id not in alive_ids) + sum(
        1 for w in workflows if w.user_id not in alive_ids
    )

    def latest(name: str) -> float:
        rows = [(m.recorded_at, m.value) for m in metrics if m.name == name and m.recorded_at <= a]
        return max(rows)[1]

    base = _setting(settings, "base_latency_ms", a, 180.0)
    bloat = orphans / records
    errors, excess, jobs = (
        latest("error_rate"),
        max(latest("p95_latency_ms") - base, 0.0),
        latest("failed_job_rate"),
    )
    health = 100 - (
        35 * errors / (errors + 0.02)
        + 25 * excess / (excess + 400)
        + 20 * jobs / (jobs + 0.05)
        + 20 * bloat / (bloat + 0.02)
    )

    s = segments
    activated_n = s["trial_activated"] + s["active_free"] + s["paying_engaged"]
    active_n = activated_n + s["trial_pending"] + s["unactivated"]
    paying = s["paying_engaged"] + s["paying_at_risk"]
    at_risk = s["at_risk_free"] + s["paying_at_risk"]
    churn_rate = churned / max(paying, 1)
    cac = spend / max(conversions, 1)
    arpa = mrr / paying if paying else 0.0
    kpis = {
        "activation_rate": activated_n / max(active_n, 1),
        "d7_retention": matured_retained / max(matured, 1),
        "signup_to_activation": matured_activated / max(matured, 1),
        "conversion_rate": conversions / max(s["active_free"], 1),
        "ltv_cac": arpa
        * _setting(settings, "gross_margin", a, 0.79)
        / max(churn_rate, 0.005)
        / max(cac, 1.0),
        "health_score": health,
        "alignment_score": 0.0,
        "data_quality_issue_rate": defective / records,
        "orphaned_records": float(orphans),
        "billing_failure_rate": failures / len(charges) if charges else 0.0,
        "failed_payment_backlog": s["past_due"] / max(paying, 1),
        "at_risk_share": at_risk / max(at_risk + s["active_free"] + s["paying_engaged"], 1),
        "message_pressure": n_messages / max(active_n, 1),
        "mrr": mrr,
        "mrr_growth": mrr / max(mrr_then, 1.0) - 1.0,
        "churn_rate": churn_rate,
        "cac": cac,
        "arpa": arpa,
    }
    kpis["alignment_score"] = alignment_score(kpis)
    return kpis
