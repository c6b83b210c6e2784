"""Performance profiles (Agarwal et al. 2021; Dolan & More 2002): fraction of runs above tau."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.stats.bootstrap import interval
from evalkit.stats.inputs import as_matrix, check_confidence, check_reps


def profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """(len(taus),) fraction of runs with score > tau, each task weighted equally (rliable's run-score
    distribution: mean over tasks of the per-task fraction)."""
    return (scores[..., None] > taus).mean(axis=-3).mean(axis=-2)


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
    rng = np.random.default_rng(seed)
    point = profile(a, t)
    cols = np.arange(a.shape[1])[None, None, :]
    chunk = max(1, 4_000_000 // (a.size * t.size))
    boot = []
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        boot.append(profile(a[rng.integers(0, a.shape[0], size=(n,) + a.shape), cols], t))
    boot = np.concatenate(boot)
    bands = np.array([interval(p, boot[:, i], confidence, "percentile") for i, p in enumerate(point)])
    return pd.DataFrame({"tau": t, "point": point, "low": bands[:, 0], "high": bands[:, 1]})
