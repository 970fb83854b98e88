"""Overhead of streaming stable-baselines3's metrics to MLflow during PPO training.

The same PPO training (same seed, same environments, ``--steps`` environment steps) runs in
one process under three loggers, alternating in rounds so that machine noise hits all alike:

- ``none``: SB3's logger with no output at all (the reference);
- ``mlflow``: :class:`experiments.tracking.MlflowOutputFormat` (batched, asynchronous
  ``log_batch``) into a run of a local SQLite store, including the final flush-and-wait;
- ``naive``: a writer calling ``MlflowClient.log_metric`` synchronously for every value, to show
  what batching and asynchronous sending buy.

Reported: the median wall time per variant and the overhead, the median over rounds of
``time(variant) / time(none) - 1`` (per-round ratios, so that load drifting between rounds on a
shared machine cancels; target <= 5% for ``mlflow``). Periodic evaluation is not included: it
is a choice of the run (``eval_every``), not a cost of logging. The fixed bookkeeping of a run
(the pyfunc model and its registration) is measured once and reported in seconds.

    python benchmarks/mlflow_overhead.py [--steps 20000] [--rounds 3] [--n-envs 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow import MlflowClient
from stable_baselines3 import PPO
from stable_baselines3.common.logger import KVWriter, Logger

from experiments.algorithms import sb3_kwargs
from experiments.config import load_config
from experiments.models import log_policy_model
from experiments.tracking import MlflowOutputFormat, configure, start_run
from policies.sb3 import SB3Policy, make_training_env


class NaiveWriter(KVWriter):
    """One synchronous ``log_metric`` call per value: what not to do."""

    def __init__(self, run_id: str, client: MlflowClient) -> None:
        self.run_id, self.client = run_id, client

    def write(
        self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0
    ) -> None:
        for key, value in key_values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.client.log_metric(self.run_id, key, float(value), step=step)

    def close(self) -> None:
        pass


def train_once(variant: str, steps: int, n_envs: int, tracking: Any) -> tuple[float, Any]:
    """Wall seconds of one PPO training under ``variant``'s logger (and the model)."""
    params = load_config("ppo").hyperparameters
    env = make_training_env("mixed", n_envs, seed=0, reward_scale=params.reward_scale)
    model = PPO("MlpPolicy", env, seed=0, device="cpu", verbose=0, **sb3_kwargs(params))
    if variant == "none":
        outputs: list[KVWriter] = []
        run = None
    else:
        run = mlflow.start_run(experiment_id=tracking_experiment(tracking), run_name=variant)
        client = tracking.client()
        writer: KVWriter = (
            MlflowOutputFormat(run.info.run_id, client)
            if variant == "mlflow"
            else NaiveWriter(run.info.run_id, client)
        )
        outputs = [writer]
    model.set_logger(Logger(folder=None, output_formats=outputs))
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    for output in outputs:
        output.close()  # the final flush and wait count
    elapsed = time.perf_counter() - start
    if run is not None:
        mlflow.end_run()
    env.close()
    return elapsed, model


def tracking_experiment(tracking: Any) -> str:
    from experiments.tracking import experiment_id

    return experiment_id(tracking, "mlflow-overhead")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-envs", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        tracking = configure(f"sqlite:///{Path(tmp) / 'mlflow.db'}", Path(tmp) / "artifacts")
        tracking_experiment(tracking)  # create the store and experiment before timing
        variants = ("none", "mlflow", "naive")
        times: dict[str, list[float]] = {v: [] for v in variants}
        train_once("none", 2_048, args.n_envs, tracking)  # warm-up: imports, torch init
        model = None
        for round_ in range(args.rounds):
            order = variants[round_ % 3 :] + variants[: round_ % 3]
            for variant in order:
                elapsed, model = train_once(variant, args.steps, args.n_envs, tracking)
                times[variant].append(elapsed)
            print(f"round {round_ + 1}: " + ", ".join(f"{v} {times[v][-1]:.2f}s" for v in variants))

        start = time.perf_counter()
        with start_run(tracking, "mlflow-overhead", "bookkeeping"):
            log_policy_model(SB3Policy(model))
        bookkeeping = time.perf_counter() - start

    medians = {v: statistics.median(t) for v, t in times.items()}
    print(f"\nPPO, {args.steps} steps, {args.n_envs} envs, {args.rounds} rounds")
    for variant in variants:
        ratios = [t / r for t, r in zip(times[variant], times["none"], strict=True)]
        overhead = statistics.median(ratios) - 1
        print(
            f"  {variant:<8}median {medians[variant]:6.2f} s   overhead (median of per-round "
            f"ratios) {100 * overhead:+6.1f}%"
        )
    print(f"  model logging + registration, once per run: {bookkeeping:.2f} s")


if __name__ == "__main__":
    main()
