"""What each section of the dashboard shows, read from the agent's tables.

Every function here takes the caller's session, reads (never writes, except approvals'
expiry, which :func:`agent.approvals.list_approvals` applies and commits itself) and returns
plain dataclasses for the templates. The queries touch only the agent's own tables (cycles,
decisions, executions, approvals, audit: bounded pages, newest first, by index) plus one
aggregate over suggestions for calibration (:func:`agent.analytics.suggestion_feedback`), the
only part whose cost grows with the business (see BENCHMARKS.md, "Dashboard").

Sections (the names the page and :data:`SECTIONS` use): ``header``, ``scores``, ``issues``,
``approvals``, ``activity`` (recent cycles and decisions), ``audit``, ``learning``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agent.analytics import SuggestionFeedback, suggestion_feedback
from agent.approvals import ApprovalView, list_approvals
from agent.audit import ChainReport, verify_chain
from agent.detect import Severity
from agent.healing import HEALABLE_ISSUE_KINDS
from agent.models import AuditLog, Cycle, DecisionRecord, Execution
from agent.orchestrator import kill_switch_state, resolve_thresholds
from agent.scheduling import CYCLE, job_statuses
from agent.settings import Settings
from environment.kpis import KPI_INDEX, KPI_SPECS, TARGETED, Direction, KpiSpec

SECTIONS: tuple[str, ...] = (
    "header",
    "scores",
    "issues",
    "approvals",
    "activity",
    "audit",
    "learning",
)
DEFERRED_SECTIONS: frozenset[str] = frozenset({"learning"})
"""Sections the page fetches after it has loaded: their aggregate grows with the business (at
100k users the calibration query alone takes longer than the rest of the page)."""
TREND_CYCLES = 60
"""Cycles the trend charts cover (ten days of 4-hour cycles)."""
RECENT_ROWS = 15
"""Recent cycles and decisions listed."""
AUDIT_PAGE_SIZE = 20
MAX_AUDIT_PAGE_SIZE = 100
SEED_KPIS: tuple[str, ...] = ("activation_rate", "d7_retention", "signup_to_activation", "ltv_cac")
"""The seed's four headline KPIs (all at-least targets), charted as a percentage of target."""
SCORES: tuple[str, ...] = ("health_score", "alignment_score")
NOT_THE_POLICY: tuple[str, ...] = ("detector", "noop")
"""Deciders whose records say nothing about the policy in use: the orchestrator's self-healing
detector and the ``noop`` a self-heal pass decides with."""


@dataclass(frozen=True, slots=True)
class Header:
    """The page's header: kill switch, the policy in use and the cycles' timing."""

    kill_switch_on: bool
    kill_switch_reason: str
    policy_name: str | None
    policy_version: str | None
    policy_link: str | None
    last_cycle: Cycle | None
    next_cycle: datetime | None
    """The cycle job's next tick under the configured schedule (``None`` when it is off);
    whether a scheduler is running to fire it, this page cannot tell."""


@dataclass(frozen=True, slots=True)
class KpiRow:
    """A targeted KPI: ``met`` is ``None`` when the cycle recorded no value."""

    spec: KpiSpec
    value: float | None

    @property
    def at_most(self) -> bool:
        return self.spec.direction is Direction.AT_MOST

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.spec.attainment(self.value) >= 1.0


@dataclass(frozen=True, slots=True)
class Scores:
    """Health, alignment and each targeted KPI from the latest cycle, and their trends."""

    cycle: Cycle | None
    health: float | None
    alignment: float | None
    kpis: tuple[KpiRow, ...]
    trend: dict[str, Any]
    """For the charts: ``t`` (the cycles' ``as_of``, the agent's clock, in UNIX seconds),
    each score (0-100) and each of :data:`SEED_KPIS` as a percentage of its target, one value
    per recorded cycle (``None`` where missing)."""


