"""Cross-environment hyperparameter selection (CHS) and its two-stage evaluation.

Patterson, Neumann, White & White (RLC 2024), "Cross-environment hyperparameter tuning for
reinforcement learning"; reference code github.com/andnp/single-hyperparameter-benchmark
(``shb/shb.py``: ``SHB.cdfScale`` and ``SHB.pickParameters``).

Stage 1 (``phase = "tune"``): every setting of every algorithm, a few runs (3) per env.
* CDF normalizer per env: N_e(g) = mean over algorithms a of
  #{a's stage-1 runs in env e, all its settings, with score < g} / #{a's stage-1 runs in env e}.
  Strictly below, as ``cdfScale`` (``np.sum(env_data < data)``).
* Score of setting h of algorithm a: mean_e mean_{runs r of h in e} N_e(g_r). h* = argmax.
Stage 2 (``phase = "eval"``): many fresh-seed runs (the paper: 250) of h* per env, each scored
N_e(g) against the stage-1 CDFs; per-env score = mean over runs, overall = mean over envs.

Diverged runs (``diverged`` set or a NaN/+-inf score) follow the reference, where they are NaN:
in the normalizer they count in the denominator and are never below anything
(``NaN < g`` is false); a diverged run being scored gets N_e = 0 (nothing is below NaN).
Ties in the selection: the first setting in sorted setting-id order (``np.argmax``).
Intervals: percentile bootstrap over stage-2 runs within each (algorithm, env), the stage-1
normalizer held fixed (it defines the scale being reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evalkit.cross_env import (TableError, check_bootstrap_args, check_run_table, make_rng,
                               percentile_interval)


@dataclass(frozen=True)
class CHSNormalizer:
    """Per-env CDF normalizer N_e of stage 1. ``sorted_scores[env][alg]``: the finite stage-1 scores
    (ascending) and ``totals[env][alg]`` the number of runs including diverged ones. Call it as
    ``normalizer(env, scores)`` -> array of N_e values in [0, 1] (same shape as ``scores``)."""

    envs: tuple[str, ...]
    algorithms: tuple[str, ...]
    sorted_scores: dict = field(repr=False)
    totals: dict = field(repr=False)
    n: int = 0

    def __call__(self, env: str, scores) -> np.ndarray:
        if env not in self.sorted_scores:
            raise TableError(f"CHS: env {env!r} has no stage-1 runs (stage-1 envs: {', '.join(self.envs)})")
        g = np.asarray(scores, dtype=float)
        flat = g.reshape(-1)
        out = np.zeros(flat.shape)
        for a in self.algorithms:
            below = np.searchsorted(self.sorted_scores[env][a], flat, side="left")  # count of x < g
            out += below / self.totals[env][a]
        out /= len(self.algorithms)
        out[~np.isfinite(flat) & ~(flat == np.inf)] = 0.0  # NaN / -inf: nothing is below it
        return out.reshape(g.shape)


def _stage(table: pd.DataFrame, score: str, what: str) -> pd.DataFrame:
    df = check_run_table(table, score, what=what)
    for c in ("algorithm", "env"):
        df[c] = df[c].astype(str)
    if "setting" not in df.columns:
        raise TableError(f"{what}: the run table lacks column 'setting' (the setting id of each run)")
    df["setting"] = df["setting"].astype(str)
    return df


def stage_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of a per-run table (:func:`evalkit.metrics.run_scores`) that CHS scores: the used runs
    and the diverged ones, which the paper scores 0 and counts in the normalizer (see the module
    docstring). Failed, missing, stopped-at-rung and no-episode runs are excluded (accounted for by
    :func:`evalkit.accounting.of` on the full table)."""
    if "reason" not in runs.columns:
        return runs
    return runs[runs["used"].astype(bool) | (runs["reason"] == "diverged")]


def chs_normalizer(stage1_table: pd.DataFrame, score: str = "score") -> CHSNormalizer:
    """The stage-1 CDF normalizer N_e(g) (Patterson et al. 2024; ``SHB.cdfScale``).

    ``stage1_table``: per-run table of stage 1 (all algorithms, all settings, every env). Raises
    ``ValueError`` when an algorithm lacks an env.
    """
    df = _stage(stage1_table, score, "chs_normalizer")
    return _normalizer(df)


