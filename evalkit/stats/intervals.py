"""Confidence intervals for one sample of run scores (one algorithm, one task)."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats as sps

from evalkit.stats.bootstrap import METHODS, interval
from evalkit.stats.inputs import as_sample, check_confidence, check_reps
from evalkit.stats.results import Estimate


def t_interval(x: object, confidence: float = 0.95, nan_policy: str = "raise") -> Estimate:
    """Student-t interval for the mean: ``mean +- t_{(1+c)/2, n-1} * s / sqrt(n)``.

    Assumes roughly normal run scores; see the coverage study in the README for how it
    under-covers skewed or bimodal ("some seeds fail") distributions at small n.
    """
    a = as_sample(x, nan_policy=nan_policy)
    confidence = check_confidence(confidence)
    m, se = a.mean(), a.std(ddof=1) / np.sqrt(a.size)
    half = sps.t.ppf((1 + confidence) / 2, a.size - 1) * se
    return Estimate(float(m), float(m - half), float(m + half), "Student t", confidence, a.size, 0, "mean")


def bootstrap_interval(x: object, statistic: Callable[[np.ndarray], float] = np.mean, reps: int = 10_000,
                       confidence: float = 0.95, method: str = "percentile", seed: int = 0,
                       nan_policy: str = "raise") -> Estimate:
    """Percentile or BCa bootstrap interval of ``statistic`` over runs (Efron & Tibshirani 1993).

    Equivalent to ``scipy.stats.bootstrap`` with the same method up to Monte Carlo error.
    """
    a = as_sample(x, nan_policy=nan_policy)
    reps, confidence = check_reps(reps), check_confidence(confidence)
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, found {method!r}")
    rng = np.random.default_rng(seed)
    point = float(statistic(a))
    boot = np.empty(reps)
    for start in range(0, reps, 20_000):
        n = min(20_000, reps - start)
        sample = a[rng.integers(0, a.size, size=(n, a.size))]
        boot[start:start + n] = _apply(statistic, sample)
    jack = _apply(statistic, np.array([np.delete(a, i) for i in range(a.size)])) if method == "bca" else None
    lo, hi = interval(point, boot, confidence, method, jack)
    name = getattr(statistic, "__name__", "statistic")
    return Estimate(point, lo, hi, f"bootstrap, {method}", confidence, a.size, reps, name)


def _apply(statistic: Callable, samples: np.ndarray) -> np.ndarray:
    """``statistic`` on each row; vectorised when it accepts ``axis=-1`` (np.mean, np.median...)."""
    try:
        out = np.asarray(statistic(samples, axis=-1), dtype=float)
        if out.shape == samples.shape[:-1]:
            return out
    except TypeError:
        pass
    return np.array([statistic(s) for s in samples], dtype=float)