@dataclass(frozen=True, slots=True)
class Findings:
    """The latest cycle's issues (self-healing kinds) and optimization opportunities, most
    severe first."""

    cycle: Cycle | None
    issues: tuple[dict[str, Any], ...]
    opportunities: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class DecisionRow:
    decision: DecisionRecord
    execution: Execution | None

    @property
    def undoable(self) -> bool:
        """Whether its execution can still be reversed (executed live, with an undo record)."""
        e = self.execution
        return e is not None and e.status == "executed" and bool(e.undo) and e.undone_at is None


@dataclass(frozen=True, slots=True)
class CycleRow:
    cycle: Cycle
    verdicts: dict[str, int]


@dataclass(frozen=True, slots=True)
class Activity:
    cycles: tuple[CycleRow, ...]
    decisions: tuple[DecisionRow, ...]


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Entries older than ``before`` (newest first); ``next_before`` pages on, ``None`` at the
    start of the trail."""

    entries: tuple[AuditLog, ...]
    before: int | None
    next_before: int | None
    total: int


@dataclass(frozen=True, slots=True)
class Learning:
    feedback: SuggestionFeedback
    thresholds: dict[str, float]
    off_policy: dict[str, Any] | None = None
    """Champion and challenger estimates once the learning loop (issue 13) records them."""
    notes: list[str] = field(default_factory=list)


def _latest_cycle(session: Session) -> Cycle | None:
    return session.scalars(
        select(Cycle).where(Cycle.kpis.is_not(None)).order_by(Cycle.id.desc()).limit(1)
    ).first()


def mlflow_link(tracking_uri: str, policy_version: str | None) -> str | None:
    """The MLflow UI page of a registered model version (``models:/NAME/VERSION``; the model's
    page for ``models:/NAME@ALIAS``) when the tracking URI is a server (http or https);
    ``None`` otherwise."""
    if not policy_version or not tracking_uri.startswith(("http://", "https://")):
        return None
    if not policy_version.startswith("models:/"):
        return None
    name, _, version = policy_version.removeprefix("models:/").partition("/")
    name = name.partition("@")[0]  # models:/NAME@ALIAS names the model, not a version
    base = tracking_uri.rstrip("/")
    if version.isdigit():
        return f"{base}/#/models/{quote(name)}/versions/{version}"
    return f"{base}/#/models/{quote(name)}"


def next_cycle_tick(session: Session, settings: Settings) -> datetime | None:
    """The cycle job's next tick under the settings' schedule (``None`` when it is off)."""
    for status in job_statuses(session, settings, limit=1):
        if status.job == CYCLE:
            return status.next_run
    return None


def header(session: Session, settings: Settings) -> Header:
    on, reason = kill_switch_state(session)
    last = session.scalars(select(Cycle).order_by(Cycle.id.desc()).limit(1)).first()
    decided = session.execute(
        select(DecisionRecord.policy_name, DecisionRecord.policy_version)
        .where(DecisionRecord.policy_name.not_in(NOT_THE_POLICY))
        .order_by(DecisionRecord.id.desc())
        .limit(1)
    ).first()
    name, version = (decided[0], decided[1]) if decided else (None, None)
    link = mlflow_link(settings.mlflow_tracking_uri, version)
    return Header(on, reason, name, version, link, last, next_cycle_tick(session, settings))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _percent_of_target(value: Any, target: float) -> float | None:
    return round(100.0 * float(value) / target, 2) if isinstance(value, int | float) else None


def scores(session: Session) -> Scores:
    cycles = list(
        session.scalars(
            select(Cycle)
            .where(Cycle.kpis.is_not(None))
            .order_by(Cycle.as_of.desc(), Cycle.id.desc())
            .limit(TREND_CYCLES)
        )
    )[::-1]
    trend: dict[str, Any] = {"t": [int(c.as_of.timestamp()) for c in cycles]}
    for name in SCORES:
        trend[name] = [(c.kpis or {}).get(name) for c in cycles]
    for name in SEED_KPIS:
        target = float(KPI_SPECS[KPI_INDEX[name]].target or 1.0)
        trend[name] = [_percent_of_target((c.kpis or {}).get(name), target) for c in cycles]
    latest = cycles[-1] if cycles else None
    kpis = latest.kpis or {} if latest else {}
    rows = tuple(KpiRow(spec, _number(kpis.get(spec.name))) for spec in TARGETED)
    return Scores(latest, kpis.get("health_score"), kpis.get("alignment_score"), rows, trend)


def _by_severity(items: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    def rank(item: dict[str, Any]) -> int:
        try:
            return Severity(str(item.get("severity"))).rank
        except ValueError:
            return len(Severity)

    return tuple(sorted(items, key=rank))


def findings(session: Session) -> Findings:
    latest = _latest_cycle(session)
    found = [i for i in (latest.issues or []) if isinstance(i, dict)] if latest else []
    return Findings(
        latest,
        _by_severity([i for i in found if i.get("kind") in HEALABLE_ISSUE_KINDS]),
        _by_severity([i for i in found if i.get("kind") not in HEALABLE_ISSUE_KINDS]),
    )


def approvals(session: Session, now: datetime | None = None) -> list[ApprovalView]:
    """Pending approvals, newest first (expired ones are marked by the agent first)."""
    return list_approvals(session, "pending", now=now)


def activity(session: Session) -> Activity:
    cycles = list(session.scalars(select(Cycle).order_by(Cycle.id.desc()).limit(RECENT_ROWS)))
    counts: dict[int, dict[str, int]] = {c.id: {} for c in cycles}
    if cycles:
        for cycle_id, verdict, n in session.execute(
            select(DecisionRecord.cycle_id, DecisionRecord.verdict, func.count())
            .where(DecisionRecord.cycle_id.in_(list(counts)))
            .group_by(DecisionRecord.cycle_id, DecisionRecord.verdict)
        ):
            if cycle_id is not None:
                counts[cycle_id][verdict] = int(n)
    decisions = session.execute(
        select(DecisionRecord, Execution)
        .outerjoin(Execution, Execution.id == DecisionRecord.execution_id)
        .order_by(DecisionRecord.id.desc())
        .limit(RECENT_ROWS)
    ).all()
    return Activity(
        tuple(CycleRow(c, counts[c.id]) for c in cycles),
        tuple(DecisionRow(d, e) for d, e in decisions),
    )


def audit_page(
    session: Session, before: int | None = None, size: int = AUDIT_PAGE_SIZE
) -> AuditPage:
    """One page of the audit trail, newest first, keyset-paginated by id (``before``: the
    cursor, exclusive; ``size``: 1 to :data:`MAX_AUDIT_PAGE_SIZE`)."""
    if not 1 <= size <= MAX_AUDIT_PAGE_SIZE:
        raise ValueError(f"audit page size must be within [1, {MAX_AUDIT_PAGE_SIZE}], got {size}")
    if before is not None and before < 1:
        raise ValueError(f"audit cursor 'before' must be a positive entry id, got {before}")
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(size + 1)
    if before is not None:
        query = query.where(AuditLog.id < before)
    rows = list(session.scalars(query))
    more = len(rows) > size
    rows = rows[:size]
    total = int(session.execute(select(func.count()).select_from(AuditLog)).scalar_one())
    return AuditPage(tuple(rows), before, rows[-1].id if more and rows else None, total)


def audit_verification(session: Session) -> ChainReport:
    return verify_chain(session)


def learning(session: Session) -> Learning:
    return Learning(suggestion_feedback(session), resolve_thresholds(None))


class PerCycle:
    """A section computed once per recorded cycle: :meth:`get` recomputes it only when the
    latest cycle's id differs from the one it was computed after (the first call, then once
    after each new cycle), and serves the kept value otherwise. For the sections whose
    aggregate grows with the business (``learning``: at 100k users its calibration query takes
    seconds); the figures between two cycles are those computed after the first, as the KPIs
    are. Two requests racing past a new cycle both compute; either result is kept."""

    def __init__(self, compute: Callable[[Session], Any]) -> None:
        self._compute = compute
        self._kept: tuple[int | None, Any] | None = None

    def get(self, session: Session) -> Any:
        latest = session.scalar(select(func.max(Cycle.id)))
        kept = self._kept
        if kept is not None and kept[0] == latest:
            return kept[1]
        value = self._compute(session)
        self._kept = (latest, value)
        return value
