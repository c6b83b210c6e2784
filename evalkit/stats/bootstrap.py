"""Stratified bootstrap confidence intervals (Agarwal et al. 2021; Efron & Tibshirani 1993).

Runs are resampled with replacement independently within each task. For the named aggregates each
resample is drawn, counted and evaluated exactly by a compiled kernel
(:class:`evalkit.stats.resample.FusedAggregates`, :mod:`evalkit.stats.kernels`; the numpy count
path :class:`evalkit.stats.resample.Aggregates` computes the same statistics and serves as its
reference in the tests), so memory is the replicates only and there is no per-resample Python loop.
Any other aggregate (a callable on a (runs, tasks) matrix) is evaluated on materialised resamples,
chunk by chunk. BCa's jackknife for the named aggregates is in closed form
(:func:`evalkit.stats.aggregates.jackknife`).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Mapping

import numpy as np
from scipy import stats as sps

from evalkit.stats import aggregates as agg
from evalkit.stats import resample
from evalkit.stats.inputs import as_score_dict, check_confidence, check_reps
from evalkit.stats.results import Estimate

METHODS = ("percentile", "bca")


def algorithm_rng(seed: int, name: str) -> np.random.Generator:
    """The random stream of algorithm ``name``: ``SeedSequence(entropy=seed, spawn_key=key(name))``
    where key is the first 16 bytes of SHA-256 of the UTF-8 name as four 32-bit words. It depends
    on the name only -- adding, removing or renaming another algorithm leaves it unchanged.
    """
    digest = hashlib.sha256(str(name).encode("utf-8")).digest()[:16]
    key = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=key))


def resample_counts(rng: np.random.Generator, runs: int, tasks: int, reps: int) -> np.ndarray:
    """(reps, runs * tasks) counts of a stratified bootstrap: column ``task * runs + run``.

    Each task's ``runs`` draws are uniform over its runs; counts are accumulated draw by draw with
    one comparison against ``arange(runs)`` (faster than a ``bincount`` over all draws).
    """
    small = runs <= 127
    draws = rng.integers(0, runs, size=(runs, reps, tasks), dtype=np.int8 if small else np.int64)
    counts = np.zeros((runs, reps, tasks), np.int16 if runs < 2**15 else np.int64)  # [run, rep, task]
    for k in range(runs):
        draw = draws[k]
        for j in range(runs):
            counts[j] += draw == j
    return np.ascontiguousarray(counts.transpose(1, 2, 0)).reshape(reps, tasks * runs)


def _chunks(reps: int, chunk: int):
    done = 0
    while done < reps:
        n = min(chunk, reps - done)
        yield n
        done += n


def bootstrap_distribution(scores: np.ndarray, aggregate: str | Callable | tuple[str, ...], reps: int,
                           rng: np.random.Generator, chunk: int = 10_000) -> np.ndarray:
    """Bootstrap replicates of ``aggregate`` under stratified resampling of ``scores``.

    (reps,) for one aggregate; (len(names), reps) for a tuple of aggregate names, which share
    the same resamples (as rliable does when one function returns several aggregates).
    """
    runs, tasks = scores.shape
    out = []
    if isinstance(aggregate, (str, tuple)):
        names = (aggregate,) if isinstance(aggregate, str) else aggregate
        # the compiled kernel draws, counts and evaluates one resample at a time: memory is the
        # output only, so ``chunk`` does not apply (resample b's draws do not depend on it either)
        stacked = resample.FusedAggregates(scores, names).drawn(rng, reps)
        return stacked[0] if isinstance(aggregate, str) else stacked
    else:
        cols = np.arange(tasks)[None, None, :]
        for n in _chunks(reps, max(1, chunk // 10)):
            idx = rng.integers(0, runs, size=(n, runs, tasks))
            sample = scores[idx, cols]
            out.append(np.array([aggregate(s) for s in sample], dtype=float))
    return np.concatenate(out)


def _jackknife(scores: np.ndarray, aggregate: str | Callable) -> np.ndarray:
    """Leave-one-out replicates for the BCa acceleration (Efron 1987, eq. 6.6).

    Named aggregates leave out one run of one task (the stratified jackknife), in closed form
    (:func:`evalkit.stats.aggregates.jackknife`: O(N log N) time and O(N) memory for N scores).
    A callable needs a rectangular matrix, so it leaves out one run index across all tasks.
    """
    runs, tasks = scores.shape
    if isinstance(aggregate, str):
        return agg.jackknife(scores, aggregate)
    return np.array([aggregate(np.delete(scores, r, axis=0)) for r in range(runs)], float)


def interval(point: float, boot: np.ndarray, confidence: float, method: str,
             jackknife: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile or BCa interval from bootstrap replicates ``boot`` of the estimate ``point``."""
    alpha = (1 - confidence) / 2
    if method == "percentile":
        lo, hi = np.percentile(boot, [100 * alpha, 100 * (1 - alpha)])
        return float(lo), float(hi)
    # BCa (Efron 1987): bias correction z0 and acceleration a from the jackknife
    frac = np.mean(boot < point) + 0.5 * np.mean(boot == point)
    frac = np.clip(frac, 1 / (len(boot) + 1), 1 - 1 / (len(boot) + 1))
    z0 = sps.norm.ppf(frac)
    d = jackknife.mean() - jackknife
    denom = 6.0 * np.sum(d ** 2) ** 1.5
    a = np.sum(d ** 3) / denom if denom > 0 else 0.0
    z = sps.norm.ppf([alpha, 1 - alpha])
    levels = sps.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    lo, hi = np.percentile(boot, 100 * levels)
    return float(lo), float(hi)


