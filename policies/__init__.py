"""Every decision-maker behind one protocol: rules (the baseline), random and noop, contextual
bandits, SB3 agents and a lookahead oracle; paired evaluation helpers.

Load any of them by name with :func:`policies.registry.load_policy`.
"""

from policies.base import (
    Decision,
    EnvAware,
    Episodic,
    OnlineLearner,
    Policy,
    PolicyFileError,
    check_obs,
)

__all__ = [
    "Decision",
    "EnvAware",
    "Episodic",
    "OnlineLearner",
    "Policy",
    "PolicyFileError",
    "check_obs",
]
