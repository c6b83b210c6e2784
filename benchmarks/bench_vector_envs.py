"""Env steps per second: agents.vector_envs vs gymnasium's SyncVectorEnv, random actions.

Usage (about a minute on 2 cores)::

    nice -n 10 python benchmarks/bench_vector_envs.py [--seconds 0.4] [--batch-sizes 1 8 32 128 2048]

Each cell steps a batch of B copies with uniformly random actions (drawn beforehand from a
seeded numpy Generator, so action sampling is not timed) for at least ``--seconds`` seconds
after a short warm-up, and reports aggregate env steps/s = B * vector steps / seconds.
Both implementations autoreset ended copies (ours in the same step, SyncVectorEnv in its
default next-step mode). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import gymnasium as gym
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from agents.vector_envs import make_vector  # noqa: E402

IDS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")


def steps_per_second(step, actions: np.ndarray, seconds: float) -> float:
    """Aggregate env steps/s of calling ``step(actions[k % len])`` for >= ``seconds``."""
    n_pool, batch = actions.shape
    for k in range(3):  # warm-up
        step(actions[k % n_pool])
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(8):
            step(actions[calls % n_pool])
            calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * batch / elapsed


def bench(env_id: str, batch: int, seconds: float) -> tuple[float, float]:
    """``(ours, SyncVectorEnv)`` aggregate steps/s for ``batch`` copies of ``env_id``."""
    seeds = list(range(batch))
    ours = make_vector(env_id, seeds)
    ours.reset()
    actions = np.random.default_rng(0).integers(ours.action_space.n, size=(64, batch))
    ours_sps = steps_per_second(ours.step, actions, seconds)

    sync = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in seeds])
    sync.reset(seed=seeds)
    sync_sps = steps_per_second(sync.step, actions, seconds)
    sync.close()
    return ours_sps, sync_sps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=0.4, help="timed seconds per cell")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 128, 2048])
    p.add_argument("--envs", nargs="+", default=list(IDS))
    args = p.parse_args(argv)

    print(f"numpy {np.__version__}, gymnasium {gym.__version__}, {os.cpu_count()} CPUs; "
          f"{args.seconds:g} s per cell, random actions\n")
    print("| env | B | agents.vector_envs steps/s | SyncVectorEnv steps/s | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for env_id in args.envs:
        for batch in args.batch_sizes:
            ours, sync = bench(env_id, batch, args.seconds)
            print(f"| {env_id} | {batch} | {ours:,.0f} | {sync:,.0f} | {ours / sync:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
