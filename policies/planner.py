"""The non-clairvoyant planner: the fair upper reference beside the clairvoyant oracle.

The same rollout planner as :mod:`policies.oracle` (one-step policy improvement on copies of the
hidden state, with the true dynamics and parameters), with two differences that make it a
bound a real operator could approach with a perfect model of the business but no crystal ball:

- **No future shocks.** Rollouts start from the copied state *without* the shock schedule that
  has not begun (``OracleConfig.clairvoyant=False``); shocks that have begun, which the KPIs
  reveal, stay.
- **Several continuations.** After the first action each rollout continues under the rules
  and under ``noop``; an action is worth its best rollout, so the planner is never worse than
  either base policy in expectation, and a plan may repeat an action that the rules' cooldown
  would hold.

**Not for production**: it reads the simulator's hidden state, like the oracle.
"""

from __future__ import annotations

from dataclasses import replace

from policies.oracle import LookaheadOracle, OracleConfig
from policies.rules import RulesConfig

PLANNER_CONFIG = OracleConfig(clairvoyant=False, continuations=("rules", "noop"))
"""The planner's defaults: the oracle's horizon and budget, blind to future shocks."""


def non_clairvoyant_planner(
    config: OracleConfig | None = None, continuation: RulesConfig | None = None
) -> LookaheadOracle:
    """A planner blind to future shocks (``config`` is forced to ``clairvoyant=False``)."""
    planner = LookaheadOracle(replace(config or PLANNER_CONFIG, clairvoyant=False), continuation)
    planner.name = "planner"
    return planner
