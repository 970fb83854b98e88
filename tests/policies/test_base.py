"""The protocol's records and validation."""

from __future__ import annotations

import numpy as np
import pytest

from environment.actions import N_ACTIONS, NOOP
from environment.kpis import N_OBS
from policies.base import (
    Decision,
    check_allowed,
    check_obs,
    decide_within,
    prob_beats_runner_up,
    restrict,
    softmax,
)
from policies.simple import NoopPolicy


def uniform() -> np.ndarray:
    return np.full(N_ACTIONS, 1.0 / N_ACTIONS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"action": 13}, r"action 13 outside \[0, 12\]"),
        ({"confidence": 1.5}, r"confidence 1.5 outside \[0, 1\]"),
        ({"confidence": float("nan")}, r"confidence nan outside"),
        ({"propensities": np.ones(3) / 3}, r"propensities must have shape \(13,\)"),
        ({"propensities": np.full(N_ACTIONS, 0.5)}, "sum to 1, got sum 6.5"),
        ({"propensities": np.eye(N_ACTIONS)[5], "action": 0}, "has propensity 0"),
        ({"expected_values": np.zeros(2)}, r"expected_values must have shape \(13,\)"),
    ],
)
def test_decision_validates(kwargs: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {
        "action": 0,
        "confidence": 0.5,
        "propensities": uniform(),
        "policy_name": "test",
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Decision(**arguments)  # type: ignore[arg-type]


def test_decision_accessors() -> None:
    decision = Decision(4, 0.9, np.eye(N_ACTIONS)[4], "test")
    assert (decision.action_name, decision.propensity) == ("payment_retry", 1.0)


@pytest.mark.parametrize(
    ("obs", "batch", "match"),
    [
        (np.zeros(29), False, r"shape \(30,\), got \(29,\)"),
        (np.zeros((1, 30)), False, r"shape \(30,\), got \(1, 30\)"),
        (np.zeros(30), True, r"shape \(n, 30\), got \(30,\)"),
        (np.zeros((0, 30)), True, r"shape \(n, 30\), got \(0, 30\)"),
        (np.r_[np.zeros(3), np.nan, np.zeros(26)], False, r"NaN or inf \(first at index \[3\]\)"),
        ([["a"] * 30], True, "array of numbers"),
    ],
)
def test_check_obs_names_the_problem(obs: object, batch: bool, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_obs(obs, batch=batch)


def test_softmax_and_probability_of_beating_the_runner_up() -> None:
    p = softmax(np.array([[0.0, np.log(3.0)]]))
    np.testing.assert_allclose(p, [[0.25, 0.75]])
    means = np.zeros((2, N_ACTIONS))
    means[:, 2] = 1.0
    stds = np.full((2, N_ACTIONS), 1.0 / np.sqrt(2.0))
    beats = prob_beats_runner_up(means, stds, np.array([2, 0]))
    np.testing.assert_allclose(beats, [0.8413, 0.1587], atol=1e-4)


def _allowed(*excluded: int) -> np.ndarray:
    mask = np.ones(N_ACTIONS, dtype=bool)
    mask[list(excluded)] = False
    return mask


def test_restrict_keeps_an_allowed_decision_and_renormalizes_its_propensities() -> None:
    propensities = np.zeros(N_ACTIONS)
    propensities[[0, 2, 5]] = [0.2, 0.5, 0.3]
    decision = Decision(2, 0.5, propensities, "test", "v1")
    kept = restrict(decision, _allowed(5))
    assert (kept.action, kept.confidence, kept.policy_version) == (2, 0.5, "v1")
    np.testing.assert_allclose(kept.propensities[[0, 2, 5]], [0.2 / 0.7, 0.5 / 0.7, 0.0])


def test_restrict_moves_an_excluded_decision_to_the_most_probable_allowed_action() -> None:
    propensities = np.zeros(N_ACTIONS)
    propensities[[0, 2, 5]] = [0.2, 0.5, 0.3]
    moved = restrict(Decision(2, 0.5, propensities, "test"), _allowed(2))
    assert moved.action == 5 and moved.confidence == pytest.approx(0.3 / 0.5)
    point = restrict(Decision(2, 0.9, np.eye(N_ACTIONS)[2], "test"), _allowed(2))
    assert point.action == NOOP  # no mass left: hold
    np.testing.assert_allclose(point.propensities, _allowed(2) / (N_ACTIONS - 1))
    no_noop = restrict(Decision(2, 0.9, np.eye(N_ACTIONS)[2], "test"), _allowed(NOOP, 2))
    assert no_noop.action not in (NOOP, 2)


@pytest.mark.parametrize(
    ("allowed", "match"),
    [
        (np.ones(N_ACTIONS - 1, dtype=bool), r"shape \(13,\), got bool \(12,\)"),
        (np.ones(N_ACTIONS), r"bool array of shape \(13,\), got float64"),
        (np.zeros(N_ACTIONS, dtype=bool), "excludes every action"),
    ],
)
def test_check_allowed_names_the_problem(allowed: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_allowed(allowed)
    with pytest.raises(ValueError, match=match):
        decide_within(NoopPolicy(), np.zeros(N_OBS, dtype=np.float32), allowed)


def test_decide_within_restricts_a_policy_that_cannot_rank() -> None:
    obs = np.zeros(N_OBS, dtype=np.float32)
    assert decide_within(NoopPolicy(), obs, _allowed(3)).action == NOOP
    assert decide_within(NoopPolicy(), obs, _allowed(NOOP)).action != NOOP
