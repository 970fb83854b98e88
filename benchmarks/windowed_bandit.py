"""Does a windowed reward let a contextual bandit see delayed effects? One-step vs windowed.

A log of ``rules`` with epsilon-uniform exploration (``--explore``, default 0.5; pure random
decisions ruin the simulated business within weeks) on the simulator; from it two LinUCB
bandits are trained offline, one pass each:

- **one-step**: the reward of the cycle after the decision (what ``autopilot simulate --log``
  logs);
- **windowed**: the decision's effect over its join window (``agent.decision_log.
  REWARD_WINDOWS``: the action's delay plus one day, in cycles ``W_a``): the sum of the next
  ``W_a`` step rewards minus ``W_a`` times the log's mean step reward. The later actions of
  the behaviour react to this one's effects (rules), so the window also carries theirs: an
  approximation, not an unconfounded effect.

Both are then evaluated (no further learning) on the simulator against ``rules`` and ``noop``
with :func:`policies.evaluation.evaluate` on the same evaluation seeds (paired), mean episode
return with 95% intervals.

    python benchmarks/windowed_bandit.py [--episodes 4] [--scenario mixed] [--seeds 5]
        [--explore 0.5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agent.decision_log import CYCLE_STEP, REWARD_WINDOWS
from environment.actions import ACTION_NAMES
from policies.bandits import LinUCBBandit
from policies.evaluation import compare, evaluate
from policies.exploration import LogConfig, simulate_log
from policies.rules import RulesPolicy
from policies.simple import NoopPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--scenario", default="mixed")
    parser.add_argument("--seeds", type=int, default=5, help="evaluation seeds 100..")
    parser.add_argument("--explore", type=float, default=0.5, help="uniform share of rules")
    args = parser.parse_args()
    start = time.perf_counter()
    config = LogConfig(
        scenarios=(args.scenario,), seeds=tuple(range(args.episodes)), explore=args.explore
    )
    log = simulate_log(RulesPolicy(), config)
    rewards = np.array([r.reward for r in log], dtype=np.float64)
    episodes = np.array([r.event_id.rsplit("-", 1)[0] for r in log])
    mean = float(rewards.mean())
    windows = {name: round(window.default / CYCLE_STEP) for name, window in REWARD_WINDOWS.items()}
    one_step, windowed = LinUCBBandit(), LinUCBBandit()
    used = 0
    for i, record in enumerate(log):
        width = windows[record.action]
        end = i + width
        if end > len(log) or episodes[end - 1] != episodes[i]:
            continue  # the window runs past the episode: not closed, not trained on
        effect = float(rewards[i:end].sum()) - width * mean
        action = ACTION_NAMES.index(record.action)
        assert record.propensity is not None and record.reward is not None
        one_step.update(record.obs_array, action, record.reward, record.propensity)
        windowed.update(record.obs_array, action, effect, record.propensity)
        used += 1
    took = time.perf_counter() - start
    print(f"log: {len(log)} decisions, {used} with a closed window ({took:.0f}s)")
    seeds = tuple(range(100, 100 + args.seeds))
    results = {}
    for label, policy in (
        ("one-step", one_step),
        ("windowed", windowed),
        ("rules", RulesPolicy()),
        ("noop", NoopPolicy()),
    ):
        results[label] = evaluate(policy, [args.scenario], seeds, record_kpis=False)
        overall = results[label].overall()
        print(
            f"{label:<10} mean return {overall.mean:9.1f} [{overall.low:9.1f}, {overall.high:9.1f}]"
        )
    for label in ("one-step", "windowed"):
        for bar in ("rules", "windowed"):
            if bar != label:
                diff = compare(results[label], results[bar]).overall
                print(f"{label} - {bar}: {diff.mean:+.1f} [{diff.low:+.1f}, {diff.high:+.1f}]")
    print(f"total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
