"""The decision-log record: one decision, what ran, with which probability, and its reward.

The shared contract between the database export (``autopilot decisions export``), the
simulator's log (``autopilot simulate --log``) and off-policy evaluation (``autopilot ope``):
one JSON object per line (``.jsonl``) with exactly these keys, in this order:

=====================  ===================================================================
``event_id``           str, non-empty: the key a reward is joined by
``timestamp``          ISO-8601 UTC ending in ``Z`` (read: any explicit offset, kept as UTC)
``cycle_id``           int or null: the cycle that decided, if any
``source``             one of :data:`SOURCES`
``policy``             str, non-empty: the policy's name
``policy_version``     str, non-empty: MLflow model URI or policy spec
``kpis``               {name: float}: KPI names of :data:`environment.kpis.KPI_NAMES`
``obs``                list of N_OBS finite floats: the environment's encoding
``probabilities``      list of N_ACTIONS floats in catalogue order, each >= 0, sum 1 (1e-6)
``proposed_action``    action name: what the policy proposed
``action``             action name: what was EXECUTED after the guardrails (``noop`` when
                       held or blocked)
``propensity``         float in (0, 1] or null: the logged probability of ``action``; equal
                       to ``probabilities[action]`` (1e-6); null when it had none
``ope_usable``         bool: false when ``action`` had no logged probability (and may be
                       false for other reasons); true requires a propensity
``confidence``         float in [0, 1]
``verdict``            str, non-empty: the guardrail verdict
``reasons``            list of str
``execution_id``       int or null
``reward``             finite float or null until joined
``reward_joined_at``   ISO-8601 UTC or null
``reward_source``      ``"computed"``, ``"reported"``, ``"default"`` or null
=====================  ===================================================================

``reward``, ``reward_joined_at`` and ``reward_source`` are null together or set together.

A bad record raises :class:`LogFormatError` naming the field (and, when read from a file, the
line number), the bad value and what is allowed. :func:`write_jsonl` writes to a temporary file
beside the target and renames it, so a failure leaves no half-written log.

:func:`bandit_feedback` turns the usable records (``ope_usable`` and a joined reward) into the
arrays the estimators of :mod:`policies.ope` take, in Open Bandit Pipeline's vocabulary.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from environment.actions import ACTION_NAMES, N_ACTIONS, action_index
from environment.kpis import KPI_NAMES, N_OBS
from policies.base import PROPENSITY_TOLERANCE

SOURCES: tuple[str, ...] = ("policy", "self_healing", "api", "simulator")
"""Who proposed a decision: a cycle's policy, the cycle's self-healing, an API client, or
``autopilot simulate --log``."""

REWARD_SOURCES: tuple[str, ...] = ("computed", "reported", "default")
"""How a reward was joined: computed from the KPI change over the window, reported through the
API, or the default when nothing could be computed before the deadline."""


class LogFormatError(ValueError):
    """A decision-log record breaks the contract; names the line (if any) and the field."""

    def __init__(self, field: str, problem: str, line: int | None = None) -> None:
        self.field = field
        self.problem = problem
        self.line = line
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}field {field!r}: {problem}")

    def at_line(self, line: int) -> LogFormatError:
        """The same error, located at ``line`` of a file."""
        return LogFormatError(self.field, self.problem, line)


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """One decision-log record (see the module docstring for each field's contract).

    Construction normalizes (sequences to tuples of float, naive datetimes taken as UTC and
    aware ones converted to UTC, integral floats of ``cycle_id``/``execution_id`` refused) and
    validates; a bad value raises :class:`LogFormatError` naming the field.
    """

    event_id: str
    timestamp: datetime
    cycle_id: int | None
    source: str
    policy: str
    policy_version: str
    kpis: Mapping[str, float]
    obs: tuple[float, ...]
    probabilities: tuple[float, ...]
    proposed_action: str
    action: str
    propensity: float | None
    ope_usable: bool
    confidence: float
    verdict: str
    reasons: tuple[str, ...]
    execution_id: int | None
    reward: float | None = None
    reward_joined_at: datetime | None = None
    reward_source: str | None = None

    def __post_init__(self) -> None:
        for name in ("event_id", "policy", "policy_version", "verdict"):
            _set(self, name, _non_empty_str(name, getattr(self, name)))
        _set(self, "timestamp", _utc("timestamp", self.timestamp))
        for name in ("cycle_id", "execution_id"):
            _set(self, name, _optional_int(name, getattr(self, name)))
        _set(self, "source", _one_of("source", self.source, SOURCES))
        _set(self, "kpis", _kpis(self.kpis))
        _set(self, "obs", _floats("obs", self.obs, N_OBS))
        _set(self, "probabilities", _probabilities(self.probabilities))
        for name in ("proposed_action", "action"):
            _set(self, name, _one_of(name, getattr(self, name), ACTION_NAMES))
        _set(self, "propensity", self._checked_propensity())
        _set(self, "ope_usable", self._checked_ope_usable())
        _set(self, "confidence", _unit_float("confidence", self.confidence))
        _set(self, "reasons", _strings("reasons", self.reasons))
        self._check_reward()

    # --- derived views ----------------------------------------------------------------------

    @property
    def action_index(self) -> int:
        """The catalogue index of the executed action."""
        return action_index(self.action)

    @property
    def obs_array(self) -> NDArray[np.float32]:
        """The observation as the policies take it: float32, shape (N_OBS,)."""
        return np.asarray(self.obs, dtype=np.float32)

    @property
    def probabilities_array(self) -> NDArray[np.float64]:
        """The logged probabilities: float64, shape (N_ACTIONS,)."""
        return np.asarray(self.probabilities, dtype=np.float64)

    @property
    def has_reward(self) -> bool:
        """Whether a reward has been joined."""
        return self.reward is not None

    # --- serialization ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record, keys in contract order."""
        out: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, datetime):
                value = format_timestamp(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[spec.name] = value
        return out

    @classmethod
    def from_dict(cls, data: object, *, line: int | None = None) -> LoggedDecision:
        """Parse one JSON object; errors name ``line`` (when given) and the field."""
        try:
            if not isinstance(data, Mapping):
                raise LogFormatError("<record>", f"expected a JSON object, got {_kind(data)}")
            missing = [name for name in RECORD_KEYS if name not in data]
            if missing:
                raise LogFormatError(missing[0], f"missing (required keys: {list(RECORD_KEYS)})")
            unknown = sorted(set(data) - set(RECORD_KEYS))
            if unknown:
                raise LogFormatError(unknown[0], f"unknown key; allowed: {list(RECORD_KEYS)}")
            values = dict(data)
            for name in ("timestamp", "reward_joined_at"):
                values[name] = parse_timestamp(name, values[name])
            return cls(**values)
        except LogFormatError as error:
            raise (error.at_line(line) if line is not None else error) from None

    # --- field checks that involve several fields -------------------------------------------

    def _checked_propensity(self) -> float | None:
        if self.propensity is None:
            return None
        value = _finite_float("propensity", self.propensity)
        if not 0.0 < value <= 1.0:
            raise LogFormatError(
                "propensity", f"{value!r} outside (0, 1]; use null when it had none"
            )
        logged = self.probabilities[action_index(self.action)]
        if abs(value - logged) > PROPENSITY_TOLERANCE:
            raise LogFormatError(
                "propensity",
                f"{value!r} differs from probabilities[{self.action!r}] = {logged!r} "
                f"(allowed difference {PROPENSITY_TOLERANCE})",
            )
        return value

    def _checked_ope_usable(self) -> bool:
        if not isinstance(self.ope_usable, bool):
            raise LogFormatError("ope_usable", f"expected true or false, got {self.ope_usable!r}")
        if self.ope_usable and self.propensity is None:
            raise LogFormatError(
                "ope_usable", "true requires a propensity; the executed action had none"
            )
        return self.ope_usable

    def _check_reward(self) -> None:
        if self.reward is not None:
            _set(self, "reward", _finite_float("reward", self.reward))
        if self.reward_joined_at is not None:
            _set(self, "reward_joined_at", _utc("reward_joined_at", self.reward_joined_at))
        if self.reward_source is not None:
            _set(
                self, "reward_source", _one_of("reward_source", self.reward_source, REWARD_SOURCES)
            )
        set_together = {
            "reward": self.reward is not None,
            "reward_joined_at": self.reward_joined_at is not None,
            "reward_source": self.reward_source is not None,
        }
        if len(set(set_together.values())) > 1:
            unset = next(name for name, is_set in set_together.items() if not is_set)
            raise LogFormatError(
                unset,
                "reward, reward_joined_at and reward_source are null together or set together; "
                f"got set: {[name for name, is_set in set_together.items() if is_set]}",
            )


RECORD_KEYS: tuple[str, ...] = tuple(spec.name for spec in fields(LoggedDecision))
"""The keys of one record, in contract order."""


# --- reading and writing --------------------------------------------------------------------


def read_jsonl(path: str | Path) -> list[LoggedDecision]:
    """Every record of a ``.jsonl`` decision log, in file order; blank lines are skipped.

    Raises ``FileNotFoundError`` for a missing file and :class:`LogFormatError` naming the
    line number and field of the first bad record (invalid JSON included).
    """
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise LogFormatError("<record>", f"invalid JSON: {error.msg}", number) from None
            records.append(LoggedDecision.from_dict(data, line=number))
    return records


def write_jsonl(path: str | Path, records: Iterable[LoggedDecision]) -> int:
    """Write ``records`` one JSON object a line to ``path``; return how many.

    Written to a temporary file in the same folder and renamed over ``path`` at the end, so
    a failure (a bad record, a full disk) leaves any earlier file at ``path`` as it was.
    """
    target = Path(path)
    count = 0
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.", delete=False
    ) as handle:
        try:
            for record in records:
                if not isinstance(record, LoggedDecision):
                    raise TypeError(
                        f"record {count} is a {type(record).__name__}, not a LoggedDecision"
                    )
                handle.write(json.dumps(record.to_dict(), allow_nan=False) + "\n")
                count += 1
        except BaseException:
            handle.close()
            Path(handle.name).unlink(missing_ok=True)
            raise
    os.replace(handle.name, target)
    return count


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``: ``2026-12-01T23:30:00Z`` (microseconds when present)."""
    return _utc("timestamp", moment).replace(tzinfo=None).isoformat() + "Z"


def parse_timestamp(name: str, text: object) -> datetime | None:
    """An ISO-8601 string with an explicit offset (``Z`` or ``+hh:mm``) as an aware UTC
    datetime; ``None`` stays ``None``. A string without an offset is refused (ambiguous)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise LogFormatError(name, f"expected an ISO-8601 string, got {_kind(text)} {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise LogFormatError(
            name, f"{text!r} is not ISO-8601 (e.g. '2026-12-01T23:30:00Z')"
        ) from None
    if moment.tzinfo is None:
        raise LogFormatError(name, f"{text!r} has no UTC offset; end it with 'Z'")
    return moment.astimezone(UTC)


