"""The action catalogue: stable names, kinds, costs and delays.

The names are identifiers used everywhere (policies, database, API, governance files); their
order is the ``Discrete`` action index and never changes. What each action *does* lives in
:mod:`environment.dynamics`; the magnitudes live in :class:`environment.params.BusinessParams`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray


class ActionKind(StrEnum):
    """Families of actions, as DESIGN.md groups them."""

    NOOP = "noop"
    REMEDIATION = "remediation"
    OPTIMIZATION = "optimization"
    DECISION = "decision"


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action of the catalogue.

    ``cost`` is the one-off cost in USD (variable parts, such as per-message costs, are in
    :class:`~environment.params.BusinessParams`); ``delay_steps`` is how many environment steps
    pass before the effect lands (0: in the step it is taken).
    """

    name: str
    kind: ActionKind
    cost: float
    delay_steps: int
    summary: str


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("noop", ActionKind.NOOP, 0.0, 0, "Do nothing this cycle."),
    ActionSpec(
        "retention_campaign",
        ActionKind.REMEDIATION,
        300.0,
        0,
        "Win-back messages to at-risk accounts.",
    ),
    ActionSpec(
        "data_fix", ActionKind.REMEDIATION, 1_500.0, 1, "Normalize and repair defective records."
    ),
    ActionSpec(
        "orphan_cleanup",
        ActionKind.REMEDIATION,
        500.0,
        0,
        "Archive workflows and events whose user is gone.",
    ),
    ActionSpec(
        "payment_retry", ActionKind.REMEDIATION, 100.0, 0, "Retry failed payments awaiting retry."
    ),
    ActionSpec(
        "onboarding_boost",
        ActionKind.OPTIMIZATION,
        2_000.0,
        1,
        "Guided onboarding and success outreach for new and unactivated accounts.",
    ),
    ActionSpec(
        "funnel_fix",
        ActionKind.OPTIMIZATION,
        5_000.0,
        18,
        "Engineering fix of the biggest signup and activation funnel leak.",
    ),
    ActionSpec(
        "upgrade_prompt",
        ActionKind.OPTIMIZATION,
        300.0,
        0,
        "In-product upgrade prompts to free activated accounts.",
    ),
    ActionSpec("price_increase", ActionKind.DECISION, 1_000.0, 0, "Raise list prices by a step."),
    ActionSpec("price_decrease", ActionKind.DECISION, 1_000.0, 0, "Cut list prices by a step."),
    ActionSpec(
        "scale_infra", ActionKind.DECISION, 1_000.0, 1, "Add infrastructure capacity (recurring)."
    ),
    ActionSpec(
        "shift_marketing",
        ActionKind.DECISION,
        3_000.0,
        6,
        "Move spend from broad to targeted, high-intent channels.",
    ),
    ActionSpec(
        "ship_feature",
        ActionKind.DECISION,
        20_000.0,
        84,
        "Build and ship a roadmap feature (lands after about two weeks).",
    ),
)
"""The catalogue, in ``Discrete`` index order."""

ACTION_NAMES: tuple[str, ...] = tuple(spec.name for spec in ACTIONS)
N_ACTIONS = len(ACTIONS)
_INDEX: dict[str, int] = {name: i for i, name in enumerate(ACTION_NAMES)}

NOOP = _INDEX["noop"]
RETENTION_CAMPAIGN = _INDEX["retention_campaign"]
DATA_FIX = _INDEX["data_fix"]
ORPHAN_CLEANUP = _INDEX["orphan_cleanup"]
PAYMENT_RETRY = _INDEX["payment_retry"]
ONBOARDING_BOOST = _INDEX["onboarding_boost"]
FUNNEL_FIX = _INDEX["funnel_fix"]
UPGRADE_PROMPT = _INDEX["upgrade_prompt"]
PRICE_INCREASE = _INDEX["price_increase"]
PRICE_DECREASE = _INDEX["price_decrease"]
SCALE_INFRA = _INDEX["scale_infra"]
SHIFT_MARKETING = _INDEX["shift_marketing"]
SHIP_FEATURE = _INDEX["ship_feature"]


def action_index(name: str) -> int:
    """The ``Discrete`` index of an action name; ``ValueError`` naming the allowed names."""
    try:
        return _INDEX[name]
    except KeyError:
        raise ValueError(f"unknown action {name!r}; allowed: {list(ACTION_NAMES)}") from None


def check_action(action: object) -> int:
    """Validate an action index (int or integer numpy scalar) and return it as ``int``."""
    try:
        index = int(action)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(
            f"invalid action {action!r}; expected an integer in [0, {N_ACTIONS - 1}]"
        ) from None
    if index != action or not 0 <= index < N_ACTIONS:
        raise ValueError(
            f"invalid action {action!r}; expected an integer in [0, {N_ACTIONS - 1}] "
            f"({', '.join(f'{i}={n}' for i, n in enumerate(ACTION_NAMES))})"
        )
    return index


# --- pacing: how often each action may run --------------------------------------------------

CYCLE_HOURS = 4.0
"""Hours between two agent cycles (``0 */4 * * *``), one environment step: 24 h /
``BusinessParams.steps_per_day`` (tested equal)."""


