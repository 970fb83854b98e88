"""Wrappers that make the simulator refuse what the live loop refuses.

The live guardrails block an action inside its cooldown and hold one that needs a human; with
nobody answering, a refused decision changes nothing, exactly like ``noop``. A policy trained
without those refusals leans on actions it will not be allowed to take. :class:`GuardedActions`
brings them into training: it exposes ``action_masks()`` (the interface of sb3-contrib's
``MaskablePPO``) and runs a refused action as ``noop``, so even an algorithm that cannot mask
learns that the action did nothing.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from environment.actions import ACTION_NAMES, NOOP, check_action, paced_mask


class GuardedActions(gym.Wrapper[Any, Any, Any, Any]):
    """The built-in pacing of :func:`environment.actions.paced_mask` around a
    ``SaaSOpsEnv`` (directly or under Gymnasium's wrappers).

    - ``action_masks()``: bool, shape (13,), the actions that would execute now.
    - ``step(a)`` with a refused ``a`` steps ``noop`` and says so in ``info["refused"]`` (the
      action's name; absent when nothing was refused).
    - ``approver``: whether an operator answers held decisions (prices need one); ``False``
      models the twin's default, nobody approving.
    """

    def __init__(self, env: gym.Env[Any, Any], *, approver: bool = False) -> None:
        super().__init__(env)
        self.approver = approver

    def action_masks(self) -> NDArray[np.bool_]:
        """Which actions execute if chosen now."""
        state = self.env.get_wrapper_attr("state")
        return paced_mask(state.cycles_since, approver=self.approver)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        index = check_action(action)
        refused = not self.action_masks()[index]
        obs, reward, terminated, truncated, info = self.env.step(NOOP if refused else index)
        if refused:
            info["refused"] = ACTION_NAMES[index]
        return obs, reward, terminated, truncated, info