# --- the estimators' view -------------------------------------------------------------------


class BanditFeedback(NamedTuple):
    """The usable part of a log as arrays (n rows), named as in Open Bandit Pipeline.

    - ``obs``: float32 (n, N_OBS), the context;
    - ``actions``: int64 (n,), the executed action's index;
    - ``rewards``: float64 (n,);
    - ``pscores``: float64 (n,), the logged propensity of the executed action;
    - ``probabilities``: float64 (n, N_ACTIONS), the behaviour policy's full distribution.
    """

    obs: NDArray[np.float32]
    actions: NDArray[np.int64]
    rewards: NDArray[np.float64]
    pscores: NDArray[np.float64]
    probabilities: NDArray[np.float64]

    @property
    def n_rounds(self) -> int:
        """How many logged decisions (OBP's ``n_rounds``)."""
        return len(self.actions)

    def subset(self, rows: NDArray[np.integer] | NDArray[np.bool_]) -> BanditFeedback:
        """The rows ``rows`` selects (indices or a mask), every array alike."""
        return BanditFeedback(
            obs=self.obs[rows],
            actions=self.actions[rows],
            rewards=self.rewards[rows],
            pscores=self.pscores[rows],
            probabilities=self.probabilities[rows],
        )


class FeedbackCounts(NamedTuple):
    """How many records :func:`bandit_feedback` used and why it skipped the others."""

    used: int
    not_usable: int
    """``ope_usable`` false: the executed action had no logged probability."""
    no_reward: int
    """Usable but the reward is not joined yet."""


