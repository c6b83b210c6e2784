"""Reliability metrics of Chan, Fishman, Canny, Korattikara & Guadarrama, "Measuring the Reliability of
Reinforcement Learning Algorithms" (ICLR 2020; reference code google-research/rl-reliability-metrics).

A mean with its interval says how good an algorithm is; these say how erratic its training is and how bad
its bad runs are. Seven metrics, each with the direction that is better:

=========================  ====  ======  ============================================================
metric                      paper better  definition
=========================  ====  ======  ============================================================
dispersion_across_time     DT    lower   IQR of the detrended curve (slopes between fresh points) in
                                         each window of ``window`` x budget; median over windows
short_term_risk            SRT   higher  CVaR (lower tail, ``alpha``) of the slopes of a run
long_term_risk             LRT   lower   CVaR (upper tail, ``alpha``) of the drawdown from the running max
dispersion_across_runs     DR    lower   IQR across runs of the low-pass filtered curves at each
                                         evaluation point; median over the evaluation points
risk_across_runs           RR    higher  CVaR (lower tail) across runs of the filtered final value
dispersion_fixed_policy    DF    lower   IQR of the returns of the last evaluation round (fixed policy)
risk_fixed_policy          RF    higher  CVaR (lower tail) of the returns of the last evaluation round
=========================  ====  ======  ============================================================

Curves (DESIGN.md section 5) come from :func:`evalkit.metrics.learning_curves` on a common step grid of
``points`` windows. Within-run metrics (DT, SRT, LRT) use only grid points where the run had a finished
episode (``fresh``), never carried-forward values: a lockstep vector-env agent that reports episodes in
bursts would otherwise show flat stretches and look more stable. Slopes are divided by the step gap
between fresh points (the reference code's ``differences``: delta return / delta steps, here per 1,000
env steps), so an uneven spacing of fresh points does not change them. Across-run metrics (DR, RR) use
the carried-forward curve values of the common grid.

Units chosen so the metrics do not depend on the grid resolution: the within-run window, the low-pass
cutoff and the evaluation points are fractions of the budget, not numbers of grid points; a fresh point's
time is when its episodes ended (their mean step), not its window's edge; across-run values are
interpolated at the evaluation times between window centres. The paper's configuration (example.gin)
used 2,000-point curves, 5% windows (about 100 points each), 20 evaluation points and a Butterworth cutoff
of 0.01 x Nyquist, i.e. a period of 10% of the budget. evalkit's default curves have 50 points, so the
default window is 25% (about 12 points; a 5% window would hold 2 and its IQR would be mostly sampling
noise); the 20 evaluation points and the 10% cutoff period are the paper's.

Where the paper and the reference code disagree the paper wins: the paper defines long-term risk as the
CVaR of the worst (largest) drawdowns, the reference's ``example.gin`` uses ``LowerCVaROnDrawdown``, the
lower tail of a non-negative quantity (near 0 for every curve); evalkit uses the upper tail
(the reference's ``UpperCVaROnDrawdown``).

Values over time are collapsed by the median (over windows for DT, over evaluation points for DR), as the
reference's ``load_metric_results`` does; a DT window needs ``min_slopes`` (3) slopes, since the IQR of
one or two slopes is 0 or half a range and sparse logging would look stable.

Run accounting (DESIGN.md 7b): diverged runs (NaN/inf return or loss) are excluded as ``diverged``, runs
without a training episode as ``no-episode``, planned runs without a file as ``failed`` or ``missing``,
and runs with too few fresh points for a within-run metric (or no evaluation round for DF/RF) as
``too-few-fresh-points`` / ``no-evaluation-round`` for that metric; each is counted and named.

Statistics (paper section 4, reference ``analysis/stats.py``): per env, each algorithm's rank on each metric
(1 = best), with bootstrap CIs that resample the runs of that algorithm only (the others fixed), and
permutation tests between pairs (runs, or their ranks, permuted between the two algorithms within each env).
Per-run metrics are ranked over the pooled runs of all algorithms and reported on the 1..A scale as
``1 + (A-1) * P(a run of another algorithm is better than a run of this one)``; across-run metrics rank the
A algorithm values directly. Across envs, only ranks are combined (mean rank over envs), never raw values.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.signal

from evalkit.errors import EvalkitError


@dataclass(frozen=True)
class MetricInfo:
    name: str
    short: str             # the paper's abbreviation
    better: str            # "lower" or "higher"
    kind: str              # "run" (one value per run) or "across" (one value per algorithm and env)
    description: str


METRICS: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("dispersion_across_time", "DT", "lower", "run",
               "IQR of the slopes between fresh curve points within each window, median over windows"),
    MetricInfo("short_term_risk", "SRT", "higher", "run", "CVaR of the worst alpha fraction of the slopes"),
    MetricInfo("long_term_risk", "LRT", "lower", "run", "CVaR of the worst alpha fraction of the drawdowns"),
    MetricInfo("dispersion_across_runs", "DR", "lower", "across",
               "IQR across runs of the low-pass filtered curves, median over evaluation points"),
    MetricInfo("risk_across_runs", "RR", "higher", "across", "CVaR of the worst alpha fraction of final values"),
    MetricInfo("dispersion_fixed_policy", "DF", "lower", "run", "IQR of the last evaluation round's returns"),
    MetricInfo("risk_fixed_policy", "RF", "higher", "run", "CVaR of the last evaluation round's returns"),
)}
SLOPE_UNIT = 1_000.0  # slopes are return change per 1,000 env steps


# ---------------------------------------------------------------------------------------------
# array functions (one run or one algorithm x env)
# ---------------------------------------------------------------------------------------------

def iqr(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Interquartile range (75th - 25th percentile, linear interpolation; scipy.stats.iqr)."""
    q75, q25 = np.percentile(x, [75, 25], axis=axis)
    return q75 - q25


def cvar(x: np.ndarray, alpha: float = 0.05, tail: str = "lower") -> float:
    """Conditional value at risk: the mean of the values at or beyond the alpha-quantile (``lower``
    tail) or the (1 - alpha)-quantile (``upper`` tail); quantiles by linear interpolation."""
    x = np.asarray(x, float)
    if x.size == 0:
        return math.nan
    if tail == "lower":
        var = np.percentile(x, 100 * alpha)
        return float(x[x <= var].mean())
    if tail == "upper":
        var = np.percentile(x, 100 * (1 - alpha))
        return float(x[x >= var].mean())
    raise ValueError(f"tail: expected 'lower' or 'upper', found {tail!r}")


