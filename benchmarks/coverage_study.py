"""What does a number of seeds buy? Actual coverage of 95% intervals for the mean of run scores, and
the actual confidence of (p = 0.9, gamma = 0.95) tolerance intervals, by Monte Carlo.

Distributions of per-run scores: normal; lognormal (skewed); bimodal "some seeds fail" (80% of runs
near 1, 20% near 0). Prints a Markdown table; each figure +- its Monte Carlo standard error.

    python benchmarks/coverage_study.py [--trials 2000] [--reps 1000]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import stats as sps

from evalkit.stats import tolerance

DISTRIBUTIONS = {
    "normal": (lambda rng, shape: rng.normal(0.0, 1.0, shape), 0.0, lambda q: sps.norm.cdf(q)),
    "lognormal": (lambda rng, shape: rng.lognormal(0.0, 1.0, shape), math.exp(0.5), lambda q: sps.lognorm.cdf(q, 1.0)),
    "bimodal": (lambda rng, shape: np.where(rng.random(shape) < 0.2, rng.normal(0.0, 0.05, shape),
                                            rng.normal(1.0, 0.05, shape)), 0.8,
                lambda q: 0.2 * sps.norm.cdf(q, 0.0, 0.05) + 0.8 * sps.norm.cdf(q, 1.0, 0.05)),
}


def bootstrap_intervals(x: np.ndarray, reps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Percentile and BCa 95% intervals of the mean for each row of x (trials, n)."""
    trials, n = x.shape
    idx = rng.integers(0, n, size=(trials, reps, n))
    boot = np.take_along_axis(x[:, None, :].repeat(reps, 1), idx, axis=2).mean(-1)
    pct = np.percentile(boot, [2.5, 97.5], axis=1).T
    theta = x.mean(1)
    frac = np.clip((boot < theta[:, None]).mean(1), 1 / (reps + 1), 1 - 1 / (reps + 1))
    z0 = sps.norm.ppf(frac)
    jack = (x.sum(1, keepdims=True) - x) / (n - 1)
    d = jack.mean(1, keepdims=True) - jack
    den = 6 * (d ** 2).sum(1) ** 1.5
    a = np.where(den > 0, (d ** 3).sum(1) / np.where(den > 0, den, 1), 0.0)
    z = sps.norm.ppf([0.025, 0.975])
    levels = sps.norm.cdf(z0[:, None] + (z0[:, None] + z) / (1 - a[:, None] * (z0[:, None] + z)))
    bca = np.array([np.percentile(boot[i], 100 * levels[i]) for i in range(trials)])
    return {"percentile": pct, "bca": bca}


def t_intervals(x: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    half = sps.t.ppf(0.975, n - 1) * x.std(1, ddof=1) / math.sqrt(n)
    return np.stack([x.mean(1) - half, x.mean(1) + half], 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| distribution | n | percentile | BCa | t | tolerance normal (conf.) | tolerance nonparam. |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (draw, true_mean, cdf) in DISTRIBUTIONS.items():
        for n in (3, 5, 10, 30, 50):
            x = draw(rng, (args.trials, n))
            cov = {}
            for method, iv in {**bootstrap_intervals(x, args.reps, rng), "t": t_intervals(x)}.items():
                cov[method] = np.mean((iv[:, 0] <= true_mean) & (true_mean <= iv[:, 1]))
            k = tolerance.tolerance_factor(n, 0.9, 0.95, 2)
            m, s = x.mean(1), x.std(1, ddof=1)
            content = cdf(m + k * s) - cdf(m - k * s)
            tol_normal = np.mean(content >= 0.9)
            if n >= tolerance.nonparametric_min_runs(0.9, 0.95, 2):
                srt = np.sort(x, 1)
                tol_np = f"{np.mean(cdf(srt[:, -1]) - cdf(srt[:, 0]) >= 0.9):.3f}"
            else:
                tol_np = f"refused (needs {tolerance.nonparametric_min_runs(0.9, 0.95, 2)} runs)"
            se = lambda q: math.sqrt(max(q * (1 - q), 1e-12) / args.trials)
            cells = [f"{cov[m_]:.3f} ± {se(cov[m_]):.3f}" for m_ in ("percentile", "bca", "t")]
            print(f"| {name} | {n} | " + " | ".join(cells) + f" | {tol_normal:.3f} ± {se(tol_normal):.3f} | {tol_np} |")


if __name__ == "__main__":
    main()
