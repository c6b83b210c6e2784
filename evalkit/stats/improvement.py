"""Probability of improvement P(X > Y) (Agarwal et al. 2021), per task by the Mann-Whitney statistic."""

from __future__ import annotations

import numpy as np

from evalkit.stats.bootstrap import interval
from evalkit.stats.inputs import as_matrix, check_confidence, check_reps
from evalkit.stats.results import Estimate


def _poi_tasks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(..., tasks): P(X > Y) + 1/2 P(X = Y) over all run pairs, per task (x: (..., n, tasks))."""
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return gt + 0.5 * eq


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
    boot = np.empty(reps)
    cols = np.arange(a.shape[1])[None, None, :]
    chunk = max(1, 2_000_000 // (a.shape[0] * b.shape[0] * a.shape[1]))
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        ra = a[rng.integers(0, a.shape[0], size=(n, a.shape[0], a.shape[1])), cols]
        rb = b[rng.integers(0, b.shape[0], size=(n, b.shape[0], b.shape[1])), cols]
        boot[start:start + n] = _poi_tasks(ra, rb).mean(axis=-1)
    lo, hi = interval(point, boot, confidence, "percentile")
    return Estimate(point, lo, hi, "stratified bootstrap, percentile", confidence, min(a.shape[0], b.shape[0]),
                    reps, "P(X > Y)")
