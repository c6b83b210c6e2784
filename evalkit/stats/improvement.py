"""Probability of improvement P(X > Y) (Agarwal et al. 2021), per task by the Mann-Whitney statistic.

Bootstrap replicates are exact rank sums over resample counts (:mod:`evalkit.stats.resample`):
with y's runs sorted within each task and ``E`` the running total of y's counts in that order,
a resample's Mann-Whitney count of task t is ``sum_i cx_i (E[#y < x_i] + E[#y <= x_i]) / 2`` --
ties count one half, as in ``scipy.stats.mannwhitneyu`` -- so no resample is materialised and
no pair of runs is compared per resample.
"""

from __future__ import annotations

from itertools import permutations
from typing import Mapping

import numpy as np

from evalkit.stats import resample
from evalkit.stats.bootstrap import algorithm_rng, interval
from evalkit.stats.inputs import as_matrix, as_score_dict, check_confidence, check_reps
from evalkit.stats.results import Estimate


def _poi_tasks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(..., tasks): P(X > Y) + 1/2 P(X = Y) over all run pairs, per task (x: (..., n, tasks))."""
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return gt + 0.5 * eq


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
    rng = np.random.default_rng(seed)
    point = float(_poi_tasks(a, b).mean())
    below = _Below(b)
    rows = below.rows_for(a)
    norm = a.shape[0] * b.shape[0] * a.shape[1]
    boot = np.empty(reps)
    step = max(1, resample.CHUNK_COUNTS // max(a.size, b.size))
    for start in range(0, reps, step):
        n = min(step, reps - start)
        cx = resample.counts(resample.draw(rng, a.shape[0], a.shape[1], n), a.shape[0])
        cy = resample.counts(resample.draw(rng, b.shape[0], b.shape[1], n), b.shape[0])
        boot[start:start + n] = _replicates(cx, below.totals(cy), rows, norm)
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
    below = {a: _Below(scores[a]) for a in {p[1] for p in pairs}}
    rows = {p: below[p[1]].rows_for(scores[p[0]]) for p in pairs}
    rngs = {a: algorithm_rng(seed, a) for a in used}
    boot = {p: np.empty(reps) for p in pairs}
    step = max(1, resample.CHUNK_COUNTS // max(scores[a].size for a in used))
    for start in range(0, reps, step):
        n = min(step, reps - start)
        c = {a: resample.counts(resample.draw(rngs[a], *scores[a].shape, n), scores[a].shape[0]) for a in used}
        e = {a: below[a].totals(c[a]) for a in below}
        for p in pairs:
            x, y = scores[p[0]], scores[p[1]]
            boot[p][start:start + n] = _replicates(c[p[0]], e[p[1]], rows[p], x.shape[0] * y.shape[0] * x.shape[1])
    return {p: _estimate(float(_poi_tasks(scores[p[0]], scores[p[1]]).mean()), boot[p], confidence,
                         min(scores[p[0]].shape[0], scores[p[1]].shape[0]), reps) for p in pairs}
