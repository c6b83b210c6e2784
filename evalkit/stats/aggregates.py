"""Aggregate performance over a (runs, tasks) score matrix (Agarwal et al. 2021, rliable).

Each aggregate has two forms: on a score matrix (equal to ``rliable.metrics`` to rounding), and on
*resample counts* -- how often each run of each task is drawn by a bootstrap resample -- which is
how :mod:`evalkit.stats.bootstrap` evaluates thousands of stratified resamples at once without
materialising them. Counts are ``(reps, runs * tasks)`` with column ``j = task * runs + run``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats as sps


def mean(scores: np.ndarray) -> float:
    """Mean over tasks of the per-task mean score (rliable ``aggregate_mean``)."""
    return float(np.mean(np.mean(scores, axis=0)))


def median(scores: np.ndarray) -> float:
    """Median over tasks of the per-task mean score (rliable ``aggregate_median``)."""
    return float(np.median(np.mean(scores, axis=0)))


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: mean of the middle 50% of all runs x tasks scores (25% trimmed mean)."""
    return float(sps.trim_mean(np.asarray(scores, float), 0.25, axis=None))


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float:
    """Mean shortfall below ``gamma``: ``gamma - mean(min(scores, gamma))`` (rliable's definition)."""
    return float(gamma - np.mean(np.minimum(scores, gamma)))


AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "iqm": iqm, "mean": mean, "median": median, "optimality_gap": optimality_gap}


# ---------------------------------------------------------------- on resample counts


def _flat(scores: np.ndarray) -> np.ndarray:
    """Scores in count-column order ``j = task * runs + run``."""
    return np.ascontiguousarray(np.asarray(scores, float).T).ravel()


def _task_matrix(scores: np.ndarray) -> np.ndarray:
    """(runs * tasks, tasks) block matrix B with B[task * runs + run, task] = scores[run, task]."""
    runs, tasks = scores.shape
    out = np.zeros((runs * tasks, tasks))
    out[np.arange(runs * tasks), np.repeat(np.arange(tasks), runs)] = _flat(scores)
    return out


def _task_means(counts: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(reps, tasks) per-task means of each resample (one matrix product)."""
    runs, tasks = scores.shape
    sums = counts @ _task_matrix(scores)
    n = counts @ _task_matrix(np.ones_like(scores))
    return sums / n


def mean_counts(counts: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return _task_means(counts, scores).mean(axis=1)


def median_counts(counts: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return np.median(_task_means(counts, scores), axis=1)


def optimality_gap_counts(counts: np.ndarray, scores: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    clipped = np.minimum(_flat(scores), gamma)
    return gamma - (counts @ clipped) / counts.sum(axis=1)


def iqm_counts(counts: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """25% trimmed mean of each resample, from counts over the globally sorted scores.

    With the values sorted once, a resample is a multiset; the trimmed mean keeps positions
    ``[lo, hi)`` of its sorted order (``lo = int(0.25 N)``, ``hi = N - lo`` as in
    ``scipy.stats.trim_mean``), so each value's weight is the overlap of its run of positions
    with ``[lo, hi)``: exact, with no per-resample sort.
    """
    flat = _flat(scores)
    order = np.argsort(flat, kind="stable")
    c = counts[:, order]
    total = c.sum(axis=1, dtype=np.int64) if np.issubdtype(c.dtype, np.integer) else c.sum(axis=1)
    end = np.cumsum(c, axis=1, dtype=c.dtype)
    if np.all(total == total[0]):  # a stratified bootstrap: every resample has N values
        lo = int(int(total[0]) * 0.25)
        hi = int(total[0]) - lo
        weight = np.clip(end, lo, hi)  # small integers: int16 counts keep this pass cheap
        weight -= np.clip(end - c, lo, hi)
        return (weight @ flat[order]) / (hi - lo)
    lo = np.floor(total * 0.25)[:, None]
    hi = total[:, None] - lo
    weight = np.clip(np.minimum(end, hi) - np.maximum(end - c, lo), 0, None)
    return (weight @ flat[order]) / (hi - lo)[:, 0]


COUNT_AGGREGATES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "iqm": iqm_counts, "mean": mean_counts, "median": median_counts, "optimality_gap": optimality_gap_counts}
