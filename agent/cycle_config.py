"""What a cycle decides with: its policy, governance and confidence thresholds, resolved once.

Each comes from, in order: the argument a caller passes (a command's flag, a test), the
:class:`~agent.settings.Settings` (``AUTOPILOT_POLICY_URI``, ``AUTOPILOT_GOVERNANCE_FILE``,
``AUTOPILOT_THRESHOLDS_FILE``), and the built-in default: the registry's champion (else
``rules``), :class:`~agent.guardrails.Governance` () and
:func:`~agent.guardrails.default_thresholds`. Nothing depends on the working directory unless a
relative path is configured, and :class:`CycleConfig` names what was used, so a command can say.

Loading a policy from the MLflow registry is not the agent's job (``agent/`` never imports
``experiments/`` or MLflow): the caller gives a :data:`PolicyLoader` that understands model
URIs, or the process's entry point (the CLI's ``main``, the API's ``create_app``) installs one
with :func:`use_policy_loader` (:func:`experiments.models.load_policy_uri`). Without one, only
the specs of :func:`policies.registry.load_policy` load, and a model URI falls back to
``rules`` with a note.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.guardrails import Governance, default_thresholds, load_governance
from agent.settings import Settings, get_settings
from agent.thresholds_file import read_thresholds
from policies.base import Policy

log = logging.getLogger(__name__)

PolicyLoader = Callable[[str], Policy]
"""Turns a policy spec or model URI into a policy; raises ``LookupError`` when the model does
not exist, anything else when it cannot be loaded."""
MODEL_URI_SCHEMES = ("models:/", "runs:/")
BUILT_IN_THRESHOLDS = "built-in thresholds"

_installed_loader: list[PolicyLoader] = []


def use_policy_loader(loader: PolicyLoader | None) -> None:
    """Install (or, with ``None``, remove) the loader of model URIs for this process; an entry
    point calls it once at start-up, so that every cycle (CLI, API, scheduler) loads the
    champion the same way. A loader passed to a call wins over it."""
    _installed_loader[:] = [] if loader is None else [loader]


@dataclass(frozen=True, slots=True)
class CycleConfig:
    """The resolved policy (``None`` for the monitor pass), why it is not the one asked for
    (``policy_note``, empty when it is), the governance, and the thresholds with their source
    (a file path or :data:`BUILT_IN_THRESHOLDS`)."""

    policy: Policy | None
    policy_note: str
    governance: Governance
    thresholds: Mapping[str, float]
    thresholds_source: str


def resolve_cycle_config(
    *,
    settings: Settings | None = None,
    policy: Policy | str | None = None,
    with_policy: bool = True,
    governance: Governance | str | Path | None = None,
    thresholds: Mapping[str, float] | str | Path | None = None,
    load_policy: PolicyLoader | None = None,
) -> CycleConfig:
    """Resolve everything a cycle needs (see the module docstring); ``with_policy=False``
    for the monitor pass, which decides without one."""
    settings = settings or get_settings()
    chosen, note = (
        resolve_policy(policy, settings=settings, load_policy=load_policy)
        if with_policy
        else (None, "")
    )
    limits, source = resolve_thresholds_and_source(thresholds, settings=settings)
    return CycleConfig(
        policy=chosen,
        policy_note=note,
        governance=resolve_governance(governance, settings=settings),
        thresholds=limits,
        thresholds_source=source,
    )


def resolve_policy(
    policy: Policy | str | None,
    *,
    settings: Settings | None = None,
    load_policy: PolicyLoader | None = None,
) -> tuple[Policy, str]:
    """(policy, note): ``policy`` itself, the policy a spec or URI names (default:
    ``settings.policy_uri``, the champion), or ``rules`` when loading fails, with the reason
    as the note. A corrupt model must not stop the loop, so every loading error falls back."""
    from policies.registry import load_policy as load_spec  # SB3 would import torch: lazily
    from policies.rules import calibrated_rules

    if policy is not None and not isinstance(policy, str):
        return policy, ""
    uri = policy or (settings or get_settings()).policy_uri
    load_policy = load_policy or next(iter(_installed_loader), None)
    if uri == "rules":
        return calibrated_rules(), ""
    if load_policy is None and uri.startswith(MODEL_URI_SCHEMES):
        note = f"no model loader given for {uri}; using rules"
        log.info(note)
        return calibrated_rules(), note
    try:
        return (load_policy or load_spec)(uri), ""
    except LookupError as error:
        note = f"no champion at {uri} ({error}); using rules"
        log.info(note)
    except Exception as error:
        note = f"loading policy {uri} failed ({type(error).__name__}: {error}); fell back to rules"
        log.warning(note)
    return calibrated_rules(), note


def resolve_governance(
    governance: Governance | str | Path | None, *, settings: Settings | None = None
) -> Governance:
    """``governance``, the file it names, ``settings.governance_file``, or the built-in one
    (its ``source`` says which)."""
    if isinstance(governance, Governance):
        return governance
    path = governance or (settings or get_settings()).governance_file
    return load_governance(path) if path else Governance()


def resolve_thresholds(
    thresholds: Mapping[str, float] | str | Path | None, *, settings: Settings | None = None
) -> dict[str, float]:
    """The thresholds of :func:`resolve_thresholds_and_source`."""
    return resolve_thresholds_and_source(thresholds, settings=settings)[0]


def resolve_thresholds_and_source(
    thresholds: Mapping[str, float] | str | Path | None, *, settings: Settings | None = None
) -> tuple[dict[str, float], str]:
    """(thresholds, source): the built-in thresholds overridden by ``thresholds`` (a mapping,
    or a file written by ``autopilot thresholds``), else by ``settings.thresholds_file``."""
    merged = default_thresholds()
    if isinstance(thresholds, Mapping):
        merged.update(thresholds)
        return merged, "given thresholds"
    path = thresholds or (settings or get_settings()).thresholds_file
    if path is None:
        return merged, BUILT_IN_THRESHOLDS
    merged.update(read_thresholds(path))
    return merged, str(path)
