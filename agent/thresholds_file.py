"""The guardrails' confidence-thresholds file, read and validated.

``autopilot thresholds`` (:mod:`experiments.thresholds`) writes the file; the guardrails read
only its ``thresholds`` mapping: action -> minimum confidence, a number in [0, 1] or ``.inf``
(never executes without approval), for actions of :data:`environment.actions.ACTION_NAMES`
other than ``noop``. The agent reads a file only when one is configured
(``AUTOPILOT_THRESHOLDS_FILE`` or a command's flag); otherwise it uses the built-in
:func:`agent.guardrails.default_thresholds`, so a file lying in the working directory never
changes behaviour by itself.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from environment.actions import ACTION_NAMES, NOOP

SCHEMA_VERSION = 1
"""The ``version`` a thresholds file must declare."""
THRESHOLD_ACTIONS = tuple(name for i, name in enumerate(ACTION_NAMES) if i != NOOP)
"""Actions a file may set (``noop`` always passes the guardrails)."""


def check_threshold(name: str, value: object, where: str) -> float:
    """``value`` as a threshold for action ``name``: a number in [0, 1] or ``.inf``; errors
    name ``where`` (the file), the action and what is allowed."""
    if name not in THRESHOLD_ACTIONS:
        raise ValueError(f"{where}: unknown action {name!r}; allowed: {list(THRESHOLD_ACTIONS)}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (value == math.inf or 0.0 <= value <= 1.0):  # type: ignore[operator]
        raise ValueError(f"{where}: {name}={value!r} must be a number in [0, 1] or .inf")
    return float(value)  # type: ignore[arg-type]


def read_thresholds(path: str | Path) -> dict[str, float]:
    """The validated ``thresholds`` mapping of the file at ``path``.

    ``FileNotFoundError`` naming the file when it does not exist; ``ValueError`` naming the
    file and the problem for bad YAML, a wrong ``version``, an unknown action or a value
    outside [0, 1] and not ``.inf``.
    """
    file = Path(path)
    where = f"thresholds file {str(file)!r}"
    if not file.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{where} is not valid YAML: {error}") from None
    if not isinstance(document, dict) or document.get("version") != SCHEMA_VERSION:
        raise ValueError(f"{where} must be a mapping with version: {SCHEMA_VERSION}")
    raw = document.get("thresholds") or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: 'thresholds' must be a mapping")
    return {str(name): check_threshold(str(name), value, where) for name, value in raw.items()}