def slopes(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First differences divided by the step gap (return per 1,000 env steps), at the later point.

    ``steps``, ``values``: (k,) fresh points of one run in step order. Returns ((k-1,), (k-1,)).
    """
    steps = np.asarray(steps, float)
    values = np.asarray(values, float)
    return steps[1:], np.diff(values) / np.diff(steps) * SLOPE_UNIT


def drawdown(values: np.ndarray) -> np.ndarray:
    """Drop from the running maximum at each point (>= 0; larger is a deeper drop)."""
    values = np.asarray(values, float)
    return np.maximum.accumulate(values) - values


def window_edges(budget: float, window: float) -> np.ndarray:
    """Edges of the within-run windows: ``round(1 / window)`` equal windows tiling [0, budget]."""
    if not 0 < window <= 1:
        raise EvalkitError(f"window: expected a fraction of the budget in (0, 1], found {window}")
    return np.linspace(0.0, float(budget), max(1, int(round(1 / window))) + 1)


def dispersion_across_time(steps: np.ndarray, values: np.ndarray, budget: float, window: float = 0.25,
                           min_slopes: int = 3) -> float:
    """DT of one run: per window (lo, hi] of ``window`` x budget, the IQR of the slopes ending in it
    (windows with fewer than ``min_slopes`` are skipped: an IQR of one or two slopes is 0 or half a
    range, which would make sparse logging look stable); the median over windows. NaN if none qualifies."""
    s_steps, s = slopes(steps, values)
    edges = window_edges(budget, window)
    which = np.searchsorted(edges, s_steps, side="left") - 1  # window j holds steps in (edges[j], edges[j+1]]
    out = [iqr(s[which == j]) for j in range(len(edges) - 1) if np.count_nonzero(which == j) >= min_slopes]
    return float(np.median(out)) if out else math.nan


def short_term_risk(steps: np.ndarray, values: np.ndarray, alpha: float = 0.05) -> float:
    """SRT of one run: CVaR of the lower alpha tail of its slopes (negative: drops; higher is better)."""
    _, s = slopes(steps, values)
    return cvar(s, alpha, "lower") if len(s) else math.nan


def long_term_risk(values: np.ndarray, alpha: float = 0.05) -> float:
    """LRT of one run: CVaR of the upper alpha tail of its drawdowns (lower is better)."""
    return cvar(drawdown(values), alpha, "upper") if len(values) else math.nan


def lowpass_filter(curves: np.ndarray, period: float, points: int) -> tuple[np.ndarray, bool]:
    """Butterworth low-pass (order 8, zero-phase ``filtfilt``; the reference code's filter) with a
    cutoff period of ``period`` x the grid span, applied to each row's finite stretch.

    ``curves``: (runs, points) values on a grid of ``points`` windows; NaN before a run's first episode
    and past its budget. Returns the filtered curves and whether a filter was applied (a cutoff at or
    above the Nyquist frequency of the grid leaves the curves as they are).
    """
    curves = np.asarray(curves, float)
    if not period or period <= 0:
        return curves.copy(), False
    wn = 2.0 / (period * points)  # cutoff / Nyquist, both in cycles per grid spacing
    if wn >= 1:
        return curves.copy(), False
    b, a = scipy.signal.butter(8, wn)
    out = np.full_like(curves, np.nan)
    finite = np.isfinite(curves)
    has = finite.any(axis=1)
    first = np.where(has, finite.argmax(axis=1), -1)
    last = np.where(has, curves.shape[1] - finite[:, ::-1].argmax(axis=1), -1)
    for lo, hi in set(zip(first[has].tolist(), last[has].tolist())):
        rows = np.flatnonzero((first == lo) & (last == hi))
        seg = curves[rows, lo:hi]   # from the first episode to the budget: carried forward, no gaps
        if seg.shape[1] < 2:
            out[rows, lo:hi] = seg
            continue
        padlen = min(seg.shape[1] - 1, 3 * max(len(a), len(b)))
        out[rows, lo:hi] = scipy.signal.filtfilt(b, a, seg, axis=1, padlen=padlen)
    return out, True


def eval_times(budget: float, eval_points: int) -> np.ndarray:
    """Times (env steps) of the across-run evaluation points: the centres of ``eval_points`` equal
    segments of the budget (the paper evaluated at 20 points, the centres of its 5% windows)."""
    if eval_points < 1:
        raise EvalkitError(f"eval_points: expected a positive integer, found {eval_points}")
    return (np.arange(eval_points) + 0.5) / eval_points * float(budget)


def at_times(curves: np.ndarray, centres: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of ``curves`` (values at the window centres ``centres``) at
    ``times``; NaN where a neighbour is NaN (a run not started yet), clamped at the ends. A time on a
    grid point takes that point's value exactly (no weight on its neighbour)."""
    curves = np.asarray(curves, float)
    t = np.clip(np.asarray(times, float), centres[0], centres[-1])
    hi = np.clip(np.searchsorted(centres, t, side="left"), 0, len(centres) - 1)
    lo = np.maximum(hi - 1, 0)
    exact = np.isclose(centres[hi], t, rtol=0, atol=1e-9 * max(1.0, abs(centres[-1])))
    span = np.where(hi > lo, centres[hi] - centres[lo], 1.0)
    w = np.where(exact, 1.0, (t - centres[lo]) / span)
    left, right = curves[:, lo], curves[:, hi]
    with np.errstate(invalid="ignore"):
        return np.where(exact[None, :], right, left + (right - left) * w[None, :])


def dispersion_across_runs(smoothed_at_eval: np.ndarray) -> float:
    """DR: IQR across runs at each evaluation point (runs not yet started left out of that point),
    median over the evaluation points. ``smoothed_at_eval``: (runs, eval points)."""
    x = np.asarray(smoothed_at_eval, float)
    per_point = [iqr(col[np.isfinite(col)]) for col in x.T if np.isfinite(col).sum() >= 2]
    return float(np.median(per_point)) if per_point else math.nan


def risk_across_runs(final: np.ndarray, alpha: float = 0.05) -> float:
    """RR: CVaR of the lower alpha tail of the runs' final (filtered) values (higher is better)."""
    x = np.asarray(final, float)
    x = x[np.isfinite(x)]
    return cvar(x, alpha, "lower") if len(x) else math.nan


# ---------------------------------------------------------------------------------------------
# batches of runs: one algorithm (label) in one env on the common grid
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CurveSet:
    """The runs of one label in one env on the common step grid.

    ``steps``: (P,) grid points (right window edges, env steps); ``values``: (R, P) carried-forward curve
    values (NaN before the first episode and past the budget); ``fresh``: (R, P) bool, a finished episode
    in that window; ``budgets``: (R,) env steps; ``eval_returns``: per run the returns of its last
    evaluation round (or None); ``times``: (R, P) when the window's episodes ended (their mean step),
    the time of a fresh point for within-run slopes (None: the grid step).
    """

    run_ids: tuple
    steps: np.ndarray
    values: np.ndarray
    fresh: np.ndarray
    budgets: np.ndarray
    eval_returns: tuple | None = None
    times: np.ndarray | None = None   # (R, P) mean end step of the window's episodes (fresh points)


def _times(cs: CurveSet) -> np.ndarray:
    """(R, P) time of each point: when its episodes ended where known, else the grid step."""
    grid = np.broadcast_to(cs.steps[None, :], cs.values.shape)
    if cs.times is None:
        return np.array(grid, float)
    return np.where(np.isfinite(cs.times), cs.times, grid)


def fresh_slopes(cs: CurveSet) -> np.ndarray:
    """(R, P) slopes (per 1,000 steps) from each fresh point to the previous fresh point of its run,
    over the time between them (when their episodes ended, not the grid edges: a lockstep agent's
    bursts would otherwise get slopes over a gap 1.5 windows long divided by one or two windows);
    NaN elsewhere: carried-forward values never enter."""
    r, p = cs.values.shape
    fresh = cs.fresh & np.isfinite(cs.values)
    idx = np.where(fresh, np.arange(p)[None, :], -1)
    last = np.maximum.accumulate(idx, axis=1)              # last fresh index at or before j
    prev = np.concatenate([np.full((r, 1), -1), last[:, :-1]], axis=1)
    ok = fresh & (prev >= 0)
    t = _times(cs)
    pv = np.take_along_axis(cs.values, np.maximum(prev, 0), axis=1)
    pt = np.take_along_axis(t, np.maximum(prev, 0), axis=1)
    with np.errstate(all="ignore"):
        out = (cs.values - pv) / (t - pt) * SLOPE_UNIT
    return np.where(ok, out, np.nan)


def nan_quantiles(x: np.ndarray, qs: Sequence[float], axis: int = -1) -> np.ndarray:
    """Quantiles (linear interpolation, as ``np.percentile``) along ``axis`` ignoring NaN, for many rows
    at once: one sort, then a gather (``np.nanpercentile`` loops over rows in Python). Returns
    (len(qs), *other axes); NaN where a row has no finite value."""
    x = np.moveaxis(np.asarray(x, float), axis, -1)
    srt = np.sort(x, axis=-1)                       # NaN sort last
    n = np.isfinite(srt).sum(axis=-1)
    out = []
    for q in qs:
        pos = np.maximum(n - 1, 0) * q
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        a = np.take_along_axis(srt, lo[..., None], -1)[..., 0]
        b = np.take_along_axis(srt, hi[..., None], -1)[..., 0]
        t = pos - lo
        with np.errstate(invalid="ignore"):
            v = np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)  # numpy's lerp
        out.append(np.where(n > 0, v, np.nan))
    return np.array(out)


def _row_cvar(x: np.ndarray, alpha: float, tail: str) -> np.ndarray:
    """CVaR per row of a NaN-padded (R, K) array (NaN where a row is empty)."""
    q = nan_quantiles(x, [alpha if tail == "lower" else 1 - alpha], axis=1)[0]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        keep = x <= q[:, None] if tail == "lower" else x >= q[:, None]
        return np.nanmean(np.where(keep, x, np.nan), axis=1)


def _row_iqr(x: np.ndarray, min_count: int) -> np.ndarray:
    q75, q25 = nan_quantiles(x, [0.75, 0.25], axis=1)
    out = q75 - q25
    out[np.isfinite(x).sum(axis=1) < min_count] = np.nan
    return out


def curve_range(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(R,) the reference's curve range of each row over the points in ``mask``: 95th percentile minus
    the first value (NaN for a row without points)."""
    x = np.where(mask, values, np.nan)
    first_idx = np.argmax(mask, axis=1)
    first = np.where(mask.any(axis=1), values[np.arange(len(values)), first_idx], np.nan)
    return nan_quantiles(x, [0.95], axis=1)[0] - first


def within_run_metrics(cs: CurveSet, window: float = 0.25, alpha: float = 0.05, min_slopes: int = 3
                       ) -> dict[str, np.ndarray]:
    """DT, SRT and LRT of every run of ``cs`` from its fresh points: {metric: (R,)}; the vectorised form
    of :func:`dispersion_across_time`, :func:`short_term_risk` and :func:`long_term_risk`."""
    s = fresh_slopes(cs)
    t = _times(cs)
    r = len(s)
    dt = np.full(r, np.nan)
    for budget in np.unique(cs.budgets):
        rows = np.flatnonzero(cs.budgets == budget)
        edges = window_edges(budget, window)
        which = np.searchsorted(edges, t[rows], side="left") - 1   # a slope belongs where it ends
        per_window = np.column_stack([_row_iqr(np.where(which == j, s[rows], np.nan), min_slopes)
                                      for j in range(len(edges) - 1)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            dt[rows] = np.nanmedian(per_window, axis=1)
    fresh = cs.fresh & np.isfinite(cs.values)
    peak = np.maximum.accumulate(np.where(fresh, cs.values, -np.inf), axis=1)
    dd = np.where(fresh, peak - cs.values, np.nan)
    n_fresh = fresh.sum(axis=1)
    srt = np.where(n_fresh >= 2, _row_cvar(s, alpha, "lower"), np.nan)
    lrt = np.where(n_fresh >= 2, _row_cvar(dd, alpha, "upper"), np.nan)
    return {"dispersion_across_time": dt, "short_term_risk": srt, "long_term_risk": lrt}


def across_run_inputs(cs: CurveSet, eval_points: int = 20, smoothing: float = 0.1
                      ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Low-pass filtered curves at the evaluation times (R, E), interpolated between window centres
    (a grid value is the mean of its window), and at the last grid point (R,)."""
    p = cs.values.shape[1]
    smooth, filtered = lowpass_filter(cs.values, smoothing, p)
    spacing = cs.steps[1] - cs.steps[0] if p > 1 else cs.steps[0]
    centres = cs.steps - spacing / 2
    top = cs.steps[-1]
    return at_times(smooth, centres, eval_times(top, eval_points)), smooth[:, -1], filtered


def fixed_policy_metrics(cs: CurveSet, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """DF and RF per run from its last evaluation round (NaN for a run with fewer than 2 episodes there)."""
    r = len(cs.run_ids)
    rounds = [np.asarray(e, float) if e is not None else np.empty(0) for e in (cs.eval_returns or [None] * r)]
    width = max([len(e) for e in rounds] + [1])
    x = np.full((r, width), np.nan)
    for i, e in enumerate(rounds):
        x[i, :len(e)] = e
    enough = np.isfinite(x).sum(axis=1) >= 2
    df = np.where(enough, _row_iqr(x, 2), np.nan)
    rf = np.where(enough, _row_cvar(x, alpha, "lower"), np.nan)
    return {"dispersion_fixed_policy": df, "risk_fixed_policy": rf}


# ---------------------------------------------------------------------------------------------
# from the long table
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReliabilityResult:
    """Reliability metrics of a study.

    ``runs``: one row per run (run_id, algorithm, label, env, seed_index, status, per-run metric
    columns; status is ``used`` or the reason the run is excluded). ``cells``: one row per (label, env)
    with every metric (per-run metrics: the median over runs) and n. ``accounting``: per (label, env,
    metric) the runs used and those excluded with their reasons. ``across``: per (label, env) the
    filtered curves at the evaluation points with each run's curve range as a last column (runs, eval
    points + 1; the range is 1 without normalization) and the (normalized) final values (runs,), used
    to resample across-run metrics.
    """

    runs: pd.DataFrame
    cells: pd.DataFrame
    accounting: pd.DataFrame
    across: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]]
    params: dict
    notes: list = field(default_factory=list)

    @property
    def method(self) -> str:
        p = self.params
        return (f"Chan et al. (2020) reliability metrics on a {p['points']}-point step grid: within-run "
                f"windows of {p['window']:.0%} of the budget, on fresh grid points only; across-run metrics at "
                f"{p['eval_points']} evaluation points after a low-pass filter (cutoff period "
                f"{p['smoothing']:.0%} of the budget); CVaR alpha {p['alpha']}"
                + ("; each run's metric divided by its curve range (95th percentile minus first value)"
                   if p.get("normalize") == "curve_range" else "; return units, no normalization"))


def _curves(table: pd.DataFrame, points: int) -> pd.DataFrame:
    """Training curves on the common grid with the ``fresh`` flag (:func:`evalkit.metrics.learning_curves`):
    value carried forward from the last finished episode, NaN before the first and past the budget."""
    from evalkit import metrics
    return metrics.learning_curves(table, points=points, mode="train")


def _last_round(evals: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per run: the returns of its last evaluation round (the final fixed policy)."""
    out = {}
    for run_id, g in evals.groupby("run_id", sort=False):
        s = g["step"].to_numpy(float)
        out[run_id] = g["return"].to_numpy(float)[s == s.max()]
    return out


def _episode_times(episodes: pd.DataFrame, ids: Sequence[str], steps: np.ndarray) -> np.ndarray:
    """(R, P) mean end step of each run's episodes per grid window, binned like
    :func:`evalkit.metrics.learning_curves` (window k holds steps in (edge k, edge k+1]); NaN where none."""
    p = len(steps)
    edges = np.concatenate([[0.0], steps])
    window = np.clip(np.searchsorted(edges, episodes["step"].to_numpy(float), side="left") - 1, 0, p - 1)
    row = pd.Index(list(ids)).get_indexer(episodes["run_id"])
    total = np.zeros((len(ids), p))
    count = np.zeros((len(ids), p))
    np.add.at(total, (row, window), episodes["step"].to_numpy(float))
    np.add.at(count, (row, window), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def curve_sets(table: pd.DataFrame, points: int = 50) -> tuple[dict[tuple[str, str], CurveSet], pd.DataFrame]:
    """Per (label, env) the :class:`CurveSet` of its usable runs, and one status row per run of the
    table (``used``, ``diverged`` or ``no-episode``)."""
    from evalkit import metrics
    info = metrics.run_scores(table, "auc", mode="train")
    curves = _curves(table, points)
    evals = _last_round(table[table["mode"] == "eval"])
    budgets = table.groupby("run_id")["budget"].first() if "budget" in table else table.groupby("run_id")["step"].max()
    info["status"] = np.where(info["diverged"], "diverged",
                              np.where(info["n_episodes"] == 0, "no-episode", "used"))
    info.loc[~info["run_id"].isin(set(curves["run_id"])), "status"] = np.where(
        info.loc[~info["run_id"].isin(set(curves["run_id"])), "diverged"], "diverged", "no-episode")
    used = info[info["status"] == "used"]
    sets = {}
    if len(used):
        c = curves[curves["run_id"].isin(set(used["run_id"]))].sort_values(["run_id", "step"], kind="stable")
        for (label, env), g in used.groupby(["label", "env"], sort=True):
            ids = tuple(sorted(g["run_id"]))
            sub = c[c["run_id"].isin(ids)]
            steps = np.sort(sub["step"].unique()).astype(float)
            wide_v = sub.pivot(index="run_id", columns="step", values="value").reindex(index=list(ids), columns=steps)
            wide_f = sub.pivot(index="run_id", columns="step", values="fresh").reindex(index=list(ids), columns=steps)
            fresh = wide_f.fillna(False).to_numpy(bool)
            times = _episode_times(table[table["run_id"].isin(ids) & (table["mode"] == "train")], ids, steps)
            sets[(label, env)] = CurveSet(ids, steps, wide_v.to_numpy(float), fresh,
                                          budgets.reindex(list(ids)).to_numpy(float),
                                          tuple(evals.get(i) for i in ids) if evals else None,
                                          np.where(fresh, times, np.nan))
    keep = ["run_id", "algorithm", "label", "env", "seed_index", "status"]
    return sets, info[keep].copy()


def compute(table: pd.DataFrame, points: int = 50, window: float = 0.25, alpha: float = 0.05,
            smoothing: float = 0.1, eval_points: int = 20, min_slopes: int = 3,
            planned: pd.DataFrame | None = None, normalize: str | None = None) -> ReliabilityResult:
    """Every reliability metric of the runs in ``table`` (the long episode table of one phase).

    ``points``: grid windows of the learning curves; ``window``: the within-run window (DT) as a fraction
    of the budget; ``alpha``: CVaR tail fraction (0.05, the reference's default); ``smoothing``: low-pass
    cutoff period as a fraction of the budget (0 = none); ``eval_points``: across-run evaluation points
    (20, the paper's); ``min_slopes``: slopes a window needs for its IQR; ``normalize``: None (the
    reference's default: metrics in return units) or ``"curve_range"`` (the paper's experiments: each
    run's metric divided by its curve range, the 95th percentile of its curve minus its first value;
    DR by the median range of the runs; runs whose range is not positive are left out, named).
    ``planned``: optional rows (run_id, algorithm, env, reason) for planned runs without episode rows (reason ``failed``, ``missing`` or empty for a
    stored run without episodes, counted as ``no-episode``); they are counted and named, never dropped.
    """
    if points < 2:
        raise EvalkitError(f"points: expected at least 2 grid points, found {points}")
    if table.empty:
        raise EvalkitError("reliability: no stored episodes to analyse")
    sets, status = curve_sets(table, points)
    if planned is not None and len(planned):
        extra = planned[~planned["run_id"].isin(set(status["run_id"]))]
        status = pd.concat([status, pd.DataFrame({
            "run_id": extra["run_id"], "algorithm": extra["algorithm"], "label": extra["algorithm"],
            "env": extra["env"], "seed_index": extra.get("seed_index", np.nan),
            "status": [r or "no-episode" for r in extra.get("reason", [""] * len(extra))]})], ignore_index=True)
    return compute_from_sets(sets, status, points, window, alpha, smoothing, eval_points, min_slopes, normalize)


def compute_from_sets(sets: Mapping[tuple[str, str], CurveSet], status: pd.DataFrame, points: int = 50,
                      window: float = 0.25, alpha: float = 0.05, smoothing: float = 0.1, eval_points: int = 20,
                      min_slopes: int = 3, normalize: str | None = None) -> ReliabilityResult:
    """:func:`compute` on curve arrays: ``sets`` per (label, env), ``status`` one row per run (run_id,
    algorithm, label, env, seed_index, status); runs whose status is not ``used`` are counted, named and
    left out."""
    if not 0 < alpha < 1:
        raise EvalkitError(f"alpha: expected a fraction in (0, 1), found {alpha}")
    if smoothing < 0:
        raise EvalkitError(f"smoothing: expected a fraction of the budget >= 0, found {smoothing}")
    window_edges(1.0, window)  # validates window
    eval_times(1.0, eval_points)
    if normalize not in (None, "none", "curve_range"):
        raise EvalkitError(f"normalize: expected 'none' or 'curve_range', found {normalize!r}")
    normalize = None if normalize == "none" else normalize
    flat = set()
    run_metrics = [m for m, i in METRICS.items() if i.kind == "run"]
    has_eval = any(cs.eval_returns is not None for cs in sets.values())
    values = {}
    across, notes = {}, []
    for key, cs in sets.items():
        per = within_run_metrics(cs, window, alpha, min_slopes)
        if normalize:
            rng_f = curve_range(cs.values, cs.fresh & np.isfinite(cs.values))
            for m in per:
                per[m] = np.where(rng_f > 0, per[m] / np.where(rng_f > 0, rng_f, 1.0), np.nan)
            flat |= {rid for rid, r in zip(cs.run_ids, rng_f) if not r > 0}
        per.update(fixed_policy_metrics(cs, alpha))
        for k, rid in enumerate(cs.run_ids):
            values[rid] = {m: per[m][k] for m in run_metrics}
        at_eval, final, filtered = across_run_inputs(cs, eval_points, smoothing)
        if not filtered and smoothing:
            notes.append(f"{key[1]}: the {cs.values.shape[1]}-point grid is coarser than the low-pass cutoff "
                         f"({smoothing:.0%} of the budget); curves not filtered")
        rng_c = curve_range(cs.values, np.isfinite(cs.values)) if normalize else np.ones(len(final))
        rng_c = np.where(rng_c > 0, rng_c, np.nan)
        # the ranges ride along as the last column, so a resample of runs resamples them too
        across[key] = (np.column_stack([at_eval, rng_c]), final / rng_c)
    runs = status.copy()
    for m in run_metrics:
        runs[m] = [values.get(rid, {}).get(m, np.nan) for rid in runs["run_id"]]
    cells, acct = [], []
    for (label, env), g in runs.groupby(["label", "env"], sort=True):
        used = g[g["status"] == "used"]
        excluded = g[g["status"] != "used"]
        cell = {"label": label, "env": env, "runs": len(g), "used": len(used)}
        for m in run_metrics:
            if m.endswith("fixed_policy") and not has_eval:
                continue
            x = used[m].to_numpy(float)
            cell[m] = float(np.median(x[np.isfinite(x)])) if np.isfinite(x).any() else math.nan
            missing = used[~np.isfinite(x)]
            if m.endswith("fixed_policy"):
                acct.append(_account(label, env, m, g, excluded, missing, "no-evaluation-round"))
            else:
                is_flat = missing["run_id"].isin(flat)
                acct.append(_account(label, env, m, g, excluded, missing[~is_flat], "too-few-fresh-points",
                                     missing[is_flat], "curve-range<=0"))
        ev, fi = across.get((label, env), (np.empty((0, 2)), np.empty(0)))
        cell["dispersion_across_runs"] = float(_across_value("dispersion_across_runs", ev[None], fi[None], alpha)[0]) \
            if len(fi) else math.nan
        cell["risk_across_runs"] = risk_across_runs(fi, alpha)
        no_range = used[~np.isfinite(ev[:, -1])] if len(fi) else used.iloc[:0]
        for m in ("dispersion_across_runs", "risk_across_runs"):
            acct.append(_account(label, env, m, g, excluded, used.iloc[:0], "",
                                 no_range if m == "risk_across_runs" else used.iloc[:0], "curve-range<=0"))
        cells.append(cell)
    params = dict(points=points, window=window, alpha=alpha, smoothing=smoothing, min_slopes=min_slopes,
                  eval_points=eval_points, has_eval=has_eval, normalize=normalize or "none")
    return ReliabilityResult(runs, pd.DataFrame(cells), pd.DataFrame(acct), across, params,
                             list(dict.fromkeys(notes)))


def _account(label: str, env: str, metric: str, cell: pd.DataFrame, excluded: pd.DataFrame,
             extra: pd.DataFrame, reason: str, extra2: pd.DataFrame | None = None, reason2: str = "") -> dict:
    reasons = list(zip(excluded["status"], excluded["run_id"])) + [(reason, rid) for rid in extra["run_id"]]
    if extra2 is not None:
        reasons += [(reason2, rid) for rid in extra2["run_id"]]
    counts: dict[str, list[str]] = {}
    for why, rid in reasons:
        counts.setdefault(why, []).append(str(rid))
    text = "; ".join(f"{why} {len(ids)}: {', '.join(ids)}" for why, ids in sorted(counts.items()))
    return {"label": label, "env": env, "metric": metric, "planned": len(cell), "used": len(cell) - len(reasons),
            "excluded": text}


# ---------------------------------------------------------------------------------------------
# statistics: ranks with bootstrap CIs, permutation tests (paper section 4; analysis/stats.py)
# ---------------------------------------------------------------------------------------------

def _lower_better(x: np.ndarray, metric: str) -> np.ndarray:
    """Values oriented so that lower is better, rounded to 10 significant digits: filtering and
    differencing leave last-bit noise (-200 vs -200.00000000001) that must tie, not order, algorithms."""
    y = np.asarray(x, float) if METRICS[metric].better == "lower" else -np.asarray(x, float)
    with np.errstate(all="ignore"):
        mag = np.where(np.isfinite(y) & (y != 0), 10.0 ** np.floor(np.log10(np.abs(y))), 1.0)
        return np.round(y / mag, 9) * mag


def _beats(other: np.ndarray, mine: np.ndarray) -> np.ndarray:
    """1 where ``other`` is better (lower, after orientation) than ``mine``, 1/2 on ties; NaN propagates."""
    out = (other < mine) + 0.5 * (other == mine)
    return np.where(np.isnan(other) | np.isnan(mine), np.nan, out)


def run_metric_ranks(groups: Sequence[np.ndarray], metric: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Ranks (1 = best, 1..A scale) of A algorithms from their per-run values in one env.

    Every run is ranked among the pooled runs of all algorithms (the reference's ``rank_per_task``);
    ``c[a][i]`` = number of other algorithms' runs better than run i of a (ties 1/2) = its pooled rank
    minus its rank within a. The rank is ``1 + (A-1) * sum(c[a]) / (R_a * (N - R_a))``: the expected
    rank of a run of a among one run of each algorithm (linear in the mean pooled rank for equal R).
    Returns (ranks (A,), c).
    """
    import scipy.stats as sps
    ys = [_lower_better(g, metric) for g in groups]
    sizes = np.array([len(y) for y in ys])
    n, a = int(sizes.sum()), len(ys)
    if a == 0 or (sizes == 0).any():
        return np.full(a, np.nan), [np.zeros(len(y)) for y in ys]
    if a == 1:  # alone: first, as an across-run metric's single value is
        return np.ones(1), [np.zeros(len(ys[0]))]
    pooled = sps.rankdata(np.concatenate(ys))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    c = [pooled[starts[k]:starts[k + 1]] - sps.rankdata(ys[k]) for k in range(a)]
    ranks = np.array([1 + (a - 1) * c[k].sum() / (sizes[k] * (n - sizes[k])) for k in range(a)])
    return ranks, c


def _across_value(metric: str, at_eval: np.ndarray, final: np.ndarray, alpha: float) -> np.ndarray:
    """DR or RR of a batch of resampled run sets: ``at_eval`` (B, R, E), ``final`` (B, R) -> (B,)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are NaN results, said in n
        if metric == "dispersion_across_runs":   # last column: each run's curve range (1 without normalization)
            values, ranges = at_eval[..., :-1], at_eval[..., -1]
            q75, q25 = nan_quantiles(values, [0.75, 0.25], axis=1)
            d = q75 - q25
            d[np.isfinite(values).sum(axis=1) < 2] = np.nan
            return np.nanmedian(d, axis=1) / np.nanmedian(ranges, axis=1)
        var = nan_quantiles(final, [alpha], axis=1)[0]
        return np.nanmean(np.where(final <= var[:, None], final, np.nan), axis=1)


def _lookup(result: ReliabilityResult, metric: str) -> dict:
    """Per (label, env): finite per-run values (run metrics) or (at_eval, final) arrays (across metrics)."""
    if METRICS[metric].kind == "across":
        return dict(result.across)
    r = result.runs[result.runs["status"] == "used"]
    out = {}
    for key, g in r.groupby(["label", "env"], sort=False):
        x = g[metric].to_numpy(float)
        out[key] = x[np.isfinite(x)]
    return out


def _cells(lookup: dict, metric: str, env: str, labels: Sequence[str]) -> list:
    empty = np.empty(0) if METRICS[metric].kind == "run" else (np.empty((0, 1)), np.empty(0))
    return [lookup.get((lab, env), empty) for lab in labels]


def _present(result: ReliabilityResult) -> dict[str, list[str]]:
    """Per env, the labels with a cell there (sorted)."""
    return {env: sorted(g["label"]) for env, g in result.cells.groupby("env")}


def _has_data(metric: str, d, alpha: float) -> bool:
    """Whether a label has what the metric needs in an env: a finite per-run value, or for across-run
    metrics runs whose metric is finite. Labels without are left out of that env's ranking (their
    runs are named in the accounting), never allowed to make every rank there NaN."""
    if METRICS[metric].kind == "run":
        return len(d) > 0
    ev, fi = d
    return len(fi) > 0 and bool(np.isfinite(_across_value(metric, ev[None], fi[None], alpha)[0]))


def _metrics_of(result: ReliabilityResult) -> list[str]:
    return [m for m in METRICS if result.params.get("has_eval") or not m.endswith("fixed_policy")]


def rank_table(result: ReliabilityResult, reps: int = 1_000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per metric and env, and across envs (``env = "all envs"``: the mean of the per-env ranks), each
    label's rank (1 = best) with a percentile bootstrap CI that resamples only that label's runs, within
    each env, the others held fixed (the reference's ``bootstrap_confidence_interval``).

    Columns: metric, better, env, label, value (per env: the metric; per-run metrics the median over
    runs), n, rank, rank_low, rank_high, reps, confidence.
    """
    if reps < 1:
        raise EvalkitError(f"reps: expected a positive number of bootstrap resamples, found {reps}")
    lo_q, hi_q = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2
    envs = sorted(result.cells["env"].unique())
    labels = sorted(result.cells["label"].unique())
    alpha = result.params["alpha"]
    where = _present(result)
    streams = np.random.SeedSequence(seed)
    rows = []
    for metric in _metrics_of(result):
        info = METRICS[metric]
        per_env_draws: dict[str, list[np.ndarray]] = {lab: [] for lab in labels}
        per_env_point: dict[str, list[float]] = {lab: [] for lab in labels}
        lookup = _lookup(result, metric)
        for env in envs:
            rng = np.random.default_rng(streams.spawn(1)[0])
            cells = _cells(lookup, metric, env, where[env])
            present = [lab for lab, d in zip(where[env], cells) if _has_data(metric, d, alpha)]
            for lab in sorted(set(where[env]) - set(present)):
                rows.append({"metric": metric, "better": info.better, "env": env, "label": lab, "value": np.nan,
                             "n": 0, "rank": np.nan, "rank_low": np.nan, "rank_high": np.nan})
            data = [d for d in cells if _has_data(metric, d, alpha)]
            if not data:
                continue
            points, draws, values, ns = _env_ranks(metric, data, reps, rng, alpha)
            for k, lab in enumerate(present):
                rows.append({"metric": metric, "better": info.better, "env": env, "label": lab, "value": values[k],
                             "n": ns[k], "rank": points[k],
                             "rank_low": np.percentile(draws[k], lo_q) if np.isfinite(draws[k]).all() else np.nan,
                             "rank_high": np.percentile(draws[k], hi_q) if np.isfinite(draws[k]).all() else np.nan})
                per_env_draws[lab].append(draws[k])
                per_env_point[lab].append(points[k])
        if len(envs) > 1:
            for lab in labels:
                if len(per_env_point[lab]) != len(envs):
                    continue  # a label missing an env has no cross-env rank (never compared on fewer envs)
                d = np.mean(per_env_draws[lab], axis=0)
                ok = np.isfinite(d).all()
                rows.append({"metric": metric, "better": info.better, "env": "all envs", "label": lab,
                             "value": np.nan, "n": np.nan, "rank": float(np.mean(per_env_point[lab])),
                             "rank_low": np.percentile(d, lo_q) if ok else np.nan,
                             "rank_high": np.percentile(d, hi_q) if ok else np.nan})
    out = pd.DataFrame(rows, columns=["metric", "better", "env", "label", "value", "n", "rank", "rank_low",
                                      "rank_high"])
    out["reps"] = reps
    out["confidence"] = confidence
    return out


def _env_ranks(metric: str, data: list, reps: int, rng: np.random.Generator, alpha: float):
    """Point ranks, bootstrap rank draws (A arrays of (reps,)), values and n of one metric in one env."""
    a = len(data)
    if METRICS[metric].kind == "run":
        points, c = run_metric_ranks(data, metric)
        sizes = np.array([len(x) for x in data])
        n = int(sizes.sum())
        draws = []
        for k in range(a):
            if sizes[k] == 0 or (sizes == 0).any():
                draws.append(np.full(reps, np.nan))
                continue
            if a == 1:
                draws.append(np.ones(reps))
                continue
            idx = rng.integers(0, sizes[k], size=(reps, sizes[k]))
            draws.append(1 + (a - 1) * c[k][idx].sum(axis=1) / (sizes[k] * (n - sizes[k])))
        values = [float(np.median(x)) if len(x) else np.nan for x in data]
        return points, draws, values, [len(x) for x in data]
    values = np.array([_across_value(metric, ev[None], fi[None], alpha)[0] if len(fi) else np.nan
                       for ev, fi in data])
    y = _lower_better(values, metric)
    points = np.array([1 + np.nansum(_beats(np.delete(y, k), y[k])) if np.isfinite(y[k]) else np.nan
                       for k in range(a)])
    draws = []
    for k, (ev, fi) in enumerate(data):
        if len(fi) == 0 or not np.isfinite(y).all():
            draws.append(np.full(reps, np.nan))
            continue
        idx = rng.integers(0, len(fi), size=(reps, len(fi)))
        yk = _lower_better(_across_value(metric, ev[idx], fi[idx], alpha), metric)
        others = np.delete(y, k)
        draws.append(1 + _beats(others[None, :], yk[:, None]).sum(axis=1))
    return points, draws, list(values), [len(fi) for _, fi in data]


def permutation_tests(result: ReliabilityResult, reps: int = 1_000, seed: int = 0) -> pd.DataFrame:
    """Permutation tests of equal reliability between each pair of labels, per metric, per env and
    across envs (the reference's ``compare_algorithms``).

    Per-run metrics: the pooled ranks of the two labels' runs are permuted between them within each env;
    statistic: mean rank of Y - mean rank of X (averaged over envs for ``all envs``). Across-run metrics:
    the runs are permuted between the two labels and the metric recomputed for both; within an env the
    statistic is the metric difference (two ranks always differ by at least one place), across envs the
    mean over envs of the rank difference against the other labels' values.
    p = (1 + #{|null| >= |observed|}) / (1 + reps) (two-sided; the +1 keeps it valid, the reference
    omits it); ``p_holm``: Holm-adjusted over the pairs of one metric and scope.
    """
    from evalkit.stats import holm
    if reps < 1:
        raise EvalkitError(f"reps: expected a positive number of permutations, found {reps}")
    envs = sorted(result.cells["env"].unique())
    labels = sorted(result.cells["label"].unique())
    alpha = result.params["alpha"]
    ss = np.random.SeedSequence(seed)
    rows = []
    where = _present(result)
    for metric in _metrics_of(result):
        lookup = _lookup(result, metric)
        for i, x in enumerate(labels):
            for y in labels[i + 1:]:
                obs_all, null_all = [], []
                for env in envs:
                    rng = np.random.default_rng(ss.spawn(1)[0])
                    cells = _cells(lookup, metric, env, where[env])
                    present = [lab for lab, d in zip(where[env], cells) if _has_data(metric, d, alpha)]
                    if x not in present or y not in present:
                        continue
                    data = [d for d in cells if _has_data(metric, d, alpha)]
                    out = (_perm_run if METRICS[metric].kind == "run" else _perm_across)(
                        metric, data, present.index(x), present.index(y), reps, rng, alpha)
                    if out is None:
                        continue
                    obs, null, test_obs, test_null = out
                    rows.append(_perm_row(metric, env, x, y, obs, test_obs, test_null, reps))
                    obs_all.append(obs)
                    null_all.append(null)
                if len(envs) > 1 and len(obs_all) == len(envs):
                    mean_obs = float(np.mean(obs_all))
                    rows.append(_perm_row(metric, "all envs", x, y, mean_obs, mean_obs, np.mean(null_all, axis=0),
                                          reps))
    out = pd.DataFrame(rows, columns=["metric", "env", "X", "Y", "rank difference (Y - X)", "p"])
    out["p_holm"] = np.nan
    for _, g in out.groupby(["metric", "env"]):
        out.loc[g.index, "p_holm"] = holm(g["p"].to_numpy(float))
    out["reps"] = reps
    return out


def _perm_row(metric: str, env: str, x: str, y: str, obs: float, test_obs: float, null: np.ndarray,
              reps: int) -> dict:
    p = (1 + np.count_nonzero(np.abs(null) >= abs(test_obs) - 1e-12)) / (1 + reps)
    return {"metric": metric, "env": env, "X": x, "Y": y, "rank difference (Y - X)": obs, "p": float(p)}


def _perm_run(metric, data, ix, iy, reps, rng, alpha):
    import scipy.stats as sps
    if any(len(d) == 0 for d in data) or len(data[ix]) + len(data[iy]) < 3:
        return None
    pooled = sps.rankdata(np.concatenate([_lower_better(d, metric) for d in data]))
    starts = np.concatenate([[0], np.cumsum([len(d) for d in data])])
    rx, ry = pooled[starts[ix]:starts[ix + 1]], pooled[starts[iy]:starts[iy + 1]]
    both = np.concatenate([rx, ry])
    perm = np.argsort(rng.random((reps, len(both))), axis=1)
    shuffled = both[perm]
    null = shuffled[:, len(rx):].mean(axis=1) - shuffled[:, :len(rx)].mean(axis=1)
    # pooled ranks span 1..N; per run of each algorithm they move by R per place on the 1..A scale
    scale = (len(rx) + len(ry)) / 2
    obs = float(ry.mean() - rx.mean()) / scale
    return obs, null / scale, obs, null / scale


def _perm_across(metric, data, ix, iy, reps, rng, alpha):
    (ex, fx), (ey, fy) = data[ix], data[iy]
    if len(fx) < 2 or len(fy) < 2:
        return None
    values = np.array([_across_value(metric, ev[None], fi[None], alpha)[0] for ev, fi in data])
    y = _lower_better(values, metric)
    if not np.isfinite(y).all():
        return None
    others = np.delete(y, [ix, iy])
    ev, fi = np.concatenate([ex, ey]), np.concatenate([fx, fy])
    perm = np.argsort(rng.random((reps, len(fi))), axis=1)
    px = _lower_better(_across_value(metric, ev[perm[:, :len(fx)]], fi[perm[:, :len(fx)]], alpha), metric)
    py = _lower_better(_across_value(metric, ev[perm[:, len(fx):]], fi[perm[:, len(fx):]], alpha), metric)

    def rank(mine, rival):
        return 1 + _beats(others[None, :], mine[:, None]).sum(axis=1) + _beats(rival, mine)

    null = rank(py, px) - rank(px, py)
    obs = rank(y[iy:iy + 1], y[ix:ix + 1]) - rank(y[ix:ix + 1], y[iy:iy + 1])
    # within one env two ranks always differ by >= 1, so the env's own test uses the metric difference
    return float(obs[0]), null, float(y[iy] - y[ix]), py - px


# ---------------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------------

def _num(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.4g}"


def render(result: ReliabilityResult, ranks: pd.DataFrame, tests: pd.DataFrame | None = None,
           width: int = 100) -> str:
    """The terminal report: run accounting, per env and metric each label's value and rank with its CI,
    the mean rank over envs, and the permutation tests; every line at most ``width`` columns."""
    import textwrap
    wrap = lambda text, indent="": textwrap.wrap(text, width, subsequent_indent=indent + "  ",
                                                 initial_indent=indent, break_on_hyphens=False)
    lines = wrap(f"reliability: {result.method}.")
    conf = float(ranks["confidence"].iloc[0]) if len(ranks) else 0.95
    reps = int(ranks["reps"].iloc[0]) if len(ranks) else 0
    lines += wrap(f"ranks: 1 = best; {conf:.0%} percentile bootstrap CIs ({reps} resamples of each algorithm's "
                  f"runs, the others fixed); across envs only ranks are combined.")
    used = result.runs.groupby(["label", "env"], sort=True)["status"].agg(lambda s: f"{(s == 'used').sum()}/{len(s)}")
    lines += wrap("runs used: " + ", ".join(f"{lab} on {env} {v}" for (lab, env), v in used.items()))
    acct = result.accounting[result.accounting["excluded"] != ""]
    for (lab, env), g in acct.groupby(["label", "env"], sort=True):
        for excl, gg in g.groupby("excluded", sort=False):
            ms = ", ".join(METRICS[m].short for m in gg["metric"])
            lines += wrap(f"excluded from {ms} for {lab} on {env}: {excl}", "  ")
    for note in result.notes:
        lines += wrap(f"note: {note}")
    lab_w = min(18, max([len(str(x)) for x in ranks["label"]] + [9]))
    for env, g in ranks.groupby("env", sort=False):
        lines += ["", f"== {env}" + (" (mean of the per-env ranks)" if env == "all envs" else "")]
        lines.append(f"  {'metric':<31s} {'better':<7s} {'algorithm':<{lab_w}s} {'value':>10s} {'n':>4s}  rank [CI]")
        for metric, gm in g.groupby("metric", sort=False):
            name = f"{METRICS[metric].short:<4s}{metric.replace('_', ' ')}"
            for k, r in enumerate(gm.itertuples(index=False)):
                ci = f"[{r.rank_low:.2f}, {r.rank_high:.2f}]" if np.isfinite(r.rank_low) else "[n/a]"
                n = "" if not np.isfinite(r.n) else str(int(r.n))
                value = "-" if env == "all envs" else _num(r.value)
                lines.append(f"  {name if k == 0 else '':<31s} {r.better if k == 0 else '':<7s} "
                             f"{str(r.label)[:lab_w]:<{lab_w}s} {value:>10s} {n:>4s}  "
                             f"{_num(r.rank)} {ci}"[:width])
    if tests is not None and len(tests):
        scope = "all envs" if (tests["env"] == "all envs").any() else None
        t = tests[tests["env"] == scope] if scope else tests
        lines += [""] + wrap(f"permutation tests ({int(tests['reps'].iloc[0])} permutations; p_holm: Holm over the "
                             f"pairs of a metric{' and env' if scope is None else ''}"
                             f"{'; across envs' if scope else ''}; rank difference > 0: X more reliable):")
        for r in t.itertuples(index=False):
            where = "" if scope else f" {r.env}"
            lines.append(f"  {METRICS[r.metric].short:<4s}{where} {r.X} vs {r.Y}: rank difference "
                         f"{r[4]:+.2f}, p {r.p:.3g}, p_holm {r.p_holm:.3g}"[:width])
    return "\n".join(lines)
