"""Exact statistics of many stratified bootstrap resamples at once, from resample counts.

A stratified resample of a (runs, tasks) score matrix is fully described by its *counts*: how often
each run of each task was drawn. Every statistic evalkit bootstraps is a function of the counts
(Agarwal et al. 2021 define them on the resampled matrix; the count form is the same number):

* per-task sums, the mean and the optimality gap are linear in the counts: one matrix product
  ``counts @ W`` for a chunk of resamples;
* the IQM (25% trimmed mean, as ``scipy.stats.trim_mean``) is ``(L(hi) - L(lo)) / (hi - lo)``
  where ``L(k)`` is the sum of the ``k`` smallest values of the resample. Over the globally sorted
  scores, ``L(k)`` needs the counts only up to the position where their running total crosses
  ``k``. That position lies within a few standard deviations (at most ``sqrt(N) / 2``) of ``k``,
  so ``L(k)`` is the count-weighted sum below a window (two more columns of the same product)
  plus a running total inside the window. A resample whose cut falls outside its window -- about
  1 in 2,000 -- is redone over all positions, so the result is exact for every resample.
  No resample is sorted;
* probability of improvement (Mann-Whitney) is a rank sum: a running total of one algorithm's
  counts over its sorted scores, read at the other's scores (:mod:`evalkit.stats.improvement`);
* the performance profile (fraction of runs above tau) is a count-weighted fraction: counts
  summed over the thresholds' bins, then a running total from the top (:mod:`evalkit.stats.profiles`).

Counts come from the drawn indices (``(n, tasks, runs)`` small integers, the draws themselves being
the only random step): by comparisons for few runs per task (``runs <= 10``: ``runs`` passes of a
SIMD compare over bytes) and by one ``np.bincount`` otherwise.

This numpy path needs a separate trip through memory per step, which costs several times the draws
themselves. The bootstrap therefore runs the same statistics through compiled kernels that draw,
count and evaluate one resample at a time (:class:`FusedAggregates`, :mod:`evalkit.stats.kernels`);
:class:`Aggregates` on :func:`counts` stays as their reference in the tests.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import threadpoolctl

from evalkit.stats import kernels

SMALL_RUNS = 10  # up to this many runs per task counts come from comparisons, beyond from bincount
CHUNK_COUNTS = 2**18  # counts per chunk: 2 MB of float64, so the passes over them stay in cache
DRAW_BUDGET = 2**25  # indices drawn at once at most (64 MB of 16-bit draws)


_BLAS = None


@contextlib.contextmanager
def one_blas_thread():
    """Run the count products on one BLAS thread: they are small (a handful of columns), and
    OpenBLAS's threads cost more in start-up and contention than they save (several times the
    single-thread time on a busy machine)."""
    global _BLAS
    if _BLAS is None:
        _BLAS = threadpoolctl.ThreadpoolController()  # finds the BLAS numpy and scipy loaded (15 ms, once)
    with _BLAS.limit(limits=1, user_api="blas"):
        yield


def index_dtype(runs: int, tasks: int):
    """Integer type of the draws: bytes for the compare path, else 16 bits (numpy draws bounded
    16-bit integers faster than bounded bytes for most ranges above 16, e.g. 8 vs 2 ns at 100)."""
    if runs <= SMALL_RUNS:
        return np.uint8
    return np.uint16 if runs <= 2**16 else np.intp


def draw(rng: np.random.Generator, runs: int, tasks: int, n: int) -> np.ndarray:
    """(n, tasks, runs) stratified draws: run indices, uniform within each task."""
    return rng.integers(0, runs, size=(n, tasks, runs), dtype=index_dtype(runs, tasks))


def counts(idx: np.ndarray, runs: int) -> np.ndarray:
    """(runs * tasks, n) float64 counts of the draws ``idx`` (n, tasks, runs).

    Row ``run * tasks + task`` (the order of ``scores.ravel()`` for a (runs, tasks) matrix) holds
    how often that run of that task is drawn in each of the n resamples; resamples along the rows
    make every later step a pass over whole rows (vectorised across resamples).
    """
    n, tasks, _ = idx.shape
    if runs <= SMALL_RUNS:
        # runs x runs byte compares over contiguous (tasks, n) slabs, SIMD across resamples
        d = np.ascontiguousarray(idx.transpose(2, 1, 0))  # [draw, task, resample]
        c = np.zeros((runs, tasks, n), np.uint8)
        hit = np.empty((tasks, n), bool)
        for k in range(runs):
            dk = d[k]
            for j in range(runs):
                np.equal(dk, j, out=hit)
                np.add(c[j], hit.view(np.uint8), out=c[j])  # uint8 + uint8: no bool cast loop
        return c.reshape(runs * tasks, n).astype(float)
    key = idx.astype(np.intp)
    key *= tasks * n
    key += np.arange(n, dtype=np.intp)[:, None, None] + (np.arange(tasks, dtype=np.intp) * n)[None, :, None]
    return np.bincount(key.ravel(), minlength=n * tasks * runs).reshape(runs * tasks, n).astype(float)


class Aggregates:
    """The four aggregates of resamples of one (runs, tasks) matrix, from their counts.

    ``names``: a subset of ("iqm", "mean", "median", "optimality_gap"); ``gamma``: the optimality
    gap's threshold; ``window_sds``: half-width of the IQM's cut windows in standard deviations of
    the count below the cut (any value gives the same numbers; 0 sends every resample through the
    full pass). Calling it maps counts (runs * tasks, n) to (len(names), n).
    """

    def __init__(self, scores: np.ndarray, names: tuple[str, ...], gamma: float = 1.0, window_sds: float = 3.5):
        self.runs, self.tasks = scores.shape
        self.names, self.gamma = tuple(names), gamma
        self.v = np.asarray(scores, float).ravel()
        N = self.v.size
        self.order = np.argsort(self.v, kind="stable")
        self.sorted = self.v[self.order]
        cols = [self.v]  # the total (mean; IQM's upper sum)
        if "optimality_gap" in names:
            cols.append(np.minimum(self.v, gamma))
        self.lo = int(0.25 * N)
        self.hi = N - self.lo
        self.cuts = []
        if "iqm" in names and self.lo > 0:
            pos = np.empty(N, np.intp)
            pos[self.order] = np.arange(N)
            for k in (self.lo, self.hi):
                # the count of a resample below sorted position k is a sum over tasks of binomials
                # (R draws, success m_t / R, m_t = the task's runs below k); a window of 3.5 of its
                # standard deviations either side holds the cut in all but ~1 in 2,000 resamples
                m = (pos < k).reshape(self.runs, self.tasks).sum(axis=0)
                sd = math.sqrt(float(np.sum(m * (1 - m / self.runs))))
                half = int(math.ceil(window_sds * sd)) + 2
                a, b = max(0, k - half), min(N, k + half)
                below = (pos < a).astype(float)
                cols += [self.v * below, below]
                self.cuts.append((k, a, b))
        self.W = np.ascontiguousarray(np.vstack(cols))

    def __call__(self, c: np.ndarray) -> np.ndarray:
        """(len(names), n) aggregates of the resamples with counts ``c`` (runs * tasks, n)."""
        n = c.shape[1]
        R, T = self.runs, self.tasks
        with one_blas_thread():
            y = self.W @ c
        out = np.empty((len(self.names), n))
        for i, name in enumerate(self.names):
            if name == "mean":
                out[i] = y[0] / (R * T)
            elif name == "median":
                # per-task sums without a block matrix: one multiply-add pass over the counts
                task = np.einsum("rtn,rt->tn", c.reshape(R, T, n), self.v.reshape(R, T))
                srt = np.sort(task.T, axis=1)  # a few dozen task sums: a SIMD sort beats np.median
                out[i] = 0.5 * (srt[:, (T - 1) // 2] + srt[:, T // 2]) / R
            elif name == "optimality_gap":
                out[i] = self.gamma - y[1] / (R * T)
            elif name == "iqm":
                out[i] = self._iqm(c, y[-4:], y[0])
            else:
                raise ValueError(f"aggregate: expected one of iqm, mean, median, optimality_gap, found {name!r}")
        return out

    def _smallest_sum(self, c: np.ndarray, below_sum: np.ndarray, below_count: np.ndarray, k: int, a: int,
                      b: int) -> np.ndarray:
        """Sum of the ``k`` smallest values of each resample; exact (resamples whose cut misses the
        window [a, b) of sorted positions are redone over all positions)."""
        end = np.cumsum(c[self.order[a:b]], axis=0)  # running count at the end of each window position
        end += below_count
        weight = np.minimum(end, k)
        weight[1:] -= weight[:-1].copy()
        weight[0] -= np.minimum(below_count, k)
        out = below_sum + self.sorted[a:b] @ weight
        bad = np.flatnonzero((below_count > k) | (end[-1] < k))
        if bad.size:
            full = np.minimum(np.cumsum(c[:, bad][self.order], axis=0), k)
            full[1:] -= full[:-1].copy()
            out[bad] = self.sorted @ full
        return out

    def _iqm(self, c: np.ndarray, y: np.ndarray, total: np.ndarray) -> np.ndarray:
        if self.lo == 0:
            return total / (self.runs * self.tasks)
        (klo, alo, blo), (khi, ahi, bhi) = self.cuts
        low = self._smallest_sum(c, y[0], y[1], klo, alo, blo)
        high = self._smallest_sum(c, y[2], y[3], khi, ahi, bhi)
        return (high - low) / (self.hi - self.lo)


AGGREGATE_NAMES = ("iqm", "mean", "median", "optimality_gap")


class FusedAggregates:
    """The aggregates ``names`` of resamples of one (runs, tasks) matrix by the compiled kernel
    (:mod:`evalkit.stats.kernels`): the same statistics as :class:`Aggregates`, drawn, counted and
    evaluated resample by resample, with no count matrix."""

    def __init__(self, scores: np.ndarray, names: tuple[str, ...], gamma: float = 1.0):
        for name in names:
            if name not in AGGREGATE_NAMES:
                raise ValueError(f"aggregate: expected one of {', '.join(AGGREGATE_NAMES)}, found {name!r}")
        self.runs, self.tasks = scores.shape
        self.vt = np.ascontiguousarray(np.asarray(scores, float).T).ravel()  # task-major: t * runs + run
        order = np.argsort(self.vt, kind="stable")
        self.sv = self.vt[order]
        self.sg = np.minimum(self.sv, gamma)
        self.pos = np.empty(self.vt.size, np.uint32 if self.vt.size < 2**32 else np.uint64)
        self.pos[order] = np.arange(self.vt.size)
        self.lo = int(0.25 * self.vt.size)
        self.hi = self.vt.size - self.lo
        self.rows = np.array([names.index(a) if a in names else -1 for a in AGGREGATE_NAMES], np.int64)
        self.gamma, self.n = float(gamma), len(names)

    def _args(self):
        return (self.runs, self.tasks, self.pos, self.vt, self.sv, self.sg, self.lo, self.hi, self.rows, self.gamma)

    def drawn(self, rng: np.random.Generator, reps: int) -> np.ndarray:
        """(len(names), reps) aggregates of ``reps`` resamples drawn from ``rng``."""
        out = np.empty((self.n, reps))
        kernels.aggregates_drawn(rng, *self._args(), out)
        return out

    def given(self, idx: np.ndarray) -> np.ndarray:
        """The same for the resamples with draws ``idx`` (reps, tasks, runs) (as :func:`draw`)."""
        flat = np.ascontiguousarray(idx.reshape(idx.shape[0], -1), dtype=np.uint32)
        out = np.empty((self.n, flat.shape[0]))
        kernels.aggregates_given(flat, *self._args(), out)
        return out
