"""An independent, loop-by-loop transcription of the formulas of google-research/rl-reliability-metrics
(metrics/metric_utils.py, metrics_online.py, metrics_offline.py, analysis/stats.py), written from
their definitions for the oracle tests and the benchmark's peer. Curves are (2, k) arrays:
row 0 the time points (env steps), row 1 the values, as in the reference code.

Nothing here is used by evalkit itself.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import scipy.stats


def ref_differences(curve: np.ndarray) -> np.ndarray:
    """delta value / delta time, stamped at the later time point."""
    t, y = curve
    return np.array([t[1:], np.diff(y) / np.diff(t)])


def ref_drawdown(y: np.ndarray) -> np.ndarray:
    out = np.empty(len(y))
    peak = -np.inf
    for i, v in enumerate(y):
        peak = max(peak, v)
        out[i] = peak - v
    return out


def ref_cvar(values: np.ndarray, tail: str, alpha: float) -> float:
    if tail == "lower":
        cut = scipy.stats.scoreatpercentile(values, 100 * alpha)
        return float(np.mean([v for v in values if v <= cut]))
    cut = scipy.stats.scoreatpercentile(values, 100 * (1 - alpha))
    return float(np.mean([v for v in values if v >= cut]))


def ref_window_fn(curve: np.ndarray, eval_points, fn, window_size: float) -> np.ndarray:
    """fn over the values with time in [e - window_size + 1, e] for each eval point e."""
    t, y = curve
    out = []
    for e in eval_points:
        sel = [i for i in range(len(t)) if e - window_size + 1 <= t[i] <= e]
        out.append(fn(y[sel]) if sel else np.nan)
    return np.array(out)


def ref_iqr_within_runs(curve: np.ndarray, eval_points, window_size: float, min_count: int = 1) -> float:
    """IqrWithinRuns on one curve, collapsed by the median over eval points (stats.load_metric_results).
    ``min_count``: windows with fewer differences are skipped (evalkit's rule; the reference raises on
    empty windows)."""
    d = ref_differences(curve)
    vals = ref_window_fn(d, eval_points, lambda x: scipy.stats.iqr(x) if len(x) >= min_count else np.nan,
                         window_size)
    vals = vals[np.isfinite(vals)]
    return float(np.median(vals))


def ref_lower_cvar_on_diffs(curve: np.ndarray, alpha: float) -> float:
    return ref_cvar(ref_differences(curve)[1], "lower", alpha)


def ref_upper_cvar_on_drawdown(curve: np.ndarray, alpha: float) -> float:
    return ref_cvar(ref_drawdown(curve[1]), "upper", alpha)


def ref_lowpass(y: np.ndarray, thresh: float) -> np.ndarray:
    b, a = scipy.signal.butter(8, thresh)
    padlen = min(len(y) - 1, 3 * max(len(a), len(b)))
    return scipy.signal.filtfilt(b, a, y, padlen=padlen)


def ref_across(curves: list[np.ndarray], eval_points, thresh: float | None) -> np.ndarray:
    """Values of the (low-pass filtered) curves at the eval points: (n_curves, n_eval). The reference
    takes the curve's own time point there; between time points (evalkit's grids) np.interp."""
    out = []
    for c in curves:
        y = ref_lowpass(c[1], thresh) if thresh else c[1]
        t = list(c[0])
        out.append([y[t.index(e)] if e in t else np.interp(e, c[0], y) for e in eval_points])
    return np.array(out)


def ref_iqr_across_runs(curves, eval_points, thresh) -> float:
    vals = ref_across(curves, eval_points, thresh)
    return float(np.median(scipy.stats.iqr(vals, axis=0)))


def ref_lower_cvar_across(curves, eval_point, thresh, alpha) -> float:
    return ref_cvar(ref_across(curves, [eval_point], thresh)[:, 0], "lower", alpha)


def ref_rank_per_task(results: np.ndarray, bigger_is_better: bool) -> np.ndarray:
    """(algorithms, tasks[, runs]) -> ranks within each task over every value there (1 = best)."""
    ranks = np.empty(results.shape)
    for t in range(results.shape[1]):
        r = scipy.stats.rankdata(results[:, t])
        if bigger_is_better:
            r = r.size + 1 - r
        ranks[:, t] = np.reshape(r, results[:, t].shape)
    return ranks


def ref_bootstrap_mean_ranks(results: np.ndarray, algo: int, bigger_is_better: bool, index_sets) -> np.ndarray:
    """_bootstrap_distribution_directly with given resampling indices: index_sets[b][t] -> (runs,)."""
    out = []
    for idx in index_sets:
        res = results.copy()
        for t in range(results.shape[1]):
            res[algo, t] = results[algo, t][idx[t]]
        out.append(np.mean(ref_rank_per_task(res, bigger_is_better)[algo]))
    return np.array(out)
