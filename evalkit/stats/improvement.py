"""Probability of improvement P(X > Y) (Agarwal et al. 2021), per task by the Mann-Whitney statistic.

Bootstrap replicates are exact rank sums over resample counts: with y's runs sorted within each
task and ``E`` the running total of y's counts in that order, a resample's Mann-Whitney count of
task t is ``sum_i cx_i (E[#y < x_i] + E[#y <= x_i]) / 2`` -- ties count one half, as in
``scipy.stats.mannwhitneyu`` -- so no resample is materialised and no pair of runs is compared per
resample. The compiled kernels (:mod:`evalkit.stats.kernels`) draw and count each algorithm's
resamples once per replicate and evaluate every pair from them; :class:`_Below` with
:func:`_replicates` is the numpy reference of the tests.
"""

from __future__ import annotations

from itertools import permutations
from typing import Mapping

import numpy as np

from evalkit.stats import kernels
from evalkit.stats.bootstrap import algorithm_rng, interval
from evalkit.stats.inputs import as_matrix, as_score_dict, check_confidence, check_reps
from evalkit.stats.results import Estimate


def _poi_tasks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(..., tasks): P(X > Y) + 1/2 P(X = Y) over all run pairs, per task (x: (..., n, tasks))."""
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return gt + 0.5 * eq


def _below(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For x's and y's runs sorted within each task (columns), how many of y's runs lie below each
    of x's, and at most at it: two (runs_x, tasks) arrays, from one stable sort per task of the
    stacked runs (x first: an x ahead of the ys equal to it; y first: behind them) -- the k-th x
    sits at merged position k + (count of ys before it)."""
    k = np.arange(xs.shape[0])[:, None]
    counts = []
    for stacked, first in ((np.vstack([xs, ys]), 0), (np.vstack([ys, xs]), ys.shape[0])):
        where = np.empty(stacked.shape, np.int64)
        np.put_along_axis(where, np.argsort(stacked, axis=0, kind="stable"),
                          np.arange(stacked.shape[0])[:, None], axis=0)
        counts.append(where[first:first + xs.shape[0]] - k)
    return counts[0], counts[1]


