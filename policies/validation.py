"""The one validator of numbers, names and seeds at our entry points.

Every config class, every function taking a count or a seed, and every parser of a list of
scenario names (policies, experiments, and the agent when it wants them) checks its input
here, so that a bad value always gets the same message::

    PPOParams.gamma=1.5 is invalid: must be a number in [0.0, 1.0]
    horizon=0 is invalid: must be an integer >= 1
    unknown scenarios ['moon']; allowed: 'all' or ['steady', ...]

Pure Python: no NumPy, so any layer can import it. NumPy integers count as integers.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

_INTEGER_TYPES = (numbers.Integral,)


def invalid(label: str, value: object, allowed: str) -> ValueError:
    """The error for a bad value: ``"<label>=<value!r> is invalid: must be <allowed>"``."""
    return ValueError(f"{label}={value!r} is invalid: must be {allowed}")


def config_error(owner: object, name: str, value: object, allowed: str) -> ValueError:
    """:func:`invalid` for the field ``name`` of a config object: the label is
    ``<Class>.<name>``."""
    return invalid(f"{type(owner).__name__}.{name}", value, allowed)


def _allowed_range(low: float, high: float, open_low: bool, integer: bool) -> str:
    if integer:
        if math.isinf(high):
            return f"an integer >= {low}" if not open_low else f"an integer > {low}"
        return f"an integer in {'(' if open_low else '['}{low}, {high}]"
    return f"a number in {'(' if open_low else '['}{low}, {high}]"


def check_number(
    label: str,
    value: object,
    low: float,
    high: float = math.inf,
    *,
    open_low: bool = False,
    integer: bool = False,
) -> float:
    """``value`` if it is a finite number (an integer with ``integer=True``; never a bool) in
    ``[low, high]`` (``(low, high]`` with ``open_low``); else :func:`invalid` naming it."""
    is_number = isinstance(value, _INTEGER_TYPES if integer else (numbers.Real,))
    ok = (
        is_number
        and not isinstance(value, bool)
        and math.isfinite(value)  # type: ignore[arg-type]
        and (value > low if open_low else value >= low)  # type: ignore[operator]
        and value <= high  # type: ignore[operator]
    )
    if not ok:
        raise invalid(label, value, _allowed_range(low, high, open_low, integer))
    return value  # type: ignore[return-value]


def check_range(owner: object, name: str, *bounds: float, **options: bool) -> None:
    """:func:`check_number` (same bounds and options) on the field ``owner.name``, labelled
    ``<Class>.<name>``."""
    check_number(f"{type(owner).__name__}.{name}", getattr(owner, name), *bounds, **options)


def split_list(text: str) -> list[str]:
    """A comma-separated list as its non-empty, stripped items: ``"a, b,,c"`` -> a, b, c."""
    return [item.strip() for item in text.split(",") if item.strip()]


def check_names(
    values: object,
    allowed: Sequence[str],
    what: str,
    *,
    all_word: str | None = None,
    distinct: bool = True,
) -> tuple[str, ...]:
    """Names out of ``allowed``, from a sequence or a comma-separated string.

    ``what`` names them in errors (``"scenarios"``); ``all_word`` (e.g. ``"all"``) alone stands
    for every allowed name; ``distinct``: a repeated name is an error. Raises ``ValueError``
    naming an empty list, the unknown names and the allowed ones, or the repeats.
    """
    choices = f"'{all_word}' or {list(allowed)}" if all_word else f"{list(allowed)}"
    names = split_list(values) if isinstance(values, str) else values
    if not isinstance(names, Sequence) or isinstance(names, bytes) or not names:
        raise invalid(what, values, f"one or more of {choices}")
    if all_word is not None and list(names) == [all_word]:
        return tuple(allowed)
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; allowed: {choices}")
    if distinct and len(set(names)) != len(names):
        raise ValueError(f"{what} must be distinct, got {list(names)}")
    return tuple(str(name) for name in names)


def check_seeds(seeds: object, what: str = "seeds") -> tuple[int, ...]:
    """Seeds from a count ``n`` (seeds ``0 .. n-1``) or a sequence of distinct integers
    ``>= 0``; ``ValueError`` naming the bad value."""
    if isinstance(seeds, _INTEGER_TYPES) and not isinstance(seeds, bool):
        return tuple(range(int(check_number(what, seeds, 1, integer=True))))
    if isinstance(seeds, str) or not isinstance(seeds, Sequence) or not seeds:
        raise invalid(what, seeds, "a count >= 1 or a list of distinct integers >= 0")
    values = tuple(
        int(check_number(f"{what}[{i}]", s, 0, integer=True)) for i, s in enumerate(seeds)
    )
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must be distinct, got {list(values)}")
    return values
