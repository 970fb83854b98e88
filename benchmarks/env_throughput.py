"""Random-action steps per second of ``autopilot/SaaSOps-v0`` against ``CartPole-v1``.

Both environments are made with ``gymnasium.make`` (so both carry the same wrappers) and
stepped in the same process, alternating in rounds so that machine noise hits both alike;
the figure reported is the median over rounds, and the ratio is ours / CartPole's. A vectorized
figure uses ``gymnasium.make_vec`` with 8 copies (sync vectorization, one process).

    python benchmarks/env_throughput.py [--steps 20000] [--rounds 5] [--num-envs 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import environment

CARTPOLE = "CartPole-v1"


def single_steps_per_second(env_id: str, steps: int, seed: int) -> float:
    """Steps per second of one ``gymnasium.make`` env under uniformly random actions."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def vector_steps_per_second(env_id: str, steps: int, num_envs: int, seed: int) -> float:
    """Environment steps (over all copies) per second of ``gymnasium.make_vec``."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    batches = max(1, steps // num_envs)
    actions = [envs.action_space.sample() for _ in range(batches)]
    start = time.perf_counter()
    for action in actions:
        envs.step(action)
    elapsed = time.perf_counter() - start
    envs.close()
    return batches * num_envs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--num-envs", type=int, default=8)
    args = parser.parse_args()

    rows: dict[str, list[float]] = {k: [] for k in ("ours", "cartpole", "ours_vec", "cart_vec")}
    for round_index in range(args.rounds):
        rows["ours"].append(single_steps_per_second(environment.ENV_ID, args.steps, round_index))
        rows["cartpole"].append(single_steps_per_second(CARTPOLE, args.steps, round_index))
        rows["ours_vec"].append(
            vector_steps_per_second(environment.ENV_ID, args.steps, args.num_envs, round_index)
        )
        rows["cart_vec"].append(
            vector_steps_per_second(CARTPOLE, args.steps, args.num_envs, round_index)
        )
    ratios = np.array(rows["ours"]) / np.array(rows["cartpole"])
    vec_ratios = np.array(rows["ours_vec"]) / np.array(rows["cart_vec"])
    median = statistics.median
    print(f"{'':34}{'median steps/s':>16}")
    print(f"{'SaaSOps-v0, gymnasium.make':34}{median(rows['ours']):>16,.0f}")
    print(f"{'CartPole-v1, gymnasium.make':34}{median(rows['cartpole']):>16,.0f}")
    print(f"{'ratio (median of per-round)':34}{median(ratios):>16.3f}")
    print(f"{f'SaaSOps-v0, make_vec x{args.num_envs}':34}{median(rows['ours_vec']):>16,.0f}")
    print(f"{f'CartPole-v1, make_vec x{args.num_envs}':34}{median(rows['cart_vec']):>16,.0f}")
    print(f"{'vector ratio (median of per-round)':34}{median(vec_ratios):>16.3f}")


if __name__ == "__main__":
    main()
