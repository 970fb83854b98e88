"""Loading policies by name: ``load_policy("rules")``, ``load_policy("ppo:/path/model.zip")``.

A spec is ``NAME`` or ``NAME:PATH``:

==================================  ==========================================================
``noop``, ``random``, ``rules``     a fresh policy with the default config
``oracle``                          a fresh lookahead oracle (``attach(env)`` before deciding)
``epsilon_greedy``, ``ucb1``,       a fresh, untrained bandit (it learns online from
``linucb``, ``thompson``            ``update``)
``NAME:PATH``                       the policy saved at ``PATH`` by ``NAME``'s ``save``
``ppo:PATH``, ``a2c:PATH``,         an SB3 zip (these need a path)
``dqn:PATH``, ``maskable_ppo:PATH``
``champion``                        the shipped champion, :data:`CHAMPION_MODEL` (a calibrated
                                    maskable PPO written by ``autopilot train --preset
                                    champion``)
==================================  ==========================================================

Errors name the problem: an unknown name (listing the known ones), a missing file
(``FileNotFoundError``), or a corrupt file or one written by another kind of policy
(:class:`~policies.base.PolicyFileError`, a ``ValueError``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from policies.bandits import BANDITS
from policies.base import Policy
from policies.oracle import LookaheadOracle
from policies.rules import RulesPolicy
from policies.simple import NoopPolicy, RandomPolicy

CHAMPION_MODEL = Path(__file__).parent / "data" / "champion.zip"
"""The shipped champion's file (package data)."""


def _shipped_champion() -> Policy:
    if not CHAMPION_MODEL.is_file():
        raise FileNotFoundError(
            f"the shipped champion {str(CHAMPION_MODEL)!r} is missing; write it with "
            "'autopilot train --preset champion'"
        )
    return _sb3_loader("maskable_ppo")(CHAMPION_MODEL)


_FRESH: dict[str, Callable[[], Policy]] = {
    "noop": NoopPolicy,
    "random": RandomPolicy,
    "rules": RulesPolicy,
    "oracle": LookaheadOracle,
    "champion": _shipped_champion,
    **BANDITS,
}


SB3_ALGORITHMS: tuple[str, ...] = ("ppo", "a2c", "dqn", "maskable_ppo")
"""The stable-baselines3 kinds, as :data:`policies.sb3.ALGORITHMS` names them (tested equal);
listed here so that loading rules or a bandit does not import torch."""


def _sb3_loader(algo: str) -> Callable[[Path], Policy]:
    def load(path: Path) -> Policy:
        from policies.sb3 import SB3Policy  # torch loads only when an SB3 policy does

        return SB3Policy.load(path, algo)

    return load


_FROM_FILE: dict[str, Callable[[Path], Policy]] = {
    "noop": NoopPolicy.load,
    "random": RandomPolicy.load,
    "rules": RulesPolicy.load,
    "oracle": LookaheadOracle.load,
    **{name: cls.load for name, cls in BANDITS.items()},
    **{name: _sb3_loader(name) for name in SB3_ALGORITHMS},
}

POLICY_NAMES: tuple[str, ...] = tuple(sorted(set(_FRESH) | set(_FROM_FILE)))
"""Every name a spec may start with."""


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """``"name"`` -> (name, None); ``"name:path"`` -> (name, Path(path)).

    Only the first colon splits, so Windows-style paths after it survive.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"policy spec must be 'NAME' or 'NAME:PATH', got {spec!r}")
    name, sep, path = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in POLICY_NAMES:
        raise ValueError(f"unknown policy {name!r}; known: {list(POLICY_NAMES)}")
    if sep and not path.strip():
        raise ValueError(f"policy spec {spec!r} has an empty path after ':'")
    return name, Path(path.strip()) if sep else None


def load_policy(spec: str) -> Policy:
    """The policy a spec names (see the module docstring)."""
    name, path = parse_spec(spec)
    if path is None:
        if name not in _FRESH:
            raise ValueError(f"policy {name!r} needs a model file: use '{name}:/path/to/model.zip'")
        return _FRESH[name]()
    return _FROM_FILE[name](path)
