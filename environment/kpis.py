"""The KPI vocabulary shared by the simulator, the SQL observation, the API and the dashboard.

Every KPI has one name, one unit and one meaning everywhere. The simulator's ``info["kpis"]``
and the agent's SQL snapshot return these names; :func:`encode` turns either into the same
bounded observation vector.

Windows (one simulated day is ``steps_per_day`` environment steps):

=========================  ==============================================================
``activation_rate``        activated accounts / active accounts, where active accounts are
                           the trial accounts (signed up in the last 7 days), the
                           registered-but-unactivated accounts still around, and the
                           activated accounts not at risk.
``d7_retention``           over the cohorts that signed up 8 to 14 days ago (fully matured),
                           the share seen again on their day 7 (between 7 and 8 days after
                           signup).
``signup_to_activation``   over the same matured cohorts, the share that activated within 7
                           days of signup.
``conversion_rate``        free-to-paid conversions over the trailing 30 days divided by the
                           free activated accounts (a monthly rate).
``ltv_cac``                (ARPA x gross margin / monthly churn) / CAC.
``health_score``           0-100 from error rate, p95 latency, failed jobs and data bloat.
``alignment_score``        0-100, see :func:`alignment_score`.
``data_quality_issue_rate``  defective records / all records.
``orphaned_records``       count of workflows and events whose user is gone.
``billing_failure_rate``   failed billing attempts / attempts over the trailing day.
``failed_payment_backlog`` unresolved failed payments / paying subscribers.
``at_risk_share``          accounts active before but silent for 14 days / (those + active).
``message_pressure``       campaign and prompt messages per active account, trailing 7 days.
``mrr``                    monthly recurring revenue (USD) of subscriptions in good standing.
``mrr_growth``             MRR now / MRR 30 days ago - 1.
``churn_rate``             paying customers lost over the trailing 30 days / paying customers.
``cac``                    marketing spend / new paying customers, trailing 30 days (USD).
``arpa``                   MRR / paying customers (USD per month).
=========================  ==============================================================

``failed_payment_backlog`` and ``message_pressure`` extend DESIGN.md's list: without them the
observation cannot tell an outage from a backlog, or a fresh audience from a fatigued one, and
both are plain SQL aggregates (unresolved failed billing events; Outbox rows of the last week).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from environment.actions import ACTION_NAMES, N_ACTIONS


class Direction(StrEnum):
    """Which side of its target a KPI should be on."""

    AT_LEAST = "at_least"
    AT_MOST = "at_most"


class Scale(StrEnum):
    """How a KPI in natural units maps into the observation box.

    - ``UNIT``: already a share in [0, 1]; used as is.
    - ``PERCENT``: a 0-100 score; divided by 100.
    - ``POSITIVE``: a non-negative quantity; ``x / (x + half)`` maps [0, inf) onto [0, 1) and
      equals 0.5 at ``x == half``, so large values saturate smoothly instead of being clipped.
    - ``SIGNED``: a quantity of either sign; ``tanh(x / half)`` maps it onto (-1, 1).
    """

    UNIT = "unit"
    PERCENT = "percent"
    POSITIVE = "positive"
    SIGNED = "signed"


@dataclass(frozen=True, slots=True)
class KpiSpec:
    """One KPI: its name, unit, how it is encoded, and its target if it has one."""

    name: str
    unit: str
    scale: Scale
    half: float = 1.0
    """For ``POSITIVE`` and ``SIGNED``: the value that encodes to 0.5 (resp. tanh(1))."""
    target: float | None = None
    direction: Direction = Direction.AT_LEAST

    @property
    def low(self) -> float:
        """Smallest encoded value."""
        return -1.0 if self.scale is Scale.SIGNED else 0.0

    def decode(self, encoded: float) -> float:
        """Inverse of the encoding (exact except where :func:`encode` saturates)."""
        if self.scale is Scale.UNIT:
            return encoded
        if self.scale is Scale.PERCENT:
            return 100.0 * encoded
        if self.scale is Scale.POSITIVE:
            encoded = min(encoded, 1.0 - 1e-7)
            return self.half * encoded / (1.0 - encoded)
        return self.half * math.atanh(max(min(encoded, 1.0 - 1e-7), -1.0 + 1e-7))

    def attainment(self, value: float) -> float:
        """How far the KPI is towards its target, in [0, 1] (1 = at or past the target)."""
        if self.target is None:
            raise ValueError(f"KPI {self.name!r} has no target")
        return _attainment(value, self.target, self.direction is Direction.AT_LEAST)


def _attainment(value: float, target: float, at_least: bool) -> float:
    """``value / target`` (at-least) or ``target / value`` (at-most), capped at 1."""
    if at_least:
        return 1.0 if value >= target else max(value, 0.0) / target
    return 1.0 if value <= target else target / value


KPI_SPECS: tuple[KpiSpec, ...] = (
    # Seed targets: activation 40%, D7 retention 25%, signup-to-activation 40%, LTV:CAC 4:1.
    KpiSpec("activation_rate", "share", Scale.UNIT, target=0.40),
    KpiSpec("d7_retention", "share", Scale.UNIT, target=0.25),
    KpiSpec("signup_to_activation", "share", Scale.UNIT, target=0.40),
    # Median free-to-paid is 4-8% (Redpoint; Growth Unhinged 2026), so 5% a month is the bar.
    KpiSpec("conversion_rate", "share per month", Scale.POSITIVE, half=0.05, target=0.05),
    KpiSpec("ltv_cac", "ratio", Scale.POSITIVE, half=4.0, target=4.0),
    KpiSpec("health_score", "0-100", Scale.PERCENT, target=80.0),
    KpiSpec("alignment_score", "0-100", Scale.PERCENT),
    # 2.1% of B2B contacts decay a month (MarketingSherpa); more than 2% defective is a problem.
    KpiSpec(
        "data_quality_issue_rate",
        "share",
        Scale.POSITIVE,
        half=0.02,
        target=0.02,
        direction=Direction.AT_MOST,
    ),
    KpiSpec("orphaned_records", "records", Scale.POSITIVE, half=2000.0),
    # B2B decline rates run 5-14% of monthly transactions (Recurly): 8% is the ceiling.
    KpiSpec(
        "billing_failure_rate",
        "share",
        Scale.UNIT,
        target=0.08,
        direction=Direction.AT_MOST,
    ),
    KpiSpec("failed_payment_backlog", "share", Scale.POSITIVE, half=0.01),
    KpiSpec("at_risk_share", "share", Scale.UNIT, target=0.15, direction=Direction.AT_MOST),
    KpiSpec("message_pressure", "messages per account", Scale.POSITIVE, half=1.0),
    KpiSpec("mrr", "USD per month", Scale.POSITIVE, half=250_000.0),
    KpiSpec("mrr_growth", "share per month", Scale.SIGNED, half=0.05),
    KpiSpec("churn_rate", "share per month", Scale.POSITIVE, half=0.05),
    KpiSpec("cac", "USD", Scale.POSITIVE, half=400.0),
    KpiSpec("arpa", "USD per month", Scale.POSITIVE, half=80.0),
)
"""Every KPI, in observation order."""

KPI_NAMES: tuple[str, ...] = tuple(spec.name for spec in KPI_SPECS)
KPI_INDEX: dict[str, int] = {name: i for i, name in enumerate(KPI_NAMES)}
N_KPIS = len(KPI_SPECS)
TARGETED: tuple[KpiSpec, ...] = tuple(spec for spec in KPI_SPECS if spec.target is not None)
SPEC_BY_NAME: dict[str, KpiSpec] = {spec.name: spec for spec in KPI_SPECS}


@dataclass(frozen=True, slots=True)
class PaymentBands:
    """What the billing KPIs' values mean: the one home of the numbers that detection
    (:mod:`agent.detect`) and the rules policy (:mod:`policies.rules`) share.

    - ``outage_failure_rate``: a ``billing_failure_rate`` at or above it is a processor outage
      (normal is 5-14%, Recurly; the simulator's outages decline 40-70%): retries wait.
    - ``backlog_act``, ``backlog_medium``, ``backlog_high``: ``failed_payment_backlog`` bands.
      The rules policy retries from ``backlog_act``; detection calls a backlog medium (healed
      without a human) from ``backlog_medium`` and high from ``backlog_high``. The policy acts
      earlier than the safety net on purpose: a retry is cheap, a human's attention is not.
    """

    outage_failure_rate: float = 0.30
    backlog_act: float = 0.005
    backlog_medium: float = 0.01
    backlog_high: float = 0.03


PAYMENT_BANDS = PaymentBands()


RECENT_ACTION_NAMES: tuple[str, ...] = ACTION_NAMES[1:]
"""The actions whose recency the observation carries (every action but ``noop``)."""
RECENT_HORIZON_CYCLES = 180
"""Cycles (30 days of 4-hour cycles) beyond which an action counts as "long ago / never": the
longest cooldown or effect memory a policy needs (``funnel_fix``'s 180-cycle cooldown)."""
RECENT_FEATURES: tuple[str, ...] = tuple(f"cycles_since_{name}" for name in RECENT_ACTION_NAMES)
"""Names of the recent-action entries of the observation, in observation order."""
OBS_NAMES: tuple[str, ...] = KPI_NAMES + RECENT_FEATURES
"""Every entry of the observation vector: the KPIs, then the recent actions."""
N_RECENT = len(RECENT_FEATURES)
N_OBS = len(OBS_NAMES)

OBS_LOW: NDArray[np.float32] = np.array(
    [spec.low for spec in KPI_SPECS] + [0.0] * N_RECENT, dtype=np.float32
)
OBS_HIGH: NDArray[np.float32] = np.ones(N_OBS, dtype=np.float32)

# Per-KPI constants as plain tuples: on 18 numbers a Python loop beats numpy's call overhead.
_ENCODING: tuple[tuple[Scale, float], ...] = tuple((spec.scale, spec.half) for spec in KPI_SPECS)
_TARGETS: tuple[tuple[int, float, bool], ...] = tuple(
    (KPI_INDEX[spec.name], spec.target, spec.direction is Direction.AT_LEAST)
    for spec in TARGETED
    if spec.target is not None
)


def kpi_vector(kpis: Mapping[str, float]) -> list[float]:
    """The KPIs as a list in :data:`KPI_NAMES` order."""
    return [kpis[name] for name in KPI_NAMES]


def alignment_of(values: Sequence[float]) -> float:
    """:func:`alignment_score` of KPI values in :data:`KPI_NAMES` order."""
    total = 0.0
    for index, target, at_least in _TARGETS:
        total += _attainment(values[index], target, at_least)
    return 100.0 * total / len(_TARGETS)


def alignment_score(kpis: Mapping[str, float]) -> float:
    """0-100: the mean attainment of every KPI that has a target.

    Attainment is ``value / target`` for at-least targets and ``target / value`` for at-most
    targets, capped at 1, so a KPI past its target adds nothing more and the score is 100 only
    when every target is met.
    """
    return alignment_of(kpi_vector(kpis))


def check_kpis(kpis: Mapping[str, float]) -> None:
    """Raise ``ValueError`` naming the problem if ``kpis`` is not a complete, finite KPI set."""
    missing = [name for name in KPI_NAMES if name not in kpis]
    if missing:
        raise ValueError(f"KPIs missing: {missing}; expected every name in {list(KPI_NAMES)}")
    unknown = sorted(set(kpis) - set(KPI_NAMES))
    if unknown:
        raise ValueError(f"unknown KPI names {unknown}; allowed: {list(KPI_NAMES)}")
    bad = {name: kpis[name] for name in KPI_NAMES if not math.isfinite(kpis[name])}
    if bad:
        raise ValueError(f"KPIs must be finite numbers, got {bad}")


def encode_recent_actions(cycles_since: Mapping[str, int] | None = None) -> list[float]:
    """The recent-action part of the observation: per action of :data:`RECENT_ACTION_NAMES`,
    ``min(c, H) / H`` with ``c`` the cycles since the action last executed (1: in the cycle
    just completed, 0: in the current one) and ``H`` :data:`RECENT_HORIZON_CYCLES`.

    A missing entry means "long ago / never" and encodes to 1.0; a ``noop`` entry is ignored
    (doing nothing has no recency). The one encoding for the environment (its state's
    ``cycles_since``), the agent's cycle (from its executions table) and the API (a request's
    ``recent_actions``). ``ValueError`` names an unknown action or a count that is not an
    integer >= 0.
    """
    cycles_since = dict(cycles_since or {})
    unknown = sorted(set(cycles_since) - set(ACTION_NAMES))
    if unknown:
        raise ValueError(f"recent actions {unknown} are unknown; allowed: {list(ACTION_NAMES)}")
    encoded = []
    for name in RECENT_ACTION_NAMES:
        cycles = cycles_since.get(name, RECENT_HORIZON_CYCLES)
        if isinstance(cycles, bool) or not isinstance(cycles, int | np.integer) or cycles < 0:
            raise ValueError(
                f"recent action {name!r}: cycles since {cycles!r} must be an integer >= 0"
            )
        encoded.append(min(int(cycles), RECENT_HORIZON_CYCLES) / RECENT_HORIZON_CYCLES)
    return encoded


def recent_from_state(cycles_since: Sequence[int]) -> dict[str, int]:
    """The ``{action: cycles_since}`` mapping of a per-action-index sequence (``noop`` and
    entries at the horizon left out: "never")."""
    return {
        name: int(cycles_since[index])
        for index, name in enumerate(ACTION_NAMES)
        if index and cycles_since[index] < RECENT_HORIZON_CYCLES
    }


def decode_cycles_since(obs: NDArray[np.floating] | Sequence[float]) -> NDArray[np.int64]:
    """Cycles since each action index last executed, int64 shape (N_ACTIONS,), from a full
    observation (``noop`` and "never" read as :data:`RECENT_HORIZON_CYCLES`). An observation of
    the KPIs only reads as "never" everywhere."""
    out = np.full(N_ACTIONS, RECENT_HORIZON_CYCLES, dtype=np.int64)
    values = np.asarray(obs, dtype=np.float64)
    if values.shape == (N_OBS,):
        out[1:] = np.rint(values[N_KPIS:] * RECENT_HORIZON_CYCLES).astype(np.int64)
    return out


def encode_vector(
    values: Sequence[float], cycles_since: Mapping[str, int] | None = None
) -> NDArray[np.float32]:
    """The observation of KPI values in :data:`KPI_NAMES` order and the recent actions
    (:func:`encode_recent_actions`; ``None``: none recently), float32 shape (N_OBS,)."""
    encoded = []
    for (scale, half), value in zip(_ENCODING, values, strict=True):
        if scale is Scale.UNIT:
            encoded.append(min(max(value, 0.0), 1.0))
        elif scale is Scale.PERCENT:
            encoded.append(min(max(value / 100.0, 0.0), 1.0))
        elif scale is Scale.POSITIVE:
            value = max(value, 0.0)
            encoded.append(value / (value + half))
        else:
            encoded.append(math.tanh(value / half))
    encoded.extend(encode_recent_actions(cycles_since))
    return np.array(encoded, dtype=np.float32)


def encode(
    kpis: Mapping[str, float], cycles_since: Mapping[str, int] | None = None
) -> NDArray[np.float32]:
    """The observation vector of a KPI set and the recent actions.

    kpis: every name in :data:`KPI_NAMES`, in natural units. cycles_since: ``{action: cycles
    since it last executed}`` (:func:`encode_recent_actions`); missing actions: never.
    Returns float32, shape (N_OBS,), each entry in ``[OBS_LOW[i], OBS_HIGH[i]]``.
    """
    return encode_vector(kpi_vector(kpis), cycles_since)


def decode(obs: NDArray[np.floating] | list[float]) -> dict[str, float]:
    """The KPIs (natural units) an observation vector encodes; inverse of :func:`encode`.

    obs: shape (N_OBS,) (the recent actions are ignored; see :func:`decode_cycles_since`) or
    (N_KPIS,). Raises ``ValueError`` on another shape.
    """
    values = np.asarray(obs, dtype=np.float64)
    if values.shape not in {(N_OBS,), (N_KPIS,)}:
        raise ValueError(
            f"observation must have shape ({N_OBS},) or ({N_KPIS},), got {values.shape}"
        )
    values = values[:N_KPIS]
    return {spec.name: spec.decode(float(v)) for spec, v in zip(KPI_SPECS, values, strict=True)}