def _poi_point(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over tasks of :func:`_poi_tasks` by ranks (:func:`_below`): O(n log n) rather than a
    runs_x x runs_y table per task."""
    lt, le = _below(np.sort(x, axis=0), np.sort(y, axis=0))
    return int(lt.sum() + le.sum()) / (2 * x.shape[0] * y.shape[0] * x.shape[1])


class _Below:
    """One algorithm as the Y side: its runs sorted within each task, and for resample counts
    (runs * tasks, n) the running totals ``E`` ((runs + 1) * tasks, n; row ``k * tasks + t`` = how
    many draws of task t fall among its k smallest runs)."""

    def __init__(self, y: np.ndarray):
        self.runs, self.tasks = y.shape
        self.perm = np.argsort(y, axis=0, kind="stable")  # (runs, tasks)
        self.sorted = np.take_along_axis(y, self.perm, axis=0)
        self.rows = (self.perm * self.tasks + np.arange(self.tasks)).ravel()  # counts rows in sorted order

    def totals(self, c: np.ndarray) -> np.ndarray:
        n = c.shape[1]
        e = np.zeros(((self.runs + 1) * self.tasks, n))
        np.cumsum(c[self.rows].reshape(self.runs, self.tasks, n), axis=0,
                  out=e[self.tasks:].reshape(self.runs, self.tasks, n))
        return e

    def rows_for(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``E`` at x's runs: (#y < x) and (#y <= x), per (run of x, task), flattened."""
        t = np.arange(self.tasks)
        lt = np.stack([np.searchsorted(self.sorted[:, j], x[:, j], side="left") for j in t], axis=1)
        le = np.stack([np.searchsorted(self.sorted[:, j], x[:, j], side="right") for j in t], axis=1)
        return (lt * self.tasks + t).ravel(), (le * self.tasks + t).ravel()


def _replicates(cx: np.ndarray, e: np.ndarray, rows: tuple[np.ndarray, np.ndarray], norm: float) -> np.ndarray:
    """(n,) P(X > Y) of each resample: x's counts against y's running totals."""
    return (np.einsum("pn,pn->n", cx, e[rows[0]]) + np.einsum("pn,pn->n", cx, e[rows[1]])) * (0.5 / norm)


def _estimate(point: float, boot: np.ndarray, confidence: float, n: int, reps: int) -> Estimate:
    lo, hi = interval(point, boot, confidence, "percentile")
    return Estimate(point, lo, hi, "stratified bootstrap, percentile", confidence, n, reps, "P(X > Y)")


def fused_replicates(mats: list, pairs: list, reps: int, rngs: list | None = None,
                     idx: list | None = None) -> np.ndarray:
    """(len(pairs), reps) bootstrap replicates of P(X > Y) by the compiled kernels.

    ``mats``: (runs, tasks) score matrices on the same tasks; ``pairs``: (x, y) positions in
    ``mats``; matrix a is resampled from ``rngs[a]`` (or, to test, taken from given draws ``idx[a]``:
    (reps, tasks, runs) run indices), once per replicate for all the pairs it is in. The kernel
    draws ranks within each task (the k-th smallest run), which resamples the runs alike.
    Matrices in no pair draw nothing.
    """
    used = {a for p in pairs for a in p}
    tasks = mats[0].shape[1]
    widest = max((mats[x].shape[0] * mats[y].shape[0] * tasks for x, y in pairs), default=0)
    if widest >= 2**31:
        raise ValueError(f"scores: runs x runs x tasks of a pair must stay below 2**31 (32-bit rank sums), "
                         f"found {widest:,}")
    cells = [m.size if a in used else 0 for a, m in enumerate(mats)]
    slots = [(m.shape[0] + 1) * tasks if a in used else 0 for a, m in enumerate(mats)]
    ox, oe = np.r_[0, np.cumsum(cells)].astype(np.int64), np.r_[0, np.cumsum(slots)].astype(np.int64)
    lt, le, tied, tied_start, row_start, norm = [], [], [], [0], [0], []
    for xa, ya in pairs:
        xs, ys = np.sort(mats[xa], axis=0), np.sort(mats[ya], axis=0)
        base = np.arange(tasks)[:, None] * (ys.shape[0] + 1) + oe[ya]
        # slot (t, 0) of x holds no draws (h = 0): any valid position will do
        lo, hi = np.zeros((tasks, xs.shape[0] + 1), np.int64), np.zeros((tasks, xs.shape[0] + 1), np.int64)
        below, at_most = _below(xs, ys)
        lo[:, 1:], hi[:, 1:] = below.T + base, at_most.T + base
        lt.append(lo.ravel())
        le.append(hi.ravel())
        tied.append(np.flatnonzero(hi.ravel() != lo.ravel()))
        tied_start.append(tied_start[-1] + tied[-1].size)
        row_start.append(row_start[-1] + lo.size)
        norm.append(float(xs.shape[0] * ys.shape[0] * tasks))
    as_int = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    # positions as unsigned integers: the compiled gathers then skip numba's negative-index check
    wide = np.uint64 if oe[-1] >= 2**32 else np.uint32
    tables = (np.array([oe[p[0]] for p in pairs], np.int64), np.array(row_start, np.int64),
              as_int(lt).astype(wide), as_int(le).astype(wide), as_int(tied), np.array(tied_start, np.int64),
              np.array(norm))
    runs = np.array([m.shape[0] for m in mats], np.int64)
    out = np.empty((len(pairs), reps))
    if idx is None:
        kernels.poi_drawn(tuple(rngs), runs, tasks, ox, oe, *tables, out)
        return out
    ranks = []
    for a in sorted(used):  # run indices to ranks within the task
        rank = np.empty(mats[a].shape, np.int64)
        np.put_along_axis(rank, np.argsort(mats[a], axis=0, kind="stable"), np.arange(runs[a])[:, None], axis=0)
        ranks.append(rank.T[np.arange(tasks)[None, :, None], np.asarray(idx[a])].reshape(reps, -1))
    flat = np.ascontiguousarray(np.concatenate(ranks, axis=1), dtype=np.uint32)
    kernels.poi_given(flat, runs, tasks, ox, oe, *tables, out)
    return out


def probability_of_improvement(x: object, y: object, reps: int = 2000, confidence: float = 0.95,
                               seed: int = 0, nan_policy: str = "raise") -> Estimate:
    """P(X > Y) + 1/2 P(X = Y) averaged over tasks, with a stratified-bootstrap percentile CI.

    ``x``: (runs_x, tasks), ``y``: (runs_y, tasks) scores of two algorithms on the same tasks.
    Runs of x and of y are resampled independently within each task (this ignores any pairing by
    shared seeds: valid and conservative). Equals rliable's ``probability_of_improvement`` and the
    mean over tasks of ``scipy.stats.mannwhitneyu(x, y).statistic / (n_x n_y)``.
    """
    a, b = as_matrix(x, "x", nan_policy), as_matrix(y, "y", nan_policy)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"y: expected the same number of tasks as x ({a.shape[1]}), found {b.shape[1]}")
    reps, confidence = check_reps(reps), check_confidence(confidence)
    point = _poi_point(a, b)
    # x and y from two streams spawned from the seed, so each resample's draws are fixed by the seed
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]
    boot = fused_replicates([a, b], [(0, 1)], reps, rngs)[0]
    return _estimate(point, boot, confidence, min(a.shape[0], b.shape[0]), reps)


def improvement_pairs(scores_dict: Mapping[str, object], pairs=None, reps: int = 2000, confidence: float = 0.95,
                      seed: int = 0, nan_policy: str = "raise") -> dict:
    """P(X > Y) with a percentile CI for many pairs at once: ``{(x, y): Estimate}``.

    ``pairs``: (x, y) names; default every ordered pair. Each algorithm is resampled once per
    bootstrap replicate, from its own stream (:func:`evalkit.stats.bootstrap.algorithm_rng`: derived
    from ``seed`` and its name), and that resample serves every pair it is in: each pair's
    replicates are exactly those of independent stratified resamples of x and of y, as in
    :func:`probability_of_improvement`; across pairs they share resamples.
    """
    scores = as_score_dict(scores_dict, nan_policy=nan_policy)
    reps, confidence = check_reps(reps), check_confidence(confidence)
    pairs = list(permutations(sorted(scores), 2)) if pairs is None else [tuple(p) for p in pairs]
    for p in pairs:
        unknown = [a for a in p if a not in scores]
        if len(p) != 2 or unknown:
            raise ValueError(f"pairs: expected (x, y) names of algorithms in the scores, found {p!r}")
    used = sorted({a for p in pairs for a in p})
    where = {a: i for i, a in enumerate(used)}
    rows = fused_replicates([scores[a] for a in used], [(where[x], where[y]) for x, y in pairs], reps,
                            [algorithm_rng(seed, a) for a in used])
    boot = dict(zip(pairs, rows))
    return {p: _estimate(_poi_point(scores[p[0]], scores[p[1]]), boot[p], confidence,
                         min(scores[p[0]].shape[0], scores[p[1]].shape[0]), reps) for p in pairs}
