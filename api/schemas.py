"""Request and response bodies of the API, with their bounds.

Every request body forbids unknown members and validates every value: a KPI must be one of
DESIGN.md's names (:data:`environment.kpis.KPI_NAMES`, all of them, since the policy decides
from the environment's full encoding), finite and within :func:`kpi_bounds`; an action must be
one of the catalogue's names; a reward must be within
:data:`agent.decision_log.REWARD_RANGE`. A bad value is a 422 naming the field and what is
allowed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, cast

import orjson
from fastapi import Response
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from agent.decision_log import EVENT_ID_MAX_LENGTH, REWARD_RANGE
from environment.actions import ACTION_NAMES, N_ACTIONS
from environment.kpis import KPI_NAMES, KPI_SPECS, KpiSpec, Scale

POSITIVE_KPI_MAX = 1e12
"""Largest accepted value of a non-negative KPI (counts, USD, ratios)."""
SIGNED_KPI_MAX = 1e6
"""Largest magnitude of a signed KPI (``mrr_growth``)."""
MAX_CYCLES_SINCE = 100_000
"""Largest ``recent_actions`` value (cycles since the action last ran: about 45 years)."""
EVENT_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
REASON_MAX_LENGTH = 500
T = TypeVar("T")


def kpi_bounds(spec: KpiSpec) -> tuple[float, float]:
    """Inclusive bounds of a KPI in natural units, from how it is encoded."""
    if spec.scale is Scale.UNIT:
        return 0.0, 1.0
    if spec.scale is Scale.PERCENT:
        return 0.0, 100.0
    if spec.scale is Scale.POSITIVE:
        return 0.0, POSITIVE_KPI_MAX
    return -SIGNED_KPI_MAX, SIGNED_KPI_MAX


KPI_BOUNDS: dict[str, tuple[float, float]] = {spec.name: kpi_bounds(spec) for spec in KPI_SPECS}


def utc_text(moment: datetime) -> str:
    """ISO-8601 UTC ending in ``Z`` (stored times are naive UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat() + "Z"


UtcTime = Annotated[datetime, PlainSerializer(utc_text, return_type=str)]
"""A time answered as ISO-8601 UTC with ``Z``."""
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]


def finite_or_none(value: float | None) -> float | None:
    """``value`` unless it is NaN or infinite (JSON has neither)."""
    return value if value is not None and math.isfinite(value) else None


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity (in nested dicts and lists) replaced by null."""
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


class JsonBytes(Response):
    """A JSON answer already in its schema's shape, encoded by orjson: returned as is, so
    FastAPI neither validates it again nor encodes it a second time (the decision API's hot
    path; the route still declares its ``response_model`` for the OpenAPI document)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Strict(BaseModel):
    """A request body: unknown members are refused."""

    model_config = ConfigDict(extra="forbid")


def _check_action_names(names: list[str] | dict[str, int], field: str) -> None:
    unknown = sorted(set(names) - set(ACTION_NAMES))
    if unknown:
        raise ValueError(
            f"unknown action names {unknown} in {field}; allowed: {list(ACTION_NAMES)}"
        )


# --- the decision API ------------------------------------------------------------------------


def _kpi_field(spec: KpiSpec) -> Any:
    low, high = KPI_BOUNDS[spec.name]
    bounded = Annotated[float, Field(ge=low, le=high, allow_inf_nan=False, strict=True)]
    return (bounded, Field(description=f"{spec.unit}, in [{low}, {high}]"))


class _KpisBase(Strict):
    @model_validator(mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(KPI_NAMES))
            if unknown:
                raise ValueError(f"unknown KPI names {unknown}; allowed: {list(KPI_NAMES)}")
            missing = [name for name in KPI_NAMES if name not in value]
            if missing:
                raise ValueError(
                    f"KPIs missing: {missing}; every name of {list(KPI_NAMES)} is needed"
                )
        return value


Kpis = create_model(
    "Kpis",
    __base__=_KpisBase,
    __doc__="Every KPI of DESIGN.md's vocabulary, in natural units, within its bounds.",
    **{spec.name: _kpi_field(spec) for spec in KPI_SPECS},
)
"""The KPIs of a context: one required, bounded member per KPI name."""