def _normalizer(df: pd.DataFrame) -> CHSNormalizer:
    envs = tuple(sorted(df["env"].unique()))
    algs = tuple(sorted(df["algorithm"].unique()))
    sorted_scores, totals = {}, {}
    for e in envs:
        sorted_scores[e], totals[e] = {}, {}
        for a in algs:
            x = df.loc[(df["env"] == e) & (df["algorithm"] == a), "_score"].to_numpy(float)
            sorted_scores[e][a] = np.sort(x[np.isfinite(x)])
            totals[e][a] = len(x)
    return CHSNormalizer(envs, algs, sorted_scores, totals, int(len(df)))


def _normalized(df: pd.DataFrame, norm: CHSNormalizer) -> np.ndarray:
    z = np.zeros(len(df))
    for e, idx in df.groupby("env").indices.items():
        z[idx] = norm(e, df["_score"].to_numpy(float)[idx])
    return z


def chs_scores(stage1_table: pd.DataFrame, algorithm: str, score: str = "score") -> pd.DataFrame:
    """CHS score of every setting of ``algorithm``: mean_e mean_runs N_e(g) (``pickParameters``).

    Returns a DataFrame sorted best first: setting, score, per-env columns ``score[<env>]``,
    n_runs, n_diverged, and the setting's ``hp.*`` values. A setting without runs in some env
    scores NaN (it cannot be chosen for every env). Ties keep sorted setting-id order.
    """
    df = _stage(stage1_table, score, "chs_scores")
    if algorithm not in set(df["algorithm"]):
        raise TableError(f"chs_scores: algorithm {algorithm!r} not in the stage-1 table "
                         f"(found {', '.join(sorted(df['algorithm'].unique()))})")
    return _setting_scores(df, _normalizer(df), algorithm)