def bandit_feedback(records: Sequence[LoggedDecision]) -> tuple[BanditFeedback, FeedbackCounts]:
    """The records with ``ope_usable`` and a joined reward, as :class:`BanditFeedback`.

    Raises ``ValueError`` naming the counts when no record is usable.
    """
    usable = [r for r in records if r.ope_usable and r.reward is not None]
    counts = FeedbackCounts(
        used=len(usable),
        not_usable=sum(not r.ope_usable for r in records),
        no_reward=sum(r.ope_usable and r.reward is None for r in records),
    )
    if not usable:
        raise ValueError(
            f"no record of {len(records)} is usable for off-policy estimates "
            f"({counts.not_usable} without a logged propensity, {counts.no_reward} without a "
            "joined reward)"
        )
    feedback = BanditFeedback(
        obs=np.array([r.obs for r in usable], dtype=np.float32),
        actions=np.array([r.action_index for r in usable], dtype=np.int64),
        rewards=np.array([r.reward for r in usable], dtype=np.float64),
        pscores=np.array([r.propensity for r in usable], dtype=np.float64),
        probabilities=np.array([r.probabilities for r in usable], dtype=np.float64),
    )
    return feedback, counts


# --- field validators -------------------------------------------------------------------------


def _set(record: LoggedDecision, name: str, value: object) -> None:
    object.__setattr__(record, name, value)  # normalizing a frozen dataclass at construction