def interval_estimates(scores_dict: Mapping[str, np.ndarray], aggregate: str | Callable | list | tuple = "iqm",
                       reps: int = 2000, confidence: float = 0.95, method: str = "percentile", seed: int = 0,
                       chunk: int = 10_000, nan_policy: str = "raise") -> dict:
    """Point estimate and stratified-bootstrap CI of an aggregate, per algorithm.

    ``scores_dict``: ``{algorithm: (runs, tasks)}`` (or a per-run table); ``aggregate``: "iqm",
    "mean", "median", "optimality_gap" (gamma = 1), a callable on a (runs, tasks) matrix, or a
    list of names (then the result is ``{algorithm: {name: Estimate}}`` and the aggregates share
    their resamples); ``method``: "percentile" (rliable's default) or "bca". Each algorithm's
    resamples come from its own stream, derived from ``seed`` and the algorithm's *name*
    (:func:`algorithm_rng`), so adding, removing or renaming other algorithms leaves its interval
    unchanged. Returns ``{algorithm: Estimate}`` for a single aggregate.
    """
    scores = as_score_dict(scores_dict, nan_policy=nan_policy)
    reps, confidence = check_reps(reps), check_confidence(confidence)
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, found {method!r}")
    several = isinstance(aggregate, (list, tuple))
    names = list(aggregate) if several else [aggregate]
    for a in names:
        if isinstance(a, str) and a not in agg.AGGREGATES:
            raise ValueError(f"aggregate: expected one of {list(agg.AGGREGATES)} or a callable, found {a!r}")
        if several and not isinstance(a, str):
            raise ValueError("aggregate: a list must hold aggregate names")
    out = {}
    for alg, x in sorted(scores.items()):
        rng = algorithm_rng(seed, alg)
        boots = (bootstrap_distribution(x, tuple(names), reps, rng, chunk) if several
                 else [bootstrap_distribution(x, names[0], reps, rng, chunk)])
        row = {}
        for a, boot in zip(names, boots):
            point_fn = agg.AGGREGATES[a] if isinstance(a, str) else a
            name = a if isinstance(a, str) else getattr(a, "__name__", "aggregate")
            point = float(point_fn(x))
            jack = _jackknife(x, a) if method == "bca" else None
            lo, hi = interval(point, boot, confidence, method, jack)
            row[name] = Estimate(point, lo, hi, f"stratified bootstrap, {method}", confidence, x.shape[0], reps, name)
        out[alg] = row if several else next(iter(row.values()))
    return out
