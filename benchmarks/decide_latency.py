"""Decide latency: the NumPy fast path of an SB3 policy against ``model.predict``.

Both run in this process on the same model and the same observations, interleaved call by
call so that machine noise hits both alike; the figures are p50 and p99 per call and the
ratio fast / predict (target <= 0.25). Also the bandits' single decide latency and every
policy's batch throughput (decisions per second at batch 1,000, through ``decide_batch`` with
its ``Decision`` records and through ``decide_arrays``).

    python benchmarks/decide_latency.py [--calls 5000] [--timesteps 2048] [--batch 1000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from environment.kpis import N_OBS, OBS_HIGH, OBS_LOW
from policies.bandits import BANDITS, Bandit
from policies.base import ArrayPolicy
from policies.rules import RulesPolicy
from policies.sb3 import train_sb3


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in microseconds."""
    values = np.asarray(samples) * 1e6
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def interleaved(
    calls: dict[str, Callable[[np.ndarray], object]], obs: np.ndarray
) -> dict[str, list[float]]:
    """Time each call on every observation, alternating between the calls."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for row in obs:
        for name, call in calls.items():
            start = time.perf_counter()
            call(row)
            times[name].append(time.perf_counter() - start)
    return times


def throughput(policy: ArrayPolicy, obs: np.ndarray, records: bool, repeats: int = 5) -> float:
    """Decisions per second on one batch (best of ``repeats``)."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        if records:
            policy.decide_batch(obs)
        else:
            policy.decide_arrays(obs)
        best = min(best, time.perf_counter() - start)
    return len(obs) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--timesteps", type=int, default=2_048, help="PPO training (weights)")
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    obs = rng.uniform(OBS_LOW, OBS_HIGH, size=(args.calls, N_OBS)).astype(np.float32)
    batch = obs[: args.batch]

    ppo = train_sb3(
        "ppo", "mixed", args.timesteps, 0, n_envs=2, reward_scale=0.1, n_steps=256, batch_size=64
    )
    model = ppo.model
    for row in obs[:200]:  # warm both paths up
        model.predict(row, deterministic=True)
        ppo.decide(row)
    times = interleaved(
        {
            "predict": lambda row: model.predict(row, deterministic=True),
            "fast decide": ppo.decide,
            "fast scores": lambda row: ppo.scores(row[None, :]),
        },
        obs,
    )
    predict50, predict99 = percentiles(times["predict"])
    print(f"PPO, {args.calls} single-observation calls (microseconds)")
    print(f"{'':34}{'p50':>9}{'p99':>9}{'ratio p50':>11}{'ratio p99':>11}")
    for name, label in (
        ("predict", "SB3 model.predict(deterministic)"),
        ("fast decide", "SB3Policy.decide (full Decision)"),
        ("fast scores", "SB3Policy.scores (forward only)"),
    ):
        p50, p99 = percentiles(times[name])
        print(f"{label:34}{p50:>9.1f}{p99:>9.1f}{p50 / predict50:>11.3f}{p99 / predict99:>11.3f}")

    bandits: list[Bandit] = []
    for cls in BANDITS.values():
        bandit = cls()
        for row in obs[:500]:
            decision = bandit.decide(row)
            bandit.update(row, decision.action, float(rng.normal()), decision.propensity)
        bandits.append(bandit)
    bandit_times = interleaved({b.name: b.decide for b in bandits}, obs[: args.calls // 5])
    update_times: list[float] = []
    linucb = bandits[list(BANDITS).index("linucb")]
    for row in obs[: args.calls // 5]:
        start = time.perf_counter()
        linucb.update(row, 3, 0.5, 1.0)
        update_times.append(time.perf_counter() - start)
    print("\nbandits, single-observation decide (microseconds)")
    print(f"{'':34}{'p50':>9}{'p99':>9}")
    for name, samples in bandit_times.items():
        p50, p99 = percentiles(samples)
        print(f"{name:34}{p50:>9.1f}{p99:>9.1f}")
    p50, p99 = percentiles(update_times)
    print(f"{'linucb update (Sherman-Morrison)':34}{p50:>9.1f}{p99:>9.1f}")

    print(f"\nbatch throughput at batch {len(batch)} (decisions per second)")
    print(f"{'':34}{'decide_batch':>14}{'decide_arrays':>15}")
    start = time.perf_counter()
    model.predict(batch, deterministic=True)
    predict_rate = len(batch) / (time.perf_counter() - start)
    for policy in (ppo, *bandits, RulesPolicy()):
        print(
            f"{policy.name:34}{throughput(policy, batch, True):>14,.0f}"
            f"{throughput(policy, batch, False):>15,.0f}"
        )
    print(f"{'ppo model.predict (one call)':34}{predict_rate:>14,.0f}")


if __name__ == "__main__":
    main()