@dataclass(frozen=True, slots=True)
class ActionPacing:
    """How often one action may run, the one home of these numbers.

    - ``cooldown_hours`` and ``max_per_day``: the safety floor the live guardrails enforce
      (:data:`agent.guardrails.BUILT_IN_LIMITS` is derived from them); ``requires_approval``:
      never without a human.
    - ``habit_hours``: how long the rules policy itself waits before proposing the action
      again (its cooldown in cycles is ``habit_hours / CYCLE_HOURS``); ``None``: the rules
      never propose it. A habit longer than the floor is deliberate: the floor stops harm,
      the habit is what pays in simulation (an effect needs days to show).
    """

    cooldown_hours: float
    max_per_day: int
    habit_hours: float | None = None
    requires_approval: bool = False

    @property
    def habit_cycles(self) -> int | None:
        """The rules' cooldown in cycles."""
        return None if self.habit_hours is None else round(self.habit_hours / CYCLE_HOURS)


_DAY = 24.0
PACING: dict[str, ActionPacing] = {
    # Messages fatigue the audience (half-life ~4 days): at most one campaign or prompt a week.
    "retention_campaign": ActionPacing(7 * _DAY, 1, habit_hours=7 * _DAY),
    "upgrade_prompt": ActionPacing(7 * _DAY, 1, habit_hours=7 * _DAY),
    "onboarding_boost": ActionPacing(3 * _DAY, 1, habit_hours=3 * _DAY),
    # Card networks count retries (Visa: <= 15 in 30 days): one round a day.
    "payment_retry": ActionPacing(20.0, 1, habit_hours=_DAY),
    # Repairs may run twice a day; the rules wait for the last repair to show in the KPIs
    # (a data fix lands a cycle later, a cleanup's bloat relief over days).
    "data_fix": ActionPacing(12.0, 2, habit_hours=_DAY),
    "orphan_cleanup": ActionPacing(12.0, 2, habit_hours=3 * _DAY),
    "scale_infra": ActionPacing(_DAY, 1, habit_hours=2 * _DAY),
    # Engineering work: the team takes one at a time. A funnel fix lands after 18 steps and
    # its effect needs weeks to read, so the rules wait a month.
    "funnel_fix": ActionPacing(7 * _DAY, 1, habit_hours=30 * _DAY),
    "shift_marketing": ActionPacing(14 * _DAY, 1, habit_hours=20 * _DAY),
    # The one habit shorter than its floor: the rules would ship weekly, the guardrails allow
    # one feature a fortnight live (in simulation, where no guardrail runs, weekly pays).
    "ship_feature": ActionPacing(14 * _DAY, 1, habit_hours=7 * _DAY),
    # Prices always need a human and change at most once a week; the rules never price.
    "price_increase": ActionPacing(7 * _DAY, 1, requires_approval=True),
    "price_decrease": ActionPacing(7 * _DAY, 1, requires_approval=True),
}
"""Pacing of every action but ``noop`` (tested to cover the catalogue)."""


def paced_mask(
    cycles_since: Sequence[int] | NDArray[np.integer], *, approver: bool = False
) -> NDArray[np.bool_]:
    """Which actions the built-in pacing lets execute now: bool, shape (N_ACTIONS,), or
    (n, N_ACTIONS) for a batch of rows.

    cycles_since: per action index, cycles since it last executed (1: in the last cycle; the
    observation's horizon or more: long ago or never), as the environment's state and the
    observation's recent-action entries carry it. An action passes when ``cycles_since x
    CYCLE_HOURS`` reaches its spacing, ``max(cooldown_hours, 24 h / max_per_day)`` of
    :data:`PACING`; one that ``requires_approval`` passes only when an ``approver`` answers
    held decisions. ``noop`` always passes.

    This is the live guardrails' rule (``agent.guardrails``, whose built-in limits are
    :data:`PACING`: a cooldown and a cap on executions in any trailing 24 h) on cycle counts:
    for every pacing, an action run whenever the mask allows is never blocked by the
    guardrails, and one cycle sooner it would be (tested against them). The training wrapper
    (:class:`environment.wrappers.GuardedActions`) and the cycle mask with it, so a policy
    is trained on the refusals it meets live.
    """
    since = np.asarray(cycles_since, dtype=np.float64)
    if since.ndim not in (1, 2) or since.shape[-1] != N_ACTIONS:
        raise ValueError(f"cycles_since must have {N_ACTIONS} entries, got shape {since.shape}")
    mask = since * CYCLE_HOURS >= _COOLDOWN_HOURS
    if not approver:
        mask &= ~_NEEDS_APPROVAL
    mask[..., NOOP] = True
    return mask


def _spacing_hours(pacing: ActionPacing) -> float:
    """Hours between two executions that both the cooldown and the daily cap allow."""
    per_day = 24.0 / pacing.max_per_day if pacing.max_per_day else float("inf")
    return max(pacing.cooldown_hours, per_day)


_COOLDOWN_HOURS = np.array(
    [_spacing_hours(PACING[name]) if name in PACING else 0.0 for name in ACTION_NAMES]
)
"""Per action index, the hours that must pass between two executions (0 for ``noop``)."""
_NEEDS_APPROVAL = np.array(
    [name in PACING and PACING[name].requires_approval for name in ACTION_NAMES]
)
