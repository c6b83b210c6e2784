"""Speed of evalkit's stratified bootstrap against rliable's, in one run (not a timed test).

5 algorithms x 26 tasks x 10 runs, 4 aggregates (IQM, mean, median, optimality gap), 50,000
resamples by default. Prints both wall times, the ratio, the largest endpoint difference relative to
the interval width, and evalkit's peak traced memory.

    python benchmarks/bench_stats.py [--reps 50000]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from rliable import library as rly
from rliable import metrics as rlm

from evalkit import stats

NAMES = ["iqm", "mean", "median", "optimality_gap"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=50_000)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    scores = {f"algo{i}": rng.gamma(2.0 + i, 0.3, size=(10, 26)) for i in range(5)}

    fn = lambda x: np.array([rlm.aggregate_iqm(x), rlm.aggregate_mean(x), rlm.aggregate_median(x),
                             rlm.aggregate_optimality_gap(x)])
    t0 = time.perf_counter()
    _, theirs = rly.get_interval_estimates(scores, fn, reps=args.reps, random_state=np.random.RandomState(1))
    t_rliable = time.perf_counter() - t0

    tracemalloc.start()
    t0 = time.perf_counter()
    ours = stats.interval_estimates(scores, NAMES, reps=args.reps, seed=1)
    t_ours = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    worst = 0.0
    for alg in scores:
        for i, name in enumerate(NAMES):
            width = theirs[alg][1, i] - theirs[alg][0, i]
            e = ours[alg][name]
            worst = max(worst, abs(e.low - theirs[alg][0, i]) / width, abs(e.high - theirs[alg][1, i]) / width)
    print(f"| reps | rliable 1.2.0 | evalkit | speed-up | max endpoint diff / width | evalkit peak memory |")
    print(f"|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.reps:,} | {t_rliable:.2f} s | {t_ours:.2f} s | {t_rliable / t_ours:.1f}x | {worst:.3f} | "
          f"{peak / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
