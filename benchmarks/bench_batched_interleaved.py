"""Per-process throughput of seed-batched DQN vs the unbatched agent, interleaved (issue 21).

The table behind ``batch_seeds = "auto"`` (``agents.dqn.AUTO_BLOCKS``) on a machine whose load
moves during a measurement: each repetition runs the unbatched agent (one seed) and then the
batched agent with B seeds, one after the other, so a load change hits both; the medians over
repetitions are compared. Config: DQN's CartPole-v1 defaults (``dqn.ENV_DEFAULTS``) at the given
width. How it maps to ``evalkit run`` with 2 workers: unbatched runs keep both workers busy, so
the runner's rate is about 2x one process; blocks of B reach 2x ``rate(B)`` from 2B seeds on (two
blocks at once) but only 1x with a single block. So a block of B helps when ``rate(B) / rate(1)
> 1`` and there are at least 2B seeds; a single block needs a ratio above 2.

    python benchmarks/bench_batched_interleaved.py --hidden 128 --steps 3000 --reps 3 --blocks 4 8 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    from agents import dqn, dqn_batched
    from agents.common import ListLog
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3000, help="env steps per seed (learning starts at 1000)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--blocks", type=int, nargs="+", default=[4, 8, 32])
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = dqn.Config(**{**dqn.ENV_DEFAULTS["CartPole-v1"], "hidden": a.hidden})
    res: dict = {"unbatched": []} | {b: [] for b in a.blocks}
    for r in range(a.reps):
        t0 = time.perf_counter()
        dqn.train("CartPole-v1", cfg, r, a.steps, ListLog())
        res["unbatched"].append(a.steps / (time.perf_counter() - t0))
        for b in a.blocks:
            t0 = time.perf_counter()
            dqn_batched.train_batch("CartPole-v1", cfg, list(range(b)), a.steps, [ListLog() for _ in range(b)])
            res[b].append(b * a.steps / (time.perf_counter() - t0))
        print(f"rep {r}: " + ", ".join(f"{k}: {v[-1]:,.0f}" for k, v in res.items()), flush=True)
    u = float(np.median(res["unbatched"]))
    print(f"hidden {a.hidden}, {a.steps} steps per seed, median of {a.reps}: unbatched {u:,.0f} env steps/s per process")
    for b in a.blocks:
        m = float(np.median(res[b]))
        print(f"  B={b}: {m:,.0f} env steps/s per process = {m / u:.2f}x one unbatched process")


if __name__ == "__main__":
    main()
