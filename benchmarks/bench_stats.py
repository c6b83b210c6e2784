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
    t0, c0 = time.perf_counter(), time.process_time()
    _, theirs = rly.get_interval_estimates(scores, fn, reps=args.reps, random_state=np.random.RandomState(1))
    t_rliable, c_rliable = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    ours = stats.interval_estimates(scores, NAMES, reps=args.reps, seed=1)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    # memory in a second, identical run: tracemalloc's bookkeeping would inflate the timing
    tracemalloc.start()
    stats.interval_estimates(scores, NAMES, reps=args.reps, seed=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    worst = 0.0
    for alg in scores:
        for i, name in enumerate(NAMES):
            width = theirs[alg][1, i] - theirs[alg][0, i]
            e = ours[alg][name]
            worst = max(worst, abs(e.low - theirs[alg][0, i]) / width, abs(e.high - theirs[alg][1, i]) / width)
    # CPU seconds too: on a shared machine wall time also measures the neighbours
    print("| reps | rliable 1.2.0 wall (CPU) | evalkit wall (CPU) | speed-up wall (CPU) | max endpoint diff / width "
          "| evalkit peak memory |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.reps:,} | {t_rliable:.2f} s ({c_rliable:.2f} s) | {t_ours:.2f} s ({c_ours:.2f} s) | "
          f"{t_rliable / t_ours:.1f}x ({c_rliable / c_ours:.1f}x) | {worst:.3f} | {peak / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
