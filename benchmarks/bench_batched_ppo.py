"""Aggregate env steps/s of seed-batched PPO vs the unbatched agent (issue 9).

Usage (about 2 minutes on one core at the defaults)::

    nice -n 10 python benchmarks/bench_batched_ppo.py [--steps 20000] [--batch-sizes 1 8 32]

On CartPole-v1 at PPO's default hyperparameters (rl-zoo3's CartPole setting: 8 env copies,
32-step rollouts, 20 epochs of one 256-sample minibatch), in this process on one torch thread:

* **unbatched**: ``agents.ppo.train`` for one seed, ``--steps`` env steps; steps/s = steps / wall;
* **batched**: ``agents.ppo_batched.train_batch`` with B seeds for ``--steps`` env steps each;
  aggregate steps/s = B * steps / wall time.

Prints a Markdown table with each batched speed next to the unbatched one and their ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from agents.common import ListLog  # noqa: E402


def unbatched_sps(steps: int, seed: int = 0) -> float:
    from agents import ppo
    log = ListLog()
    t0 = time.perf_counter()
    ppo.train("CartPole-v1", ppo.Config(), seed, steps, log)
    wall = time.perf_counter() - t0
    assert log.rows
    return steps / wall


def batched_sps(batch: int, steps: int) -> float:
    from agents import ppo, ppo_batched
    logs = [ListLog() for _ in range(batch)]
    t0 = time.perf_counter()
    ppo_batched.train_batch("CartPole-v1", ppo.Config(), list(range(batch)), steps, logs)
    wall = time.perf_counter() - t0
    assert all(log.rows for log in logs)
    return batch * steps / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20_000, help="env steps per seed")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args()
    torch.set_num_threads(1)
    batched_sps(1, 2000)  # warm-up (imports, first-call allocations), not timed
    base = unbatched_sps(args.steps)
    print(f"unbatched agents.ppo.train, 1 seed: {base:,.0f} steps/s", flush=True)
    rows = []
    for b in args.batch_sizes:
        sps = batched_sps(b, args.steps)
        rows.append((b, sps))
        print(f"batched B={b}: {sps:,.0f} steps/s ({sps / base:.1f}x)", flush=True)
    print(f"\nPPO on CartPole-v1, default hyperparameters, {args.steps} env steps per seed; "
          "aggregate env steps/s (one process, one torch thread)\n")
    print("| unbatched, 1 seed | " + " | ".join(f"batched B={b}" for b in args.batch_sizes) + " |")
    print("|---|" + "---|" * len(args.batch_sizes))
    print(f"| {base:,.0f} | " + " | ".join(f"{sps:,.0f} ({sps / base:.1f}×)" for _, sps in rows) + " |")


if __name__ == "__main__":
    main()
