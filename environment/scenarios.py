"""Scenarios: named sets of shocks that strike at random times. Scenarios are data.

A :class:`ShockSpec` says what kind of shock may strike, in which window of days, for how long
and how hard; at ``reset`` each spec is drawn into a concrete :class:`Shock` with the episode's
RNG. ``mixed`` draws its shocks from the pool of all the named scenarios.

Shock kinds and what their magnitude means (the dynamics read them in
:func:`environment.dynamics.shock_levels`):

==================  ==========================================================================
``competitor``      a competitor launch: at-risk hazard x (1 + m), conversion x (1 - 0.3 m)
``payment_outage``  the payment processor declines: billing failure rate becomes at least m,
                    and retries during the outage fail at the same rate
``data_corruption`` a bad release: a share m of records is corrupted at once, orphans appear,
                    and new records are defective 5x as often while it lasts
``viral_surge``     low-intent traffic: visitors x (1 + m), activation / (1 + 0.5 m)
``infra_incident``  an incident of severity m in [0, 1]: errors, latency, failed jobs
``seasonal_slump``  demand dips smoothly by up to m (visitors) and m / 2 (conversion)
==================  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

SHOCK_KINDS: tuple[str, ...] = (
    "competitor",
    "payment_outage",
    "data_corruption",
    "viral_surge",
    "infra_incident",
    "seasonal_slump",
)
"""Every shock kind, in the order of :func:`environment.dynamics.shock_levels`."""


class Shock(NamedTuple):
    """A drawn shock: active for steps ``start <= t < end``."""

    kind: int
    start: int
    end: int
    magnitude: float


@dataclass(frozen=True, slots=True)
class ShockSpec:
    """A shock that may strike: its kind, window of start days, duration and magnitude ranges."""

    kind: str
    start_days: tuple[float, float]
    duration_days: tuple[float, float]
    magnitude: tuple[float, float]

    def __post_init__(self) -> None:
        if self.kind not in SHOCK_KINDS:
            raise ValueError(f"unknown shock kind {self.kind!r}; allowed: {list(SHOCK_KINDS)}")
        for name in ("start_days", "duration_days", "magnitude"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"shock {self.kind}: {name}={(low, high)} needs 0 <= low <= high")

    def draw(self, rng: np.random.Generator, steps_per_day: int) -> Shock:
        """A concrete shock with start, duration and magnitude drawn uniformly."""
        start = rng.uniform(*self.start_days)
        duration = rng.uniform(*self.duration_days)
        start_step = round(start * steps_per_day)
        end_step = start_step + max(1, round(duration * steps_per_day))
        return Shock(
            SHOCK_KINDS.index(self.kind),
            start_step,
            end_step,
            float(rng.uniform(*self.magnitude)),
        )


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named scenario: the shocks that always strike, or ``draws`` shocks from a pool."""

    name: str
    description: str
    shocks: tuple[ShockSpec, ...] = ()
    draws: int = 0
    """If > 0, draw this many specs (without replacement) from ``shocks`` each episode."""

    def draw(self, rng: np.random.Generator, steps_per_day: int) -> tuple[Shock, ...]:
        """The shocks of one episode, ordered by start."""
        specs = self.shocks
        if self.draws:
            picks = rng.choice(len(specs), size=min(self.draws, len(specs)), replace=False)
            specs = tuple(specs[i] for i in sorted(picks))
        return tuple(sorted((spec.draw(rng, steps_per_day) for spec in specs), key=lambda s: s[1]))


_COMPETITOR = ShockSpec("competitor", (10, 50), (14, 28), (1.5, 3.0))
_OUTAGE = ShockSpec("payment_outage", (5, 75), (1, 3), (0.4, 0.7))
_CORRUPTION = ShockSpec("data_corruption", (5, 70), (3, 7), (0.04, 0.10))
_VIRAL = ShockSpec("viral_surge", (5, 60), (4, 8), (3.0, 6.0))
_INCIDENT = ShockSpec("infra_incident", (5, 80), (1, 3), (0.6, 1.0))
_SLUMP = ShockSpec("seasonal_slump", (15, 45), (21, 35), (0.3, 0.5))

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("steady", "No shocks: the business left to its own dynamics."),
        Scenario("competitor_churn", "A competitor launch drives churn.", (_COMPETITOR,)),
        Scenario("payment_outage", "The payment processor fails, twice.", (_OUTAGE, _OUTAGE)),
        Scenario("data_corruption", "A release corrupts data.", (_CORRUPTION,)),
        Scenario("viral_surge", "A viral surge of low-intent signups.", (_VIRAL,)),
        Scenario("infra_incident", "Infrastructure incidents, twice.", (_INCIDENT, _INCIDENT)),
        Scenario("seasonal_slump", "A seasonal slump in demand.", (_SLUMP,)),
        Scenario(
            "mixed",
            "Three shocks drawn from every kind above.",
            (_COMPETITOR, _OUTAGE, _CORRUPTION, _VIRAL, _INCIDENT, _SLUMP),
            draws=3,
        ),
    )
}
"""Every scenario by name."""

SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)
SHOCK_SCENARIOS: tuple[str, ...] = tuple(n for n in SCENARIO_NAMES if n not in ("steady", "mixed"))
"""The six single-shock scenarios."""


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; ``ValueError`` naming the allowed names."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; allowed: {list(SCENARIO_NAMES)}") from None
