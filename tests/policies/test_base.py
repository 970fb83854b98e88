"""The protocol's records and validation."""

from __future__ import annotations

import numpy as np
import pytest

from environment.actions import N_ACTIONS
from policies.base import Decision, check_obs, prob_beats_runner_up, softmax


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
