"""Hyperparameter sensitivity and effective hyperparameter dimensionality.

Adkins, Bowling & White (NeurIPS 2024), "A Method for Evaluating Hyperparameter Sensitivity in
Reinforcement Learning"; reference code github.com/jadkins99/hyperparameter_sensitivity
(``analysis/utils.py``: tuned scores and sensitivity; ``analysis/plots.py``: dimensionality).

Notation (per algorithm): e an environment, h a hyperparameter setting, p(e, h) the mean over
the setting's runs of the run score (e.g. AUC = mean episodic return).

* Percentile normalization, per env: lo_e, hi_e = the 5th and 95th percentiles (numpy's linear
  interpolation) of the scores of all runs in env e of every setting of every compared algorithm;
  Gamma(e, h) = (p(e, h) - lo_e) / (hi_e - lo_e), not clipped.
* Per-environment tuned score: mean_e max_h Gamma(e, h).
* Cross-environment tuned score: max_h mean_e Gamma(e, h), over settings that diverged in no env.
* Sensitivity: Phi = per-environment tuned - cross-environment tuned.
* Effective hyperparameter dimensionality: with the settings' hyperparameters fixed at the
  cross-environment best h*, tune the best subset of k hyperparameters per env (k = 0..H,
  exhaustive over subsets); the fewest k reaching 95% of the per-environment tuned score,
  linearly interpolated between integer k; 0 when the cross-env tuned score reaches it already.

Divergence: a run is diverged when its ``diverged`` flag is set or its score is NaN/+-inf. A
setting diverged in env e when any of its runs there did (its mean is then undefined) or when it
has no runs in e; it is left out of the max in env e and out of the cross-environment choice.
Diverged runs are left out of the percentile pool. As in the reference code, the partially tuned
scores (0 < k < H) use only settings that diverged in no env; k = H is the per-environment tuned
score over all settings.

Uncertainty: percentile bootstrap over runs. Each resample draws runs with replacement within
every (algorithm, setting, env) cell and recomputes everything (percentiles, Gamma, maxima, h*,
the subset search). Vectorised over resamples, in chunks bounded in memory.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evalkit.cross_env import (TableError, check_bootstrap_args, check_run_table, make_rng,
                               percentile_interval)

PERCENTILES = (5.0, 95.0)
MAX_HYPERPARAMETERS = 12  # the subset search visits 2^H subsets per distinct h*
_CHUNK_ELEMENTS = 4_000_000  # resamples x runs per chunk (a few arrays of this size in memory)


# ---------------------------------------------------------------------------------------------
# result objects
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    point: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.point:.4g} [{self.low:.4g}, {self.high:.4g}]"


@dataclass(frozen=True)
class AlgorithmSensitivity:
    """One algorithm's scores on the normalized scale (Adkins et al. 2024).

    ``per_env``: per-env tuned score max_h Gamma(e, h) per env. ``tuning_curve[k]``: score when the
    best k hyperparameters are tuned per env and the rest fixed at the cross-env best
    (``tuning_curve[0]`` = cross-env tuned, ``tuning_curve[-1]`` = per-env tuned), with the tuned
    subsets in ``tuned_subsets``. ``dimensionality`` is NaN where the 95% target cannot be defined
    (per-env tuned score <= 0 on the normalized scale). ``n_runs``: runs of this algorithm.
    """

    algorithm: str
    n_runs: int
    n_settings: int
    n_envs: int
    hyperparameters: tuple[str, ...]
    per_env_tuned: Interval
    cross_env_tuned: Interval
    sensitivity: Interval
    dimensionality: Interval
    important_hyperparameters: tuple[str, ...]
    cross_env_setting: str
    per_env_best_setting: dict = field(default_factory=dict)
    per_env: dict = field(default_factory=dict)
    tuning_curve: tuple[float, ...] = ()
    tuned_subsets: tuple[tuple[str, ...], ...] = ()
    n_settings_diverged: int = 0

    def as_row(self) -> dict:
        row = {"algorithm": self.algorithm}
        for name in ("per_env_tuned", "cross_env_tuned", "sensitivity", "dimensionality"):
            est = getattr(self, name)
            row.update({name: est.point, f"{name}_low": est.low, f"{name}_high": est.high})
        row.update(important_hyperparameters=",".join(self.important_hyperparameters),
                   hyperparameters=",".join(self.hyperparameters), cross_env_setting=self.cross_env_setting,
                   n_settings=self.n_settings, n_settings_diverged=self.n_settings_diverged,
                   n_envs=self.n_envs, n_runs=self.n_runs)
        return row


@dataclass(frozen=True)
class SensitivityResult:
    """Hyperparameter sensitivity of every compared algorithm; ``table()`` is one row each.

    ``bounds[env] = (lo, hi)``: the percentile normalization anchors (empty when
    ``normalize=False``). ``n``: runs analysed. ``notes``: anything the reader must know (e.g.
    resamples where the normalization was undefined and that the intervals leave out).
    """

    method: str
    n: int
    reps: int
    confidence: float
    normalize: bool
    envs: tuple[str, ...]
    algorithms: tuple[AlgorithmSensitivity, ...]
    bounds: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __getitem__(self, algorithm: str) -> AlgorithmSensitivity:
        for a in self.algorithms:
            if a.algorithm == algorithm:
                return a
        raise KeyError(algorithm)

    def table(self) -> pd.DataFrame:
        """One row per algorithm: point, low, high of each quantity, and how it was computed."""
        df = pd.DataFrame([a.as_row() for a in self.algorithms])
        df["reps"], df["confidence"], df["method"] = self.reps, self.confidence, self.method
        return df

    def per_env_table(self) -> pd.DataFrame:
        """Long table: algorithm, env, per-env tuned score (point, low, high), best setting."""
        return pd.DataFrame([{"algorithm": a.algorithm, "env": e, "point": est.point, "low": est.low,
                              "high": est.high, "best_setting": a.per_env_best_setting[e]}
                             for a in self.algorithms for e, est in a.per_env.items()])

    def curve_table(self) -> pd.DataFrame:
        """Long table: algorithm, number of hyperparameters tuned per env, score, which ones."""
        return pd.DataFrame([{"algorithm": a.algorithm, "tuned": k, "score": s,
                              "hyperparameters": ",".join(t)}
                             for a in self.algorithms
                             for k, (s, t) in enumerate(zip(a.tuning_curve, a.tuned_subsets))])


# ---------------------------------------------------------------------------------------------
# layout of the runs for vectorised resampling
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    """Runs sorted by (env, algorithm, setting): cells and env blocks are contiguous slices."""

    envs: tuple[str, ...]
    algorithms: tuple[str, ...]
    settings: dict  # algorithm -> tuple of setting ids (sorted)
    scores: np.ndarray  # (N,) run scores, NaN for diverged runs
    diverged: np.ndarray  # (N,) bool
    run_cell: np.ndarray  # (N,) cell index of each run
    cell_start: np.ndarray  # (C,) first run of each cell
    cell_size: np.ndarray  # (C,) runs per cell
    cell_env: np.ndarray  # (C,) env index of each cell
    env_bounds: np.ndarray  # (E+1,) run offsets of the env blocks
    cells: dict  # algorithm -> (E, S_a) cell index, -1 where the setting has no runs in the env
    values: dict  # algorithm -> DataFrame of hp values, index = setting id (same order)
    runs: dict  # algorithm -> number of runs


def _hp_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if isinstance(c, str) and c.startswith("hp.")]


def _layout(df: pd.DataFrame, what: str) -> _Layout:
    hp_cols = _hp_columns(df)
    df = df.copy()
    for c in ("algorithm", "env"):
        df[c] = df[c].astype(str)
    if "setting" not in df.columns:  # identify settings by their hyperparameter values
        df["setting"] = df[hp_cols].astype(str).agg("|".join, axis=1) if hp_cols else "default"
    df["setting"] = df["setting"].astype(str)
    df = df.sort_values(["env", "algorithm", "setting"], kind="stable").reset_index(drop=True)
    envs = tuple(sorted(df["env"].unique()))
    algorithms = tuple(sorted(df["algorithm"].unique()))
    for e in envs:
        if not np.isfinite(df.loc[df["env"] == e, "_score"]).any():
            raise TableError(f"{what}: every run in env {e!r} diverged; nothing to compare there")
    keys = df[["env", "algorithm", "setting"]]
    new_cell = np.r_[True, (keys.iloc[1:].to_numpy() != keys.iloc[:-1].to_numpy()).any(axis=1)]
    run_cell = np.cumsum(new_cell) - 1
    cell_start = np.flatnonzero(new_cell)
    cell_size = np.diff(np.r_[cell_start, len(df)])
    env_index = {e: i for i, e in enumerate(envs)}
    cell_env = df["env"].map(env_index).to_numpy()[cell_start]
    env_bounds = np.r_[0, np.cumsum(df["env"].value_counts().reindex(list(envs)).to_numpy())]
    settings, cells, values, runs = {}, {}, {}, {}
    cell_keys = keys.iloc[cell_start]
    for a in algorithms:
        mine = df[df["algorithm"] == a]
        ids = tuple(sorted(mine["setting"].unique()))
        settings[a], runs[a] = ids, len(mine)
        grid = np.full((len(envs), len(ids)), -1, dtype=np.int64)
        sel = cell_keys["algorithm"].to_numpy() == a
        col = {s: j for j, s in enumerate(ids)}
        for c, e, s in zip(np.flatnonzero(sel), cell_keys["env"].to_numpy()[sel], cell_keys["setting"].to_numpy()[sel]):
            grid[env_index[e], col[s]] = c
        cells[a] = grid
        values[a] = _setting_values(mine, ids, hp_cols, a, what)
    return _Layout(envs, algorithms, settings, df["_score"].to_numpy(float), df["_diverged"].to_numpy(bool),
                   run_cell, cell_start, cell_size, cell_env, env_bounds, cells, values, runs)


def _setting_values(runs: pd.DataFrame, ids: tuple, hp_cols: list[str], alg: str, what: str) -> pd.DataFrame:
    """Hyperparameter values per setting of one algorithm; raises when a setting's runs disagree."""
    own = [c for c in hp_cols if runs[c].notna().any()]
    if not own:
        return pd.DataFrame(index=pd.Index(ids, name="setting"))
    as_text = runs[own].astype(str)
    # per (setting, env): a study's env_config may set a hyperparameter per env (the same in every
    # setting), which is not a sweep
    spread = as_text.groupby([runs["setting"], runs["env"]]).nunique().groupby(level=0).max()
    if (spread > 1).any().any():
        s, c = next((s, c) for c in own for s in spread.index if spread.at[s, c] > 1)
        raise TableError(f"{what}: runs of setting {s!r} of algorithm {alg!r} have different {c} values; "
                         f"a setting id must name one hyperparameter configuration")
    return runs.groupby("setting")[own].first().reindex(list(ids))


