"""Score normalizations for comparing across environments (never pool raw returns of different envs).

* Min-max to declared references (``[envs.X] reference = { low, high }`` in a study: e.g. the random
  agent's and a target score): ``(x - low) / (high - low)``.
* CDF normalization: a score's position in a reference distribution of run scores. Two tie rules:
  ``tie="leq"`` is P(X <= x), as in Jordan et al. (2020)'s performance-percentile normalization;
  ``tie="strict"`` is the fraction strictly below x, as in the CHS of Patterson et al. (2024).
"""

from __future__ import annotations

import numpy as np

TIES = ("leq", "strict")


def min_max_normalize(scores: object, low: object, high: object) -> np.ndarray:
    """(runs, tasks) scores scaled per task to ``(x - low) / (high - low)`` (low, high per task)."""
    x = np.asarray(scores, dtype=float)
    lo, hi = np.broadcast_to(np.asarray(low, float), x.shape[-1:]), np.broadcast_to(np.asarray(high, float), x.shape[-1:])
    if not np.all(hi > lo):
        raise ValueError(f"high: expected every high > low, found low={lo.tolist()}, high={hi.tolist()}")
    return (x - lo) / (hi - lo)


def cdf_normalize(values: object, reference: object, tie: str = "leq") -> np.ndarray:
    """Each value's empirical CDF position in ``reference`` (a 1-d sample of run scores)."""
    if tie not in TIES:
        raise ValueError(f"tie: expected one of {TIES}, found {tie!r}")
    ref = np.sort(np.asarray(reference, dtype=float).ravel())
    if ref.size == 0 or not np.isfinite(ref).all():
        raise ValueError("reference: expected a non-empty sample of finite scores")
    v = np.asarray(values, dtype=float)
    side = "right" if tie == "leq" else "left"
    return np.searchsorted(ref, v, side=side) / ref.size
