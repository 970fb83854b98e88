"""The one validator: every bound at, just inside and just outside; messages name the value."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from policies.validation import (
    check_names,
    check_number,
    check_range,
    check_seeds,
    split_list,
)

JUST = 1e-9


@pytest.mark.parametrize(
    ("value", "low", "high", "open_low", "ok"),
    [
        (0.0, 0.0, 1.0, False, True),  # closed lower bound: at it
        (-JUST, 0.0, 1.0, False, False),  # just under
        (JUST, 0.0, 1.0, True, True),  # open lower bound: just over
        (0.0, 0.0, 1.0, True, False),  # open lower bound: at it
        (1.0, 0.0, 1.0, False, True),  # upper bound: at it
        (1.0 - JUST, 0.0, 1.0, False, True),
        (1.0 + JUST, 0.0, 1.0, False, False),
        (math.inf, 0.0, math.inf, False, False),  # finite only
        (math.nan, 0.0, 1.0, False, False),
        (True, 0.0, 1.0, False, False),  # a bool is not a number
        ("0.5", 0.0, 1.0, False, False),
    ],
)
def test_check_number_bounds(
    value: object, low: float, high: float, open_low: bool, ok: bool
) -> None:
    if ok:
        assert check_number("x", value, low, high, open_low=open_low) == value
    else:
        bracket = r"\(" if open_low else r"\["
        with pytest.raises(ValueError, match=rf"^x=.* is invalid: must be a number in {bracket}"):
            check_number("x", value, low, high, open_low=open_low)


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), (0, False), (2, True), (np.int64(1), True), (1.0, False), (False, False)],
)
def test_integers_at_their_lower_bound(value: object, ok: bool) -> None:
    if ok:
        assert check_number("horizon", value, 1, integer=True) == value
    else:
        with pytest.raises(ValueError, match=r"horizon=.* is invalid: must be an integer >= 1"):
            check_number("horizon", value, 1, integer=True)


def test_check_range_labels_the_class_and_field() -> None:
    @dataclass
    class Knob:
        gain: float

    check_range(Knob(10.0), "gain", 0.0, 10.0)
    with pytest.raises(ValueError, match=r"^Knob\.gain=10\.5 is invalid: must be a number in"):
        check_range(Knob(10.5), "gain", 0.0, 10.0)
    with pytest.raises(ValueError, match=r"^Knob\.gain=3 is invalid: must be an integer in \[0"):
        check_range(Knob(3), "gain", 0, 2, integer=True)


def test_split_list() -> None:
    assert split_list(" a, b,,c ,") == ["a", "b", "c"]
    assert split_list("") == []


ALLOWED = ("steady", "mixed", "outage")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("steady", ("steady",)),
        ("steady, mixed", ("steady", "mixed")),
        (["outage"], ("outage",)),
        ("all", ALLOWED),
        (["all"], ALLOWED),
    ],
)
def test_check_names_accepts(values: object, expected: tuple[str, ...]) -> None:
    assert check_names(values, ALLOWED, "scenarios", all_word="all") == expected


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([], r"scenarios=\[\] is invalid: must be one or more of 'all' or \['steady'"),
        (",", r"scenarios=',' is invalid"),
        (3, r"scenarios=3 is invalid"),
        (["moon"], r"unknown scenarios \['moon'\]; allowed: 'all' or \['steady', 'mixed'"),
        ("steady,steady", r"scenarios must be distinct, got \['steady', 'steady'\]"),
        (["all", "steady"], r"unknown scenarios \['all'\]"),
    ],
)
def test_check_names_rejects(values: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_names(values, ALLOWED, "scenarios", all_word="all")


def test_repeats_may_be_allowed() -> None:
    assert check_names(["steady", "steady"], ALLOWED, "scenarios", distinct=False) == (
        "steady",
        "steady",
    )


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [(1, (0,)), (3, (0, 1, 2)), ([0], (0,)), ([5, 2], (5, 2)), ((np.int64(4),), (4,))],
)
def test_check_seeds_accepts_counts_and_lists(seeds: object, expected: tuple[int, ...]) -> None:
    assert check_seeds(seeds) == expected


@pytest.mark.parametrize(
    ("seeds", "match"),
    [
        (0, r"seeds=0 is invalid: must be an integer >= 1"),
        (True, r"seeds=True is invalid: must be a count >= 1 or a list"),
        ([], r"seeds=\[\] is invalid"),
        ("1,2", r"seeds='1,2' is invalid"),
        ([0, -1], r"seeds\[1\]=-1 is invalid: must be an integer >= 0"),
        ([1, 1], r"seeds must be distinct, got \[1, 1\]"),
    ],
)
def test_check_seeds_rejects(seeds: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_seeds(seeds)