# ---------------------------------------------------------------------------------------------
# the vectorised pipeline
# ---------------------------------------------------------------------------------------------

def _row_percentiles(x: np.ndarray, q: tuple[float, ...]) -> np.ndarray:
    """Percentiles of every row of ``x`` (b, n), NaN entries left out, numpy's 'linear' method
    (same interpolation formula as ``np.percentile``). Returns (b, len(q)); NaN for empty rows."""
    s = np.sort(x, axis=1)  # NaN sort last
    k = (~np.isnan(x)).sum(axis=1)
    pos = (k[:, None] - 1) * (np.asarray(q, float)[None, :] / 100.0)
    lo = np.clip(np.floor(pos), 0, None).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(k[:, None] - 1, 0))
    t = pos - lo
    a = np.take_along_axis(s, lo, axis=1)
    b = np.take_along_axis(s, hi, axis=1)
    diff = b - a
    out = a + diff * t
    out = np.where(t >= 0.5, b - diff * (1 - t), out)  # numpy's _lerp, for identical rounding
    out[k == 0] = np.nan
    return out


def _normalized_cells(L: _Layout, idx: np.ndarray, normalize: bool):
    """Resampled cell means, normalized. ``idx``: (b, N) run indices (resampled runs).

    Returns ``gamma`` (b, C) (NaN where diverged or undefined), ``div`` (b, C) bool and the
    percentile anchors (b, E, 2) (None without normalization).
    """
    sc = L.scores[idx]
    dv = L.diverged[idx]
    p = np.add.reduceat(np.where(dv, 0.0, sc), L.cell_start, axis=1) / L.cell_size
    div = np.logical_or.reduceat(dv, L.cell_start, axis=1)
    p[div] = np.nan
    if not normalize:
        return p, div, None
    bounds = np.stack([_row_percentiles(sc[:, L.env_bounds[e]:L.env_bounds[e + 1]], PERCENTILES)
                       for e in range(len(L.envs))], axis=1)
    lo, hi = bounds[:, L.cell_env, 0], bounds[:, L.cell_env, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = (p - lo) / (hi - lo)
    gamma[~(hi > lo)] = np.nan  # equal percentiles: normalization undefined in this resample
    return gamma, div, bounds


def _algorithm_view(L: _Layout, alg: str, gamma: np.ndarray, div: np.ndarray):
    """(b, E, S) normalized scores and divergence of one algorithm's settings (missing = diverged)."""
    grid = L.cells[alg]
    missing = grid < 0
    G = gamma[:, np.where(missing, 0, grid)]
    D = div[:, np.where(missing, 0, grid)] | missing[None]
    G[:, missing] = np.nan
    return G, D


def _tuned(G: np.ndarray, D: np.ndarray):
    """Per-env tuned (b,) and per env (b, E), cross-env tuned (b,), h* (b,), bad settings (b, S)."""
    each = np.where(D, -np.inf, G).max(axis=2)
    bad = D.any(axis=1)
    with np.errstate(invalid="ignore"):
        across = np.where(bad, -np.inf, G.mean(axis=1))
    return each.mean(axis=1), each, across.max(axis=1), across.argmax(axis=1), bad


def _tuning_curve(G, D, bad, hstar, per_env, cross, codes, fixed):
    """Best score with k hyperparameters tuned per env, k = 0..H (Adkins et al. 2024; plots.py of the reference code).

    ``codes``: (S, H) integer codes of the analysed hyperparameters' values; ``fixed``: (S, F)
    codes of swept hyperparameters left out of the analysis (always held at h*'s values).
    Returns the curve (b, H+1) and the index of the best subset per (resample, k) (b, H+1).
    """
    b, H = len(hstar), codes.shape[1]
    curve = np.full((b, H + 1), np.nan)
    best = np.zeros((b, H + 1), dtype=np.int64)
    curve[:, 0], curve[:, H] = cross, per_env
    subsets = [list(itertools.combinations(range(H), k)) for k in range(H + 1)]
    # with hyperparameters left out of the analysis (held at h*), tuning all H named ones per env is
    # not the per-env tuned score over every hyperparameter: k = H is computed like the other k
    top = H if fixed.shape[1] else H - 1
    if top < 1:
        return curve, best, subsets
    Gc = np.where(bad[:, None, :] | D, -np.inf, G)  # partial tuning: settings diverged nowhere
    for u in np.unique(hstar):
        rows = np.flatnonzero(hstar == u)
        Gr = Gc[rows]
        same = codes == codes[u]  # (S, H)
        keep = (fixed == fixed[u]).all(axis=1)
        cache = {}
        for k in range(1, top + 1):
            vals = np.empty((len(subsets[k]), len(rows)))
            for j, tuned in enumerate(subsets[k]):
                held = [i for i in range(H) if i not in tuned]
                mask = keep & same[:, held].all(axis=1)
                key = mask.tobytes()
                if key not in cache:
                    cache[key] = Gr[:, :, mask].max(axis=2).mean(axis=1)
                vals[j] = cache[key]
            curve[rows, k] = vals.max(axis=0)
            best[rows, k] = vals.argmax(axis=0)
    return curve, best, subsets


def _dimensionality(curve: np.ndarray, fraction: float, per_env: np.ndarray | None = None) -> np.ndarray:
    """Interpolated fewest number of tuned hyperparameters reaching ``fraction`` x per-env tuned.

    ``curve``: (b, H+1) non-decreasing in k. ``per_env``: (b,) per-env tuned score over every
    hyperparameter (default ``curve[:, H]``; differs when a subset is analysed and the rest are
    held at h*). 0 when k = 0 reaches the target (or nothing is gained by tuning per env); NaN when
    the target exceeds the per-env tuned score (it is <= 0) or tuning the analysed subset per env
    does not reach it.
    """
    b, H = curve.shape[0], curve.shape[1] - 1
    cross, per = curve[:, 0], curve[:, H]
    full = per if per_env is None else per_env
    target = fraction * full
    d = np.full(b, np.nan)
    with np.errstate(invalid="ignore"):
        zero = (cross >= target) | (cross >= full)
        reach = curve >= target[:, None]
    d[zero] = 0.0
    ok = ~zero & reach.any(axis=1)
    if ok.any():
        j = reach[ok].argmax(axis=1)  # first k reaching the target; >= 1 since k = 0 does not
        r = np.flatnonzero(ok)
        lo, hi = curve[r, j - 1], curve[r, j]
        d[r] = (j - 1) + (target[r] - lo) / (hi - lo)
    return d


def _codes(values: pd.DataFrame, names: list[str]) -> np.ndarray:
    if not names:
        return np.zeros((len(values), 0), dtype=np.int64)
    return np.column_stack([pd.factorize(values[n].astype(str))[0] for n in names])


def _resample_indices(L: _Layout, rng: np.random.Generator, b: int) -> np.ndarray:
    """(b, N) run indices: every run replaced by a uniform draw from its own cell."""
    u = rng.random((b, len(L.scores)))
    size = L.cell_size[L.run_cell]
    return L.cell_start[L.run_cell] + np.minimum((u * size).astype(np.int64), size - 1)


def _chunks(reps: int, n_runs: int):
    size = max(1, min(reps, _CHUNK_ELEMENTS // max(n_runs, 1)))
    done = 0
    while done < reps:
        yield min(size, reps - done)
        done += size


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------

def _analysed_hyperparameters(L: _Layout, hyperparameters, max_hyperparameters: int, what: str):
    """Per algorithm: (analysed names, swept names held fixed). Validates the user's list."""
    swept = {}
    for a in L.algorithms:
        v = L.values[a]
        swept[a] = [c[3:] for c in v.columns if v[c].astype(str).nunique() > 1]
        if len(L.settings[a]) > 1 and not swept[a]:
            raise TableError(f"{what}: algorithm {a!r} has {len(L.settings[a])} settings but no hp.* column "
                             f"tells them apart; the analysis needs each setting's hyperparameter values")
    if hyperparameters is not None:
        names = [hyperparameters] if isinstance(hyperparameters, str) else list(hyperparameters)
        names = [n[3:] if n.startswith("hp.") else n for n in names]
        known = sorted(set().union(*swept.values()))
        unknown = [n for n in names if n not in known]
        if unknown:
            raise TableError(f"{what}: hyperparameter(s) {', '.join(unknown)} are not swept by any compared "
                             f"algorithm (swept: {', '.join(known) or 'none'})")
    out = {}
    for a in L.algorithms:
        mine = swept[a] if hyperparameters is None else [n for n in names if n in swept[a]]
        if len(mine) > max_hyperparameters:
            raise TableError(f"{what}: algorithm {a!r} sweeps {len(mine)} hyperparameters; the exhaustive subset "
                             f"search (2^{len(mine)} subsets) is capped at {max_hyperparameters}: pass "
                             f"hyperparameters=[...] to analyse fewer")
        out[a] = (mine, [n for n in swept[a] if n not in mine])
    return out


def hyperparameter_sensitivity(table: pd.DataFrame, hyperparameters=None, reps: int = 10_000,
                               confidence: float = 0.95, seed=0, normalize: bool = True,
                               score: str = "score", algorithms=None, target_fraction: float = 0.95,
                               max_hyperparameters: int = MAX_HYPERPARAMETERS) -> SensitivityResult:
    """Sensitivity Phi and effective hyperparameter dimensionality (Adkins et al. 2024).

    ``table``: per-run table (one row per run, one phase): ``algorithm``, ``env``, ``setting`` (runs
    with equal algorithm and setting are seeds of one configuration; derived from the ``hp.*``
    values when absent), ``hp.<name>`` columns, the ``score`` column (higher is better) and
    optionally ``diverged``. ``hyperparameters``: names (without ``hp.``) to count in the
    dimensionality; default every swept one; swept ones not named stay at the cross-env best.
    ``normalize=False``: scores are already on a normalized scale. ``algorithms``: the subset to
    compare (the percentile pool is over these). ``seed``: int, SeedSequence or Generator.

    Percentile bootstrap (``reps`` resamples, runs redrawn within each (algorithm, setting, env),
    whole pipeline recomputed) at level ``confidence``. Raises ``ValueError`` on: no algorithm
    with more than one setting, an algorithm missing an env, an algorithm whose settings all
    diverged (in one env, or each in some env), equal 5th/95th percentiles.
    """
    what = "hyperparameter_sensitivity"
    check_bootstrap_args(reps, confidence, what)
    if not 0 < target_fraction <= 1:
        raise TableError(f"{what}: target_fraction must be in (0, 1], found {target_fraction!r}")
    df = check_run_table(table, score, algorithms, what=what)
    L = _layout(df, what)
    if all(len(L.settings[a]) == 1 for a in L.algorithms):
        raise TableError(f"{what}: no algorithm has more than one hyperparameter setting; sensitivity needs a "
                         f"sweep (declare sweep = {{...}} for an algorithm in the study file)")
    hps = _analysed_hyperparameters(L, hyperparameters, max_hyperparameters, what)
    codes = {a: (_codes(L.values[a], [f"hp.{n}" for n in hps[a][0]]),
                 _codes(L.values[a], [f"hp.{n}" for n in hps[a][1]])) for a in L.algorithms}

    @np.errstate(invalid="ignore", divide="ignore")  # -inf/NaN cases are checked and reported below
    def run(idx: np.ndarray):
        gamma, div, bounds = _normalized_cells(L, idx, normalize)
        out = {}
        for a in L.algorithms:
            G, D = _algorithm_view(L, a, gamma, div)
            per, each, cross, hstar, bad = _tuned(G, D)
            curve, best, subsets = _tuning_curve(G, D, bad, hstar, per, cross, *codes[a])
            dim = _dimensionality(curve, target_fraction, per)
            if not hps[a][0] and len(L.settings[a]) > 1:
                dim[:] = np.nan  # settings differ only in hyperparameters left out of the analysis
            out[a] = dict(per=per, each=each, cross=cross, phi=per - cross, dim=dim, hstar=hstar,
                          curve=curve, best=best, subsets=subsets, G=G, D=D, bad=bad)
        return out, bounds

    point, bounds = run(np.arange(len(L.scores))[None, :])
    if normalize:
        for e, (lo, hi) in zip(L.envs, bounds[0]):
            if not hi > lo:
                raise TableError(f"{what}: in env {e!r} the 5th and 95th percentiles of the run scores are equal "
                                 f"({lo:.6g}); percentile normalization is undefined (pass normalize=False)")
    for a in L.algorithms:
        _check_defined(point[a], L, a, what)

    rng = make_rng(seed)
    keys = ("per", "each", "cross", "phi", "dim")
    boot = {a: {k: [] for k in keys} for a in L.algorithms}
    for b in _chunks(reps, len(L.scores)):
        res, _ = run(_resample_indices(L, rng, b))
        for a in L.algorithms:
            for k in keys:
                boot[a][k].append(res[a][k])
    notes = []
    results = []
    for a in L.algorithms:
        bs = {k: np.concatenate(v) for k, v in boot[a].items()}
        bad_rs = int(np.isnan(bs["per"]).sum())
        if bad_rs:
            notes.append(f"{a}: {bad_rs} of {reps} resamples had an undefined normalization and are left out")
        undefined_dim = int(np.isnan(bs["dim"]).sum()) - bad_rs
        if not hps[a][0] and len(L.settings[a]) > 1:
            notes.append(f"{a}: none of the analysed hyperparameters is swept; dimensionality not computed")
        elif undefined_dim > 0:
            why = ("per-env tuned score <= 0, or tuning only " + ",".join(hps[a][0]) + " per env (the other "
                   "swept ones at the cross-env best) does not reach the target") if hps[a][1] else \
                "per-env tuned score <= 0"
            notes.append(f"{a}: dimensionality undefined ({why}) in {undefined_dim} resamples")
        if hps[a][1]:
            notes.append(f"{a}: analysed {','.join(hps[a][0]) or 'none'}; {','.join(hps[a][1])} held at the "
                         f"cross-env best setting (the tuning curve's last point tunes only the analysed ones)")
        results.append(_summarise(a, L, point[a], bs, hps[a][0], confidence))
    method = (f"Adkins et al. 2024: {'5th/95th percentile normalization per env (pooled over every compared algorithm by definition: an algorithm`s scores depend on which algorithms are compared), ' if normalize else ''}"
              f"per-env vs cross-env tuned score, {int(target_fraction * 100)}% dimensionality; "
              f"percentile bootstrap over runs within (algorithm, setting, env)")
    bnd = {e: (float(lo), float(hi)) for e, (lo, hi) in zip(L.envs, bounds[0])} if normalize else {}
    return SensitivityResult(method, int(len(L.scores)), reps, confidence, normalize, L.envs, tuple(results),
                             bnd, tuple(notes))


def _check_defined(p: dict, L: _Layout, a: str, what: str) -> None:
    each = p["each"][0]
    if np.isneginf(each).any():
        e = L.envs[int(np.flatnonzero(np.isneginf(each))[0])]
        raise TableError(f"{what}: every setting of algorithm {a!r} diverged in env {e!r}; its tuned score is "
                         f"undefined (leave it out with algorithms=[...])")
    if np.isneginf(p["cross"][0]):
        raise TableError(f"{what}: every setting of algorithm {a!r} diverged in at least one env; the "
                         f"cross-environment tuned score is undefined (leave it out with algorithms=[...])")


def _summarise(a: str, L: _Layout, p: dict, bs: dict, names: list[str], confidence: float) -> AlgorithmSensitivity:
    def est(key: str, point: float, col=None) -> Interval:
        x = bs[key] if col is None else bs[key][:, col]
        lo, hi = percentile_interval(x, confidence)
        return Interval(float(point), float(lo), float(hi))

    ids = L.settings[a]
    curve, best, subsets = p["curve"][0], p["best"][0], p["subsets"]
    H = len(names)
    tuned = tuple(() if k == 0 else tuple(names) if k == H else tuple(names[i] for i in subsets[k][best[k]])
                  for k in range(H + 1))
    d = float(p["dim"][0])
    important = () if not np.isfinite(d) or d == 0 else tuned[min(H, math.ceil(d - 1e-12))]
    masked = np.where(p["D"][0], -np.inf, p["G"][0])  # (E, S)
    return AlgorithmSensitivity(
        algorithm=a, n_runs=L.runs[a], n_settings=len(ids), n_envs=len(L.envs), hyperparameters=tuple(names),
        per_env_tuned=est("per", p["per"][0]), cross_env_tuned=est("cross", p["cross"][0]),
        sensitivity=est("phi", p["phi"][0]), dimensionality=est("dim", d), important_hyperparameters=important,
        cross_env_setting=ids[int(p["hstar"][0])],
        per_env_best_setting={e: ids[int(masked[j].argmax())] for j, e in enumerate(L.envs)},
        per_env={e: est("each", p["each"][0][j], j) for j, e in enumerate(L.envs)},
        tuning_curve=tuple(float(x) for x in curve), tuned_subsets=tuned,
        n_settings_diverged=int(p["bad"][0].sum()))


def sensitivity_curves(table: pd.DataFrame, hyperparameter: str, mode: str = "best", reps: int = 1_000,
                       seed=0, confidence: float = 0.95, normalize: bool = True, score: str = "score",
                       algorithms=None) -> pd.DataFrame:
    """Performance against one hyperparameter, per algorithm and env, for plotting.

    For every value v of ``hyperparameter``: ``mode="best"``: max of Gamma(e, h) over the settings
    with that value (the other hyperparameters tuned per env); ``"marginal"``: mean of Gamma(e, h)
    over those settings (the others marginalised over the sweep). Settings diverged in env e are
    left out there (counted in ``n_diverged``). Gamma is the percentile-normalized score of
    :func:`hyperparameter_sensitivity` (raw setting means with ``normalize=False``); bands are
    percentile bootstrap intervals, runs redrawn within (algorithm, setting, env).

    Returns a long DataFrame: algorithm, env, hyperparameter, value, point, low, high, n_settings,
    n_diverged, mode, reps, confidence. Algorithms without that hyperparameter are left out.
    """
    what = "sensitivity_curves"
    check_bootstrap_args(reps, confidence, what)
    if mode not in ("best", "marginal"):
        raise TableError(f"{what}: mode must be 'best' or 'marginal', found {mode!r}")
    name = hyperparameter[3:] if hyperparameter.startswith("hp.") else hyperparameter
    df = check_run_table(table, score, algorithms, what=what)
    L = _layout(df, what)
    col = f"hp.{name}"
    having = [a for a in L.algorithms if col in L.values[a].columns]
    if not having:
        known = sorted({c[3:] for a in L.algorithms for c in L.values[a].columns})
        raise TableError(f"{what}: no compared algorithm has hyperparameter {name!r} "
                         f"(found: {', '.join(known) or 'none'})")
    groups = {}
    for a in having:
        v = L.values[a][col]
        keys, uniques = pd.factorize(v.astype(str))
        first = {k: v.iloc[int(np.flatnonzero(keys == k)[0])] for k in range(len(uniques))}
        groups[a] = [(first[k], keys == k) for k in range(len(uniques))]

    def run(idx):
        gamma, div, _ = _normalized_cells(L, idx, normalize)
        out = {}
        for a in having:
            G, D = _algorithm_view(L, a, gamma, div)
            vals = []
            for _, mask in groups[a]:
                g, d = G[:, :, mask], D[:, :, mask]
                with np.errstate(invalid="ignore"):
                    if mode == "best":
                        x = np.where(d, -np.inf, g).max(axis=2)
                        x[np.isneginf(x)] = np.nan
                    else:
                        kept = (~d).sum(axis=2)
                        x = np.where(d, 0.0, g).sum(axis=2) / np.where(kept > 0, kept, np.nan)
                vals.append(x)
            out[a] = (np.stack(vals, axis=2), D)  # (b, E, V)
        return out

    point = run(np.arange(len(L.scores))[None, :])
    rng = make_rng(seed)
    boot = {a: [] for a in having}
    for b in _chunks(reps, len(L.scores)):
        res = run(_resample_indices(L, rng, b))
        for a in having:
            boot[a].append(res[a][0])
    rows = []
    for a in having:
        low, high = percentile_interval(np.concatenate(boot[a]), confidence)
        pt, D = point[a]
        for j, e in enumerate(L.envs):
            for k, (value, mask) in enumerate(groups[a]):
                rows.append({"algorithm": a, "env": e, "hyperparameter": name, "value": value,
                             "point": pt[0, j, k], "low": low[j, k], "high": high[j, k],
                             "n_settings": int(mask.sum()), "n_diverged": int(D[0, j, mask].sum())})
    out = pd.DataFrame(rows)
    out["mode"], out["reps"], out["confidence"] = mode, reps, confidence
    return out
