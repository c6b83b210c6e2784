"""Validation and conversion of inputs: score matrices ``{algorithm: (runs, tasks)}`` or run tables."""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
import pandas as pd

NAN_POLICIES = ("raise", "omit")


def check_confidence(confidence: float, name: str = "confidence") -> float:
    if not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"{name}: expected a number in (0, 1), found {confidence!r}")
    return float(confidence)


def check_reps(reps: int) -> int:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"reps: expected an integer >= 1, found {reps!r}")
    return int(reps)


def as_sample(x: object, name: str = "x", min_size: int = 2, nan_policy: str = "raise") -> np.ndarray:
    """A 1-d float array of finite values with at least ``min_size`` entries."""
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy: expected one of {NAN_POLICIES}, found {nan_policy!r}")
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of run scores, found shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        if nan_policy == "raise":
            raise ValueError(f"{name}: {int(bad.sum())} NaN/inf values (diverged runs?); pass nan_policy='omit' "
                             f"to drop them")
        warnings.warn(f"{name}: dropped {int(bad.sum())} NaN/inf values", stacklevel=3)
        a = a[~bad]
    if a.size < min_size:
        raise ValueError(f"{name}: expected at least {min_size} runs, found {a.size}")
    return a


def as_matrix(x: object, name: str = "scores", nan_policy: str = "raise", min_runs: int = 2) -> np.ndarray:
    """A (runs, tasks) float matrix; a 1-d array is one task."""
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a (runs, tasks) numeric array (ragged or non-numeric input)") from None
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{name}: expected a non-empty (runs, tasks) array, found shape {a.shape}")
    if not np.isfinite(a).all():
        if nan_policy == "raise":
            raise ValueError(f"{name}: NaN/inf scores (diverged runs?); pass nan_policy='omit' to drop those runs")
        keep = np.isfinite(a).all(axis=1)
        warnings.warn(f"{name}: dropped {int((~keep).sum())} runs with NaN/inf scores", stacklevel=3)
        a = a[keep]
    if a.shape[0] < min_runs:
        raise ValueError(f"{name}: expected at least {min_runs} runs, found {a.shape[0]}")
    return a


def as_score_dict(scores: Mapping[str, object] | pd.DataFrame, nan_policy: str = "raise",
                  min_runs: int = 2) -> dict[str, np.ndarray]:
    """``{algorithm: (runs, tasks)}`` from a dict of matrices or a per-run table (see :func:`score_dict`)."""
    if isinstance(scores, pd.DataFrame):
        scores = score_dict(scores)
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores: expected a non-empty {algorithm: (runs, tasks)} dict or a run table")
    out = {str(k): as_matrix(v, f"scores[{k!r}]", nan_policy, min_runs) for k, v in scores.items()}
    tasks = {k: v.shape[1] for k, v in out.items()}
    if len(set(tasks.values())) != 1:
        raise ValueError(f"scores: every algorithm needs the same tasks; numbers of tasks {tasks}")
    return out


def score_dict(table: pd.DataFrame, score: str = "score", task: str = "env", run: str = "seed_index",
               by: str = "algorithm") -> dict[str, np.ndarray]:
    """``{algorithm: (runs, tasks)}`` from a per-run table, tasks in sorted order.

    Raises when an algorithm lacks a task or tasks have unequal numbers of runs.
    """
    for col in (score, task, run, by):
        if col not in table.columns:
            raise ValueError(f"table: expected a column {col!r}, found {list(table.columns)}")
    tasks = sorted(table[task].unique())
    out = {}
    for name, g in table.groupby(by, sort=True):
        counts = g.groupby(task).size().reindex(tasks)
        if counts.isna().any():
            raise ValueError(f"table: {name!r} has no runs in {[t for t, c in counts.items() if pd.isna(c)]}")
        if counts.nunique() != 1:
            raise ValueError(f"table: {name!r} has unequal runs per task {counts.to_dict()}")
        pivot = g.pivot_table(index=run, columns=task, values=score, aggfunc="first", dropna=False)
        out[str(name)] = pivot[tasks].to_numpy(float)
    return out
