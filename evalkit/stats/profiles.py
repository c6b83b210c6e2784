"""Performance profiles (Agarwal et al. 2021; Dolan & More 2002): fraction of runs above tau.

Bootstrap bands from resample counts: each score falls in one bin between consecutive thresholds,
so a resample's fraction above every tau is its draws counted per bin and accumulated from the top
bin down -- exact, with no resample materialised and no comparison per threshold and run. The
compiled kernel (:mod:`evalkit.stats.kernels`) does this draw by draw; :class:`Profile` called on
counts (:mod:`evalkit.stats.resample`) is the numpy reference of the tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.stats import kernels
from evalkit.stats.inputs import as_matrix, check_confidence, check_reps


def profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """(len(taus),) fraction of runs with score > tau, each task weighted equally (rliable's run-score
    distribution: mean over tasks of the per-task fraction)."""
    return (scores[..., None] > taus).mean(axis=-3).mean(axis=-2)


class Profile:
    """Fractions above each of ``taus`` for resample counts (runs * tasks, n) of ``scores``."""

    def __init__(self, scores: np.ndarray, taus: np.ndarray):
        v = np.asarray(scores, float).ravel()  # counts row order: run * tasks + task
        self.size, self.k = v.size, len(taus)
        order_t = np.argsort(taus, kind="stable")
        # bin of a score = how many thresholds lie below it: it is above exactly those
        bins = np.searchsorted(np.asarray(taus, float)[order_t], v, side="left")
        self.rows = np.argsort(bins, kind="stable")
        self.present, self.starts = np.unique(bins[self.rows], return_index=True)
        self.order_t = order_t
        runs, tasks = np.shape(scores)
        self.runs, self.tasks = runs, tasks
        self.bins_t = np.ascontiguousarray(bins.reshape(runs, tasks).T, dtype=np.uint32).ravel()  # task-major

    def __call__(self, c: np.ndarray) -> np.ndarray:
        """(n, len(taus)) fractions above each threshold (in the order the thresholds were given)."""
        n = c.shape[1]
        per_bin = np.zeros((self.k + 1, n))
        per_bin[self.present] = np.add.reduceat(c[self.rows], self.starts, axis=0)
        above = np.cumsum(per_bin[:0:-1], axis=0)[::-1]  # row j: draws in bins > j, above sorted tau j
        out = np.empty((n, self.k))
        out[:, self.order_t] = above.T / self.size
        return out

    def drawn(self, rng: np.random.Generator, reps: int) -> np.ndarray:
        """(reps, len(taus)) fractions of ``reps`` resamples drawn and evaluated by the compiled
        kernel (:mod:`evalkit.stats.kernels`): the same statistic as calling this on counts. A view:
        its transpose (len(taus), reps) is contiguous."""
        out = np.empty((self.k, reps))
        kernels.profile_drawn(rng, self.runs, self.tasks, self.bins_t, self.k, self.order_t, out)
        return out.T

    def given(self, idx: np.ndarray) -> np.ndarray:
        """The same for the resamples with draws ``idx`` (reps, tasks, runs)."""
        flat = np.ascontiguousarray(idx.reshape(idx.shape[0], -1), dtype=np.uint32)
        out = np.empty((self.k, flat.shape[0]))
        kernels.profile_given(flat, self.runs, self.bins_t, self.k, self.order_t, out)
        return out.T


def performance_profile(scores: object, taus: object, reps: int = 2000, confidence: float = 0.95, seed: int = 0,
                        nan_policy: str = "raise") -> pd.DataFrame:
    """Score distribution with a stratified-bootstrap percentile band.

    ``scores``: (runs, tasks); ``taus``: thresholds. Returns a DataFrame (tau, point, low, high).
    """
    a = as_matrix(scores, "scores", nan_policy)
    t = np.asarray(taus, dtype=float).ravel()
    if t.size == 0 or not np.isfinite(t).all():
        raise ValueError("taus: expected a non-empty array of finite thresholds")
    reps, confidence = check_reps(reps), check_confidence(confidence)
    point = profile(a, t)
    boot = Profile(a, t).drawn(np.random.default_rng(seed), reps)
    alpha = (1 - confidence) / 2
    low, high = np.percentile(boot.T, [100 * alpha, 100 * (1 - alpha)], axis=1)
    return pd.DataFrame({"tau": t, "point": point, "low": low, "high": high})
