"""Fixtures for the simulator tests: states in a known context, stepped without noise."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from environment import actions as A
from environment import dynamics
from environment.params import BusinessParams
from environment.scenarios import SHOCK_KINDS, Shock
from environment.state import BusinessState

Rollout = Callable[[BusinessState, Sequence[int], int], BusinessState]


@pytest.fixture(scope="session")
def params() -> BusinessParams:
    return BusinessParams()


@pytest.fixture
def steady(params: BusinessParams) -> BusinessState:
    """The steady business at the start of an episode, with no shocks."""
    return dynamics.steady_start(params)


@pytest.fixture
def rollout(params: BusinessParams) -> Rollout:
    """Take ``actions`` in order, then ``noop`` until ``steps`` steps have passed, with the
    expected (noise-free) dynamics, so two rollouts differ only by their actions."""

    def run(state: BusinessState, actions: Sequence[int], steps: int) -> BusinessState:
        for t in range(steps):
            action = actions[t] if t < len(actions) else A.NOOP
            state = dynamics.transition(state, action, params, None)
        return state

    return run


def with_shock(
    state: BusinessState, kind: str, start: int, end: int, magnitude: float
) -> BusinessState:
    """A copy of ``state`` with one shock scheduled at steps ``[start, end)``."""
    shocked = state.copy()
    shocked.shocks = (Shock(SHOCK_KINDS.index(kind), start, end, magnitude),)
    return shocked