def _whole_number(value: Any) -> Any:
    """JSON's integers, ``750.0`` included; never a bool, a string or a fraction."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value)
    return value


CyclesSince = Annotated[int, Field(ge=0, le=MAX_CYCLES_SINCE), BeforeValidator(_whole_number)]
ActionName = Annotated[str, Field(json_schema_extra={"enum": list(ACTION_NAMES)})]


class DecideRequest(Strict):
    """A context to decide for (see the issue's decision API)."""

    event_id: str | None = Field(
        default=None, min_length=1, max_length=EVENT_ID_MAX_LENGTH, pattern=EVENT_ID_PATTERN
    )
    """The key the reward will be reported by; generated when absent."""
    kpis: Kpis  # type: ignore[valid-type]
    """Every KPI of DESIGN.md's vocabulary, in natural units."""
    recent_actions: (
        Annotated[
            dict[str, CyclesSince],
            Field(json_schema_extra={"propertyNames": {"enum": list(ACTION_NAMES)}}),
        ]
        | None
    ) = None
    """Action -> cycles since it last ran (feeds the observation once the encoding has it)."""
    excluded_actions: list[ActionName] = Field(
        default_factory=list, max_length=N_ACTIONS - 1, json_schema_extra={"uniqueItems": True}
    )
    """Actions the caller cannot take now; the decision is among the others."""
    mode: Literal["advise"] = "advise"
    """``advise``: the API decides and logs; the caller acts."""

    @property
    def kpi_values(self) -> dict[str, float]:
        """The KPIs by name, in :data:`KPI_NAMES` order."""
        values: dict[str, float] = cast(BaseModel, self.kpis).model_dump()
        return values

    @field_validator("recent_actions")
    @classmethod
    def _recent(cls, recent: dict[str, int] | None) -> dict[str, int] | None:
        if recent is not None:
            _check_action_names(recent, "recent_actions")
        return recent

    @field_validator("excluded_actions")
    @classmethod
    def _excluded(cls, excluded: list[str]) -> list[str]:
        _check_action_names(excluded, "excluded_actions")
        if len(set(excluded)) != len(excluded):
            raise ValueError(f"excluded_actions has duplicates: {excluded}")
        return excluded


class VerdictOut(BaseModel):
    """The guardrails' verdict for this context."""

    verdict: Literal["executed", "dry_run", "needs_approval", "blocked"]
    rule: str
    reasons: list[str]


class DecideResponse(BaseModel):
    """The decision: the action, how sure, the probabilities over every action, who decided,
    the verdict, and until when its reward can be reported."""

    event_id: str
    action: str
    confidence: float
    probabilities: dict[str, float]
    policy: str
    policy_version: str
    verdict: VerdictOut
    reward_deadline: UtcTime


class BatchRequest(Strict):
    """Several contexts, each decided independently (see ``AUTOPILOT_API_MAX_BATCH``)."""

    items: list[DecideRequest] = Field(min_length=1)


class BatchItem(BaseModel):
    """One answer of a batch: ``status`` 200 with ``decision``, or an error ``problem``."""

    status: int
    decision: DecideResponse | None = None
    problem: dict[str, Any] | None = None


class BatchResponse(BaseModel):
    items: list[BatchItem]


class RewardRequest(Strict):
    """A reward for an earlier decision."""

    value: Annotated[
        float,
        Field(allow_inf_nan=False, strict=True, ge=REWARD_RANGE[0], le=REWARD_RANGE[1]),
    ]


class RewardResponse(BaseModel):
    event_id: str
    reward: float
    reward_source: Literal["computed", "reported", "default"]
    reward_joined_at: UtcTime
    expired: bool


# --- the operator's endpoints ----------------------------------------------------------------


class DryRunRequest(Strict):
    """Every operator POST: dry run unless ``dry_run`` is false."""

    dry_run: StrictBool = True


class CycleResponse(BaseModel):
    """What a cycle did (``agent.orchestrator.CycleResult``)."""

    cycle_id: int
    kind: str
    mode: str
    as_of: UtcTime
    duration_s: float
    health_before: float | None
    alignment_before: float | None
    policy_name: str
    policy_version: str
    policy_note: str
    issues_found: list[dict[str, Any]]
    issues_healed: list[str]
    optimizations_applied: list[str]
    decisions: list[dict[str, Any]]
    kpis: dict[str, float | None]


class NoteRequest(Strict):
    """An approver's note."""

    note: str | None = Field(default=None, max_length=REASON_MAX_LENGTH)


class ApprovalOut(BaseModel):
    id: int
    decision_id: int
    action: str
    confidence: float
    status: str
    requested_at: UtcTime
    expires_at: UtcTime | None
    decided_by: str | None
    decided_at: UtcTime | None
    reasons: list[str]
    execution_id: int | None


class UndoResponse(BaseModel):
    execution_id: int
    action: str
    status: str
    undone_at: UtcTime | None


class KillSwitchRequest(Strict):
    """Turn the kill switch on (a reason with a non-blank character is required) or off."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"on": {"const": True}}},
            "then": {
                "required": ["reason"],
                "properties": {"reason": {"minLength": 1, "pattern": r"\S"}},
            },
        },
    )

    on: StrictBool
    reason: str = Field(default="", max_length=REASON_MAX_LENGTH, validate_default=True)

    @field_validator("reason")
    @classmethod
    def _reason_when_on(cls, reason: str, info: ValidationInfo) -> str:
        if info.data.get("on") and not reason.strip():
            raise ValueError("required (1 to 500 characters) when turning the switch on")
        return reason.strip()


class KillSwitchOut(BaseModel):
    on: bool
    reason: str


class AuditEntryOut(BaseModel):
    id: int
    occurred_at: UtcTime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]
    cycle_id: int | None
    execution_id: int | None
    entry_hash: str


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first; pass ``next_cursor`` as ``cursor`` for the next
    (null: this was the last page)."""

    items: list[T]
    next_cursor: int | None


class ChainOut(BaseModel):
    ok: bool
    entries: int
    first_bad_id: int | None
    reason: str
    head_hash: str


class PolicyOut(BaseModel):
    """The policy the API decides with and the state of its loading."""

    name: str
    version: str
    uri: str
    loaded_at: UtcTime
    last_error: str | None
    checked_at: UtcTime | None


class SystemState(BaseModel):
    mode: str
    kill_switch: KillSwitchOut
    policy: PolicyOut
    approvals_pending: int
    last_cycle: dict[str, Any] | None


class ReadyOut(BaseModel):
    ready: bool
    database: str
    schema_revision: str | None
    policy: PolicyOut
    problems: list[str]
