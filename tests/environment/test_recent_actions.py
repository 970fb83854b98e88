"""Recent actions in the observation: one encoding, filled by the environment, read by rules."""

from __future__ import annotations

import numpy as np
import pytest

from environment import actions as A
from environment.env import SaaSOpsEnv
from environment.kpis import (
    N_KPIS,
    N_OBS,
    RECENT_ACTION_NAMES,
    RECENT_HORIZON_CYCLES,
    decode_cycles_since,
    encode_recent_actions,
)
from policies.rules import RulesPolicy

H = RECENT_HORIZON_CYCLES


@pytest.mark.parametrize(
    ("cycles", "encoded"),
    [(0, 0.0), (1, 1 / H), (H - 1, (H - 1) / H), (H, 1.0), (H + 1, 1.0), (10**6, 1.0)],
)
def test_cycles_are_bounded_and_normalized(cycles: int, encoded: float) -> None:
    values = encode_recent_actions({"data_fix": cycles})
    assert values[RECENT_ACTION_NAMES.index("data_fix")] == pytest.approx(encoded)
    others = [v for name, v in zip(RECENT_ACTION_NAMES, values, strict=True) if name != "data_fix"]
    assert others == [1.0] * (len(RECENT_ACTION_NAMES) - 1)  # missing: long ago / never


def test_noop_is_ignored_and_nothing_recent_is_never() -> None:
    assert encode_recent_actions({"noop": 3}) == encode_recent_actions(None) == [1.0] * 12


@pytest.mark.parametrize(
    ("recent", "message"),
    [
        ({"nope": 1}, r"recent actions \['nope'\] are unknown"),
        ({"data_fix": -1}, r"'data_fix': cycles since -1 must be an integer >= 0"),
        ({"data_fix": 1.5}, "must be an integer"),
        ({"data_fix": True}, "must be an integer"),
    ],
)
def test_bad_recent_actions_are_rejected(recent: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_recent_actions(recent)  # type: ignore[arg-type]


def test_the_environment_fills_the_recent_actions() -> None:
    env = SaaSOpsEnv("steady")
    obs, _ = env.reset(seed=31)
    assert obs.shape == (N_OBS,)
    assert (obs[N_KPIS:] == 1.0).all()
    obs, *_ = env.step(A.DATA_FIX)
    assert decode_cycles_since(obs)[A.DATA_FIX] == 1
    for expected in range(2, 5):
        obs, *_ = env.step(A.NOOP)
        assert decode_cycles_since(obs)[A.DATA_FIX] == expected
    since = decode_cycles_since(obs)
    assert (np.delete(since, A.DATA_FIX) == H).all()


def test_rules_keep_their_cooldowns_in_a_plain_gymnasium_loop() -> None:
    """decide, step, with no record(): no action repeats within its cooldown."""
    env = SaaSOpsEnv("mixed")
    obs, _ = env.reset(seed=32)
    policy = RulesPolicy()
    cooldowns = policy.config.cooldown_steps()
    last_ran: dict[int, int] = {}
    for t in range(240):
        action = policy.decide(obs).action
        if action != A.NOOP:
            if action in last_ran:
                assert t - last_ran[action] >= cooldowns[action], A.ACTION_NAMES[action]
            last_ran[action] = t
        obs, *_ = env.step(action)
    assert len(last_ran) >= 2  # the rules did act