def _setting_scores(df: pd.DataFrame, norm: CHSNormalizer, algorithm: str) -> pd.DataFrame:
    mine = df[df["algorithm"] == algorithm].copy()
    mine["_z"] = _normalized(mine, norm)
    per_env = mine.groupby(["setting", "env"])["_z"].mean().unstack("env").reindex(columns=list(norm.envs))
    per_env = per_env.sort_index()
    out = pd.DataFrame({"setting": per_env.index, "score": per_env.mean(axis=1, skipna=False).to_numpy()})
    for e in norm.envs:
        out[f"score[{e}]"] = per_env[e].to_numpy()
    g = mine.groupby("setting")
    out["n_runs"] = g.size().reindex(per_env.index).to_numpy()
    out["n_diverged"] = g["_diverged"].sum().reindex(per_env.index).to_numpy().astype(int)
    hp_cols = [c for c in mine.columns if isinstance(c, str) and c.startswith("hp.") and mine[c].notna().any()]
    if hp_cols:
        out = out.join(g[hp_cols].first().reindex(per_env.index).reset_index(drop=True))
    # best first; stable sort keeps setting-id order among ties, so row 0 is np.argmax's choice
    order = np.argsort(-np.nan_to_num(out["score"].to_numpy(), nan=-np.inf), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def select_chs(stage1_table: pd.DataFrame, score: str = "score") -> dict[str, str]:
    """h* per algorithm: ``{algorithm: setting id}``, the setting with the highest CHS score
    (``SHB.pickParameters``; ties go to the first setting id in sorted order, as ``np.argmax``).
    Its score and hyperparameter values are row 0 of :func:`chs_scores`. Raises ``ValueError``
    when no setting of an algorithm has runs in every env, or when every stage-1 run of an
    algorithm diverged (all its settings would score 0 and the choice would be arbitrary)."""
    df = _stage(stage1_table, score, "select_chs")
    norm = _normalizer(df)
    out = {}
    for a in norm.algorithms:
        if df.loc[df["algorithm"] == a, "_diverged"].all():
            raise TableError(f"select_chs: every stage-1 run of algorithm {a!r} diverged; no setting can be "
                             f"chosen (check its hyperparameter ranges)")
        table = _setting_scores(df, norm, a)
        if not np.isfinite(table["score"].iloc[0]):
            raise TableError(f"select_chs: no setting of algorithm {a!r} has stage-1 runs in every env")
        out[a] = str(table["setting"].iloc[0])
    return out


@dataclass(frozen=True)
class CHSScore:
    """CHS score of one algorithm's stage-2 runs in one env (or ``env = "all"``: mean over envs)."""

    algorithm: str
    env: str
    setting: str
    point: float
    low: float
    high: float
    n: int
    n_diverged: int


@dataclass(frozen=True)
class CHSEvaluation:
    """Stage-2 CHS scores against the stage-1 CDFs, with percentile bootstrap intervals."""

    method: str
    n: int
    reps: int
    confidence: float
    rows: tuple[CHSScore, ...]
    normalizer: CHSNormalizer = field(repr=False)

    def table(self) -> pd.DataFrame:
        df = pd.DataFrame([r.__dict__ for r in self.rows])
        df["reps"], df["confidence"], df["method"] = self.reps, self.confidence, self.method
        return df

    def overall(self) -> pd.DataFrame:
        """One row per algorithm: the mean over envs, best first."""
        t = self.table()
        return t[t["env"] == "all"].sort_values("point", ascending=False).reset_index(drop=True)


def chs_evaluate(stage1_table: pd.DataFrame, stage2_table: pd.DataFrame, reps: int = 10_000, seed=0,
                 confidence: float = 0.95, score: str = "score") -> CHSEvaluation:
    """Score stage-2 runs against the stage-1 CDFs (Patterson et al. 2024, stage 2).

    ``stage1_table``: stage-1 runs (defines N_e); ``stage2_table``: fresh-seed runs of the chosen
    setting per algorithm and env (one setting per (algorithm, env); it may differ across envs,
    e.g. after per-env selection). Per (algorithm, env): mean over runs of N_e(g); overall: mean
    over envs. Percentile bootstrap over stage-2 runs, stratified by (algorithm, env), ``reps``
    resamples. Raises ``ValueError`` when a stage-2 algorithm or env has no stage-1 runs, or an
    algorithm lacks an env.
    """
    what = "chs_evaluate"
    check_bootstrap_args(reps, confidence, what)
    s1 = _stage(stage1_table, score, what + " (stage 1)")
    s2 = _stage(stage2_table, score, what + " (stage 2)")
    norm = _normalizer(s1)
    unknown_env = sorted(set(s2["env"]) - set(norm.envs))
    if unknown_env:
        raise TableError(f"{what}: stage-2 env(s) {', '.join(unknown_env)} have no stage-1 runs to normalize against")
    missing_env = sorted(set(norm.envs) - set(s2["env"]))
    if missing_env:
        raise TableError(f"{what}: stage 2 has no runs in env(s) {', '.join(missing_env)} of stage 1")
    unknown_alg = sorted(set(s2["algorithm"]) - set(norm.algorithms))
    if unknown_alg:
        raise TableError(f"{what}: stage-2 algorithm(s) {', '.join(unknown_alg)} have no stage-1 runs")
    many = s2.groupby(["algorithm", "env"])["setting"].nunique()
    if (many > 1).any():
        (a, e), k = next(iter(many[many > 1].items()))
        raise TableError(f"{what}: stage 2 has {k} settings of algorithm {a!r} in env {e!r}; expected the one "
                         f"chosen setting")
    s2["_z"] = _normalized(s2, norm)
    rng = make_rng(seed)
    rows = []
    for a, ga in s2.groupby("algorithm", sort=True):
        envs = sorted(ga["env"].unique())
        boots, pts = [], []
        for e in envs:
            g = ga[ga["env"] == e]
            z = g["_z"].to_numpy(float)
            boot = np.empty(reps)
            step = max(1, 4_000_000 // len(z))  # resamples per chunk, memory bounded
            for start in range(0, reps, step):
                stop = min(reps, start + step)
                boot[start:stop] = z[rng.integers(0, len(z), size=(stop - start, len(z)))].mean(axis=1)
            lo, hi = percentile_interval(boot, confidence)
            rows.append(CHSScore(a, e, str(g["setting"].iloc[0]), float(z.mean()), float(lo), float(hi),
                                 len(z), int(g["_diverged"].sum())))
            boots.append(boot)
            pts.append(z.mean())
        overall = np.mean(boots, axis=0)
        lo, hi = percentile_interval(overall, confidence)
        settings = ga["setting"].unique()
        rows.append(CHSScore(a, "all", str(settings[0]) if len(settings) == 1 else "per-env",
                             float(np.mean(pts)), float(lo), float(hi), len(ga), int(ga["_diverged"].sum())))
    method = ("CHS (Patterson et al. 2024): stage-2 runs scored by the stage-1 CDF normalizer, mean over runs "
              "then envs; percentile bootstrap over stage-2 runs within (algorithm, env), normalizer fixed")
    return CHSEvaluation(method, int(len(s2)), reps, confidence, tuple(rows), norm)
