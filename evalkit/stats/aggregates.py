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


def _task_means(counts: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(reps, tasks) per-task means of each resample: one product with a block matrix B,
    ``B[task * runs + run, task] = scores[run, task]``."""
    runs, tasks = scores.shape
    block = np.zeros((runs * tasks, tasks))
    rows, cols = np.arange(runs * tasks), np.repeat(np.arange(tasks), runs)
    block[rows, cols] = _flat(scores)
    sums = counts @ block
    if np.all(counts.sum(axis=1, dtype=np.int64) == runs * tasks):
        return sums / runs  # stratified: every task keeps its number of runs
    ones = np.zeros_like(block)
    ones[rows, cols] = 1.0
    return sums / (counts @ ones)


def mean_counts(counts: np.ndarray, scores: np.ndarray) -> np.ndarray:
    runs, tasks = scores.shape
    total = counts.sum(axis=1, dtype=np.int64)
    if np.all(total == runs * tasks):  # stratified: every task keeps its number of runs
        return (counts @ _flat(scores)) / (runs * tasks)
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


# ---------------------------------------------------------------- leave-one-out (BCa jackknife)


def jackknife(scores: np.ndarray, name: str, gamma: float = 1.0) -> np.ndarray:
    """(runs * tasks,) aggregate ``name`` with one run of one task left out, entry ``task * runs + run``.

    The stratified jackknife of BCa's acceleration (Efron 1987), in closed form in O(N log N) for
    N = runs * tasks scores: the left-out task keeps ``runs - 1`` runs; the IQM trims the pooled
    ``N - 1`` scores (``scipy.stats.trim_mean`` on them); the optimality gap is over the pooled
    ``N - 1`` scores (as the count form of :data:`COUNT_AGGREGATES` defines it for unequal tasks).
    """
    x = np.asarray(scores, float)
    runs, tasks = x.shape
    v = _flat(x)
    N = v.size
    task = np.repeat(np.arange(tasks), runs)
    if name == "optimality_gap":
        clipped = np.minimum(v, gamma)
        return gamma - (clipped.sum() - clipped) / (N - 1)
    if name == "iqm":
        order = np.argsort(v, kind="stable")
        pos = np.empty(N, np.intp)
        pos[order] = np.arange(N)
        prefix = np.r_[0.0, np.cumsum(v[order])]
        lo = int(0.25 * (N - 1))
        hi = N - 1 - lo
        p = np.clip(pos, lo, hi)
        # positions [lo, hi) of the N - 1 remaining sorted values: those of the full sorted order
        # before the removed one, then the ones after it shifted down by one
        kept = (prefix[p] - prefix[lo]) + (prefix[hi + 1] - prefix[p + 1])
        return kept / (hi - lo)
    sums = x.sum(axis=0)
    means = sums / runs
    left = (sums[task] - v) / (runs - 1)  # the left-out task's mean without the run
    if name == "mean":
        return (means.sum() - means[task] + left) / tasks
    if name == "median":
        # median of the task means with one replaced: order statistics of a sorted array with one
        # element swapped, found by counting (ties give equal values, whichever copy is taken)
        srt = np.sort(means)
        removed = np.searchsorted(srt, means[task], side="left")  # a copy of the replaced value
        # rest = srt without index `removed` (T - 1 values); `left` goes in at `below` = #(rest < left)
        below = np.searchsorted(srt, left, side="left") - (means[task] < left)

        def rest(i: int) -> np.ndarray:
            return np.where(i < removed, srt[min(max(i, 0), tasks - 1)], srt[min(max(i + 1, 0), tasks - 1)])

        def order_stat(k: int) -> np.ndarray:  # k-th smallest of rest with `left` inserted
            return np.where(k < below, rest(k), np.where(k == below, left, rest(k - 1)))

        return 0.5 * (order_stat((tasks - 1) // 2) + order_stat(tasks // 2))
    raise ValueError(f"aggregate: expected one of {list(AGGREGATES)}, found {name!r}")


# ---------------------------------------------------------------- on index draws


def resample_aggregates(scores: np.ndarray, idx: np.ndarray, names: tuple[str, ...],
                        gamma: float = 1.0) -> np.ndarray:
    """(len(names), reps) aggregates of the stratified resamples drawn by ``idx``.

    ``scores``: (runs, tasks); ``idx``: (reps, tasks, runs) integer positions into the flattened
    scores (column order ``task * runs + run``, as :func:`_flat`), each task's draws within that task.
    The IQM sorts each resample's *global ranks* (16-bit integers, which numpy sorts with SIMD far
    faster than a float ``np.partition``), then averages the middle positions ``[lo, hi)`` with
    ``lo = int(0.25 N)``, ``hi = N - lo`` exactly as ``scipy.stats.trim_mean`` does.
    """
    runs, tasks = scores.shape
    reps = idx.shape[0]
    flat = _flat(scores)
    out = np.empty((len(names), reps))
    values = np.take(flat, idx) if {"mean", "median", "optimality_gap"} & set(names) else None
    task_means = None
    if {"mean", "median"} & set(names):
        # einsum, not ``@``: a BLAS product here spawns OpenBLAS threads that double CPU time
        task_means = np.einsum("ktr->kt", values) / runs
    for i, name in enumerate(names):
        if name == "mean":
            out[i] = task_means.mean(axis=1)
        elif name == "median":
            # a SIMD sort of a few dozen task means beats np.median's partition here
            srt = np.sort(task_means, axis=1)
            out[i] = 0.5 * (srt[:, (tasks - 1) // 2] + srt[:, tasks // 2])
        elif name == "optimality_gap":
            out[i] = gamma - np.minimum(values, gamma).reshape(reps, -1).mean(axis=1)
        elif name == "iqm":
            out[i] = _iqm_by_ranks(flat, idx.reshape(reps, -1))
        else:
            raise ValueError(f"aggregate: expected one of {list(AGGREGATES)}, found {name!r}")
    return out


def _iqm_by_ranks(flat: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """25% trimmed mean of each resample ``flat[idx[k]]`` (idx: (reps, N))."""
    n = idx.shape[1]
    order = np.argsort(flat, kind="stable")
    rank_dtype = np.uint16 if flat.size < 2**16 else np.intp
    rank = np.empty(flat.size, dtype=rank_dtype)
    rank[order] = np.arange(flat.size, dtype=rank_dtype)
    lo = int(0.25 * n)
    hi = n - lo
    ranks = np.sort(np.take(rank, idx), axis=1)
    return np.take(flat[order], ranks[:, lo:hi]).mean(axis=1)