def _kind(value: object) -> str:
    return type(value).__name__


def _non_empty_str(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LogFormatError(name, f"expected a non-empty string, got {value!r}")
    return value


def _one_of(name: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise LogFormatError(name, f"{value!r} is not allowed; allowed: {list(allowed)}")
    return str(value)


def _finite_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise LogFormatError(name, f"expected a number, got {_kind(value)} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise LogFormatError(name, f"expected a finite number, got {value!r}")
    return number


def _unit_float(name: str, value: object) -> float:
    number = _finite_float(name, value)
    if not 0.0 <= number <= 1.0:
        raise LogFormatError(name, f"{number!r} outside [0, 1]")
    return number


def _optional_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise LogFormatError(name, f"expected an integer or null, got {_kind(value)} {value!r}")
    return int(value)


def _utc(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise LogFormatError(name, f"expected a datetime, got {_kind(value)} {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # the database stores UTC without an offset
    return value.astimezone(UTC)


def _floats(name: str, values: object, length: int) -> tuple[float, ...]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence | np.ndarray):
        raise LogFormatError(name, f"expected a list of {length} numbers, got {_kind(values)}")
    items = list(values)
    if len(items) != length:
        raise LogFormatError(name, f"expected {length} numbers, got {len(items)}")
    return tuple(_finite_float(f"{name}[{i}]", item) for i, item in enumerate(items))


def _probabilities(values: object) -> tuple[float, ...]:
    probabilities = _floats("probabilities", values, N_ACTIONS)
    negative = [i for i, p in enumerate(probabilities) if p < 0.0]
    if negative:
        raise LogFormatError(
            "probabilities", f"entry {negative[0]} is {probabilities[negative[0]]!r}; must be >= 0"
        )
    total = math.fsum(probabilities)
    if abs(total - 1.0) > PROPENSITY_TOLERANCE:
        raise LogFormatError(
            "probabilities", f"sum to {total!r}; must sum to 1 within {PROPENSITY_TOLERANCE}"
        )
    return probabilities


def _kpis(values: object) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise LogFormatError("kpis", f"expected an object of KPI names, got {_kind(values)}")
    unknown = sorted(set(values) - set(KPI_NAMES))
    if unknown:
        raise LogFormatError("kpis", f"unknown KPI names {unknown}; allowed: {list(KPI_NAMES)}")
    return {name: _finite_float(f"kpis.{name}", value) for name, value in values.items()}


def _strings(name: str, values: object) -> tuple[str, ...]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence):
        raise LogFormatError(name, f"expected a list of strings, got {_kind(values)}")
    for i, item in enumerate(values):
        if not isinstance(item, str):
            raise LogFormatError(f"{name}[{i}]", f"expected a string, got {_kind(item)} {item!r}")
    return tuple(values)
