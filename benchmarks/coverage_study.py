"""What does a number of seeds buy? Actual coverage of 95% intervals for the mean of run scores, and
the actual confidence of (p = 0.9, gamma = 0.95) tolerance intervals, by Monte Carlo.

Distributions of per-run scores: normal; lognormal (skewed); bimodal "some seeds fail" (80% of runs
near 1, 20% near 0). Every interval is computed by evalkit's own functions (``bootstrap_interval``,
``t_interval``, ``tolerance_interval``), trial by trial. Prints a Markdown table; each figure +- its
Monte Carlo standard error. About 3 minutes at the defaults on one core.

    python benchmarks/coverage_study.py [--trials 2000] [--reps 1000]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import stats as sps

from evalkit import stats
from evalkit.stats import tolerance

DISTRIBUTIONS = {
    "normal": (lambda rng, shape: rng.normal(0.0, 1.0, shape), 0.0, lambda q: sps.norm.cdf(q)),
    "lognormal": (lambda rng, shape: rng.lognormal(0.0, 1.0, shape), math.exp(0.5), lambda q: sps.lognorm.cdf(q, 1.0)),
    "bimodal": (lambda rng, shape: np.where(rng.random(shape) < 0.2, rng.normal(0.0, 0.05, shape),
                                            rng.normal(1.0, 0.05, shape)), 0.8,
                lambda q: 0.2 * sps.norm.cdf(q, 0.0, 0.05) + 0.8 * sps.norm.cdf(q, 1.0, 0.05)),
}


def se(q: float, trials: int) -> float:
    """Monte Carlo standard error of a proportion q from ``trials`` trials."""
    return math.sqrt(max(q * (1 - q), 1e-12) / trials)


def cell(draw, true_mean, cdf, n: int, trials: int, reps: int, rng: np.random.Generator) -> dict[str, str]:
    """Coverage of each method at one (distribution, n), measured on evalkit's own functions."""
    x = draw(rng, (trials, n))
    seeds = rng.integers(0, 2**63 - 1, size=trials)
    hits = {"percentile": 0, "bca": 0, "t": 0, "tol_normal": 0, "tol_np": 0}
    refused = False
    for row, seed in zip(x, seeds):
        for method in ("percentile", "bca"):
            e = stats.bootstrap_interval(row, np.mean, reps=reps, method=method, seed=int(seed))
            hits[method] += e.low <= true_mean <= e.high
        e = stats.t_interval(row)
        hits["t"] += e.low <= true_mean <= e.high
        ti = stats.tolerance_interval(row, 0.9, 0.95, method="normal")
        hits["tol_normal"] += cdf(ti.high) - cdf(ti.low) >= 0.9
        ti = stats.tolerance_interval(row, 0.9, 0.95, method="nonparametric")
        refused = ti.refused
        hits["tol_np"] += (not ti.refused) and cdf(ti.high) - cdf(ti.low) >= 0.9
    out = {k: f"{v / trials:.3f} ± {se(v / trials, trials):.3f}" for k, v in hits.items()}
    if refused:
        out["tol_np"] = f"refused (needs {tolerance.nonparametric_min_runs(0.9, 0.95, 2)} runs)"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"Nominal 95% intervals for the mean; (0.90, 0.95) two-sided tolerance intervals. {args.trials} trials "
          f"per cell, {args.reps} bootstrap resamples; ± is the Monte Carlo standard error.\n")
    print("| distribution | n | percentile | BCa | t | tolerance normal (conf.) | tolerance nonparam. (conf.) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (draw, true_mean, cdf) in DISTRIBUTIONS.items():
        for n in (3, 5, 10, 30, 50):
            c = cell(draw, true_mean, cdf, n, args.trials, args.reps, rng)
            print(f"| {name} | {n} | {c['percentile']} | {c['bca']} | {c['t']} | {c['tol_normal']} | {c['tol_np']} |",
                  flush=True)


if __name__ == "__main__":
    main()
