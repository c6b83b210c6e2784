"""Expected maximum performance as a function of the tuning budget.

Dodge, Gururangan, Card, Schwartz & Smith (EMNLP 2019), "Show Your Work: Improved Reporting of
Experimental Results" (expected validation performance): with N setting scores sorted
v(1) <= ... <= v(N), the expected best of n settings drawn uniformly with replacement is

    E[max of n] = sum_i v(i) * [(i/N)^n - ((i-1)/N)^n].

The standard deviation the paper shades is sqrt(E[max^2] - E[max]^2) with the same weights.
Bands here are percentile bootstrap intervals: the N scores are redrawn with replacement and the
whole curve recomputed per resample. Compare algorithms at equal budgets n.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.cross_env import TableError, check_bootstrap_args, make_rng, percentile_interval


def _values(values, what: str) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise TableError(f"{what}: values must be a non-empty 1-D array of setting scores, found shape {v.shape}")
    if not np.isfinite(v).all():
        raise TableError(f"{what}: values contain {int((~np.isfinite(v)).sum())} NaN/inf scores (diverged "
                         f"settings); drop them or give them a finite score first")
    return v


def _budgets(n, what: str) -> np.ndarray:
    b = np.atleast_1d(np.asarray(n))
    integral = np.issubdtype(b.dtype, np.integer) or (
        np.issubdtype(b.dtype, np.floating) and bool(np.all(b == np.round(b))))
    if b.ndim != 1 or b.size == 0 or b.dtype == bool or not integral:
        raise TableError(f"{what}: budgets must be positive integers, found {n!r}")
    b = b.astype(np.int64)
    if (b < 1).any():
        raise TableError(f"{what}: budgets must be positive integers, found {b[b < 1][0]}")
    return b


def _weights(N: int, budgets: np.ndarray) -> np.ndarray:
    """(len(budgets), N): P(the max of n draws is the i-th smallest of N) = (i/N)^n - ((i-1)/N)^n."""
    i = np.arange(1, N + 1, dtype=float)
    n = budgets[:, None].astype(float)
    return (i / N) ** n - ((i - 1) / N) ** n


def expected_max_performance(values, n):
    """E[max of n scores drawn with replacement from ``values``] (Dodge et al. 2019).

    ``values``: (N,) finite scores, one per hyperparameter setting (e.g. mean run score), higher is
    better. ``n``: a positive int or an array of them (n > N is allowed: draws are with
    replacement). Returns a float for an int ``n``, else an array shaped like ``n``.
    """
    v = np.sort(_values(values, "expected_max_performance"))
    b = _budgets(n, "expected_max_performance")
    out = _weights(len(v), b) @ v
    return float(out[0]) if np.ndim(n) == 0 else out.reshape(np.shape(n))


def expected_max_curve(values, budgets=None, reps: int = 1_000, seed=0, confidence: float = 0.95) -> pd.DataFrame:
    """Expected maximum performance at each budget with a percentile bootstrap band (Dodge et al. 2019).

    ``values``: (N,) finite setting scores, higher is better. ``budgets``: positive ints (default
    1..N; budgets above N are allowed, draws being with replacement). ``reps`` resamples of the N
    scores with replacement, the whole curve recomputed on each; ``seed``: int, SeedSequence or
    Generator (no global state).

    Returns a long DataFrame, one row per budget: ``budget``, ``point`` (the exact formula),
    ``low``, ``high`` (percentile bootstrap at level ``confidence``), ``std`` (standard deviation of
    the max of n draws, the band the paper shades), and how it was computed: ``n`` (= N),
    ``reps``, ``confidence``, ``method`` (also in ``DataFrame.attrs``).
    """
    what = "expected_max_curve"
    v = np.sort(_values(values, what))
    b = _budgets(np.arange(1, len(v) + 1) if budgets is None else budgets, what)
    check_bootstrap_args(reps, confidence, what)
    W = _weights(len(v), b)
    point = W @ v
    std = np.sqrt(np.maximum(W @ v ** 2 - point ** 2, 0.0))
    rng = make_rng(seed)
    boot = np.empty((reps, len(b)))
    chunk = max(1, 2_000_000 // len(v))
    for start in range(0, reps, chunk):
        stop = min(reps, start + chunk)
        draws = np.sort(v[rng.integers(0, len(v), size=(stop - start, len(v)))], axis=1)
        boot[start:stop] = draws @ W.T
    low, high = percentile_interval(boot, confidence)
    method = "expected max of n settings (Dodge et al. 2019); percentile bootstrap over settings"
    out = pd.DataFrame({"budget": b, "point": point, "low": low, "high": high, "std": std, "n": len(v),
                        "reps": reps, "confidence": confidence, "method": method})
    out.attrs.update(method=method, n=len(v), reps=reps, confidence=confidence)
    return out


@dataclass(frozen=True)
class BudgetRankings:
    """How the ranking of algorithms by expected max performance changes with the tuning budget.

    ``rankings``: one row per common budget with each algorithm's rank (1 = best, ties share the
    best rank) and the order as text. ``crossings``: (algorithm_a, algorithm_b, budget) where the
    strict order of a pair first reverses relative to the smallest budget where they differed.
    ``flips``: whether there is any crossing.
    """

    flips: bool
    budgets: tuple[int, ...]
    rankings: pd.DataFrame
    crossings: tuple[tuple[str, str, int], ...]
    method: str = "ranking by expected max performance at each common budget (point estimates)"

    def table(self) -> pd.DataFrame:
        return self.rankings


def _curve_points(curves) -> dict:
    """{algorithm: Series point indexed by budget} from a long table or {algorithm: table}."""
    if isinstance(curves, pd.DataFrame):
        missing = {"algorithm", "budget", "point"} - set(curves.columns)
        if missing:
            raise TableError(f"ranking_flips: the curves table lacks column(s) {', '.join(sorted(missing))} "
                             f"(expected algorithm, budget, point)")
        curves = {a: g for a, g in curves.groupby("algorithm", sort=True)}
    if not isinstance(curves, dict) or len(curves) < 2:
        raise TableError("ranking_flips: expected a table with columns algorithm, budget, point (or "
                         "{algorithm: curve}) covering at least two algorithms")
    out = {}
    for a, c in curves.items():
        df = pd.DataFrame(c)
        if not {"budget", "point"} <= set(df.columns):
            raise TableError(f"ranking_flips: the curve of {a!r} needs columns 'budget' and 'point'")
        if df["budget"].duplicated().any():
            raise TableError(f"ranking_flips: algorithm {a!r} has several rows for one budget")
        out[str(a)] = df.set_index("budget")["point"].astype(float)
    return out


def budget_rankings(curves) -> BudgetRankings:
    """Rank algorithms by expected max performance at every budget they share (Dodge et al. 2019).

    ``curves``: a long table with columns ``algorithm, budget, point`` (e.g. the
    :func:`expected_max_curve` tables concatenated with an ``algorithm`` column) or
    ``{algorithm: curve table}``. A flip is a pair whose strict order at some budget is the
    reverse of its order at another; equal values never make a flip.
    """
    frames = _curve_points(curves)
    common = sorted(set.intersection(*(set(f.index) for f in frames.values())))
    if not common:
        raise TableError("ranking_flips: the curves share no budget; compute them at equal budgets")
    algs = sorted(frames)
    P = pd.DataFrame({a: frames[a].loc[common].to_numpy(float) for a in algs}, index=common)
    ranks = P.rank(axis=1, ascending=False, method="min").astype(int)
    ranks.columns = [f"rank[{a}]" for a in algs]
    ranks["order"] = [" > ".join(P.loc[b].sort_values(ascending=False, kind="stable").index) for b in common]
    ranks.index.name = "budget"
    crossings = []
    for a, b in itertools.combinations(algs, 2):
        sign = np.sign(P[a].to_numpy() - P[b].to_numpy())
        nonzero = np.flatnonzero(sign != 0)
        if len(nonzero):
            rev = nonzero[sign[nonzero] == -sign[nonzero[0]]]
            if len(rev):
                crossings.append((a, b, int(common[rev[0]])))
    return BudgetRankings(bool(crossings), tuple(int(x) for x in common), ranks.reset_index(), tuple(crossings))


def ranking_flips(curves) -> bool:
    """True when the ranking of algorithms by expected max performance changes with the budget.

    ``curves``: DataFrame with columns ``algorithm, budget, point`` (or ``{algorithm: table}``).
    See :func:`budget_rankings` for the rankings per budget and the crossing pairs.
    """
    return budget_rankings(curves).flips
