"""Cross-environment comparisons of algorithms: rank tables and the CDF-normalized aggregate of
Jordan, Chandak, Cohen, Zhang & Thomas (ICML 2020), "Evaluating the Performance of Reinforcement
Learning Algorithms", used for tuning-agnostic studies (hyperparameters drawn per run).

Input everywhere: the per-run table of :func:`evalkit.metrics.run_scores` (one row per run;
columns ``algorithm``, ``env``, a score column, optionally ``diverged``, ``setting``, ``phase``).
This module also holds the small input checks shared by :mod:`evalkit.sensitivity`,
:mod:`evalkit.chs` and :mod:`evalkit.expected_max`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from evalkit.errors import EvalkitError


class TableError(EvalkitError, ValueError):
    """A per-run table that cannot be analysed: one line saying what is wrong and what to do."""


# ---------------------------------------------------------------------------------------------
# shared input checks and interval helper
# ---------------------------------------------------------------------------------------------

def check_run_table(table: pd.DataFrame, score: str = "score", algorithms=None,
                    what: str = "analysis") -> pd.DataFrame:
    """Validate a per-run table and return a copy with two working columns added.

    ``_score``: float score, NaN for a diverged run (``diverged`` true, or a NaN/±inf score);
    ``_diverged``: bool. Raises :class:`TableError` (a ``ValueError``) when the table is not a
    DataFrame, is empty, lacks ``algorithm``/``env``/``score``, mixes phases, names an unknown
    algorithm in ``algorithms``, or when some algorithm has no runs in an env another one has.
    """
    if not isinstance(table, pd.DataFrame):
        raise TableError(f"{what}: expected a pandas DataFrame of runs, found {type(table).__name__}")
    missing = [c for c in ("algorithm", "env", score) if c not in table.columns]
    if missing:
        raise TableError(f"{what}: the run table lacks column(s) {', '.join(map(repr, missing))} "
                         f"(columns: {', '.join(map(str, table.columns))})")
    if table.empty:
        raise TableError(f"{what}: the run table is empty")
    if "phase" in table.columns and table["phase"].nunique() > 1:
        raise TableError(f"{what}: the table mixes phases {sorted(table['phase'].unique())}; "
                         f"pass the runs of one phase (e.g. table[table.phase == 'tune'])")
    if "reason" in table.columns:
        # a per-run table with the accounting columns (evalkit.accounting): the analyses score the used
        # runs and, by their own divergence rule, the diverged ones; failed, missing, no-episode and
        # stopped-at-rung runs are not scores (the caller's note counts them)
        table = table[table["used"].astype(bool) | (table["reason"] == "diverged")]
        if table.empty:
            raise TableError(f"{what}: no usable run (every planned run failed, is missing, stopped at an "
                             f"earlier rung or finished no episode)")
    df = table.copy()
    if algorithms is not None:
        algorithms = [algorithms] if isinstance(algorithms, str) else list(algorithms)
        unknown = sorted(set(algorithms) - set(df["algorithm"]))
        if unknown:
            raise TableError(f"{what}: algorithm(s) {', '.join(unknown)} not in the table "
                             f"(found {', '.join(sorted(map(str, df['algorithm'].unique())))})")
        df = df[df["algorithm"].isin(algorithms)]
    try:
        values = pd.to_numeric(df[score], errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise TableError(f"{what}: column {score!r} must hold numbers") from None
    if "diverged" in df.columns:  # a missing flag (None/NaN) means not flagged
        flagged = np.array([bool(x) if pd.notna(x) else False for x in df["diverged"]], dtype=bool)
    else:
        flagged = np.zeros(len(df), bool)
    diverged = flagged | ~np.isfinite(values)
    df["_score"] = np.where(diverged, np.nan, values)
    df["_diverged"] = diverged
    require_all_envs(df, what)
    return df


def require_all_envs(df: pd.DataFrame, what: str) -> None:
    """Raise when some algorithm has no runs in an env that another algorithm has."""
    envs = set(df["env"])
    for alg, g in df.groupby("algorithm", sort=True):
        lack = sorted(map(str, envs - set(g["env"])))
        if lack:
            raise TableError(f"{what}: algorithm {alg!r} has no runs in env(s) {', '.join(lack)}; "
                             f"every compared algorithm needs runs in every env "
                             f"(pass algorithms=[...] to compare a subset)")


def percentile_interval(boot: np.ndarray, confidence: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval: the (1-c)/2 and (1+c)/2 quantiles of ``boot`` along ``axis``
    (linear interpolation), ignoring NaN resamples (e.g. an undefined normalization)."""
    q = [50 * (1 - confidence), 50 * (1 + confidence)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, not a warning
        low, high = np.nanpercentile(boot, q, axis=axis)
    return low, high


def check_bootstrap_args(reps: int, confidence: float, what: str) -> None:
    if not isinstance(reps, (int, np.integer)) or isinstance(reps, bool) or reps < 1:
        raise TableError(f"{what}: reps must be a positive integer, found {reps!r}")
    if not (isinstance(confidence, (float, int)) and 0 < confidence < 1):
        raise TableError(f"{what}: confidence must be in (0, 1), found {confidence!r}")


def make_rng(seed) -> np.random.Generator:
    """A Generator from an int seed, a SeedSequence or a Generator (used as given, never global)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# rank table
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RankTable:
    """Per-env ranks of algorithms by mean run score (1 = best; ties share the average rank) and
    the mean rank across envs. ``scores``: long table (algorithm, env, mean_score, rank, n_runs,
    n_diverged). Diverged runs are left out of the mean and counted; an algorithm whose every run
    diverged in an env ranks last there."""

    method: str
    n: int
    envs: tuple[str, ...]
    scores: pd.DataFrame

    def table(self) -> pd.DataFrame:
        """One row per algorithm: ``mean_rank`` then one rank column per env, best first."""
        wide = self.scores.pivot(index="algorithm", columns="env", values="rank")[list(self.envs)]
        wide.columns = [f"rank[{e}]" for e in wide.columns]
        wide.insert(0, "mean_rank", wide.mean(axis=1))
        wide = wide.reset_index().sort_values(["mean_rank", "algorithm"], kind="stable")
        wide["n_envs"] = len(self.envs)
        wide["method"] = self.method
        return wide.reset_index(drop=True)


def rank_table(table: pd.DataFrame, score: str = "score", algorithms=None) -> RankTable:
    """Rank algorithms in every env by their mean run score, and average the ranks over envs.

    ``table``: per-run table, one setting per (algorithm, env) (e.g. the evaluation runs of the
    selected settings). Higher score is better. Raises ``ValueError`` when an algorithm lacks an
    env or has several settings in one env.
    """
    df = check_run_table(table, score, algorithms, what="rank_table")
    if "setting" in df.columns:
        many = df.groupby(["algorithm", "env"])["setting"].nunique()
        if (many > 1).any():
            (alg, env), k = next(iter(many[many > 1].items()))
            raise TableError(f"rank_table: algorithm {alg!r} has {k} settings in env {env!r}; rank one "
                             f"setting per algorithm (e.g. the evaluation runs of the selected setting)")
    g = df.groupby(["algorithm", "env"], sort=True)
    long = pd.DataFrame({"mean_score": g["_score"].mean(), "n_runs": g.size(),
                         "n_diverged": g["_diverged"].sum().astype(int)}).reset_index()
    ranks = []
    for _, block in long.groupby("env", sort=True):
        key = np.where(np.isnan(block["mean_score"]), -np.inf, block["mean_score"])
        ranks.append(pd.Series(rankdata(-key, method="average"), index=block.index))
    long["rank"] = pd.concat(ranks).sort_index()
    envs = tuple(sorted(map(str, df["env"].unique())))
    return RankTable("rank of the mean run score per env (1 = best, ties averaged); mean over envs",
                     int(len(df)), envs, long)


# ---------------------------------------------------------------------------------------------
# Jordan et al. (2020): CDF-normalized aggregate performance
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AggregateRow:
    """One algorithm's aggregate normalized performance with its percentile bootstrap interval."""

    algorithm: str
    point: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class CDFAggregate:
    """CDF-normalized performance (Jordan et al. 2020): per env and aggregated over envs.

    ``per_env``: long table (algorithm, env, point, low, high, n). ``weights``: the weight of each
    (env, normalizing algorithm) pair in the aggregate: uniform, or the alpha-rank equilibrium of
    the paper's two-player game. ``n`` is the number of runs.
    """

    method: str
    weighting: str
    n: int
    reps: int
    confidence: float
    rows: tuple[AggregateRow, ...]
    per_env: pd.DataFrame
    weights: pd.DataFrame

    def table(self) -> pd.DataFrame:
        df = pd.DataFrame([r.__dict__ for r in self.rows])
        df["rank"] = rankdata(-df["point"].to_numpy(), method="min").astype(int)
        df["reps"], df["confidence"], df["method"] = self.reps, self.confidence, self.method
        return df.sort_values(["rank", "algorithm"]).reset_index(drop=True)


def _cdf_pair_means(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """E over resampled runs x of F_y(x) = P(Y <= x), per resample.

    ``x``: (n_x,) runs being normalized, ``y``: (n_y,) runs of the normalizing algorithm (diverged
    runs are -inf), ``cx``: (B, n_x) and ``cy``: (B, n_y) resample counts. Returns (B,).
    """
    below = (y[None, :] <= x[:, None]).astype(float)  # (n_x, n_y): 1[y_b <= x_a]
    return np.einsum("ba,ac,bc->b", cx, below, cy, optimize=True) / (len(x) * len(y))


def _equilibrium_weights(A: np.ndarray) -> np.ndarray:
    """alpha-rank (infinite alpha) weights over player 2's moves (env, normalizing algorithm).

    ``A``: (n_alg, n_env, n_alg) normalized performance A[i, e, k] = E F_k,e(X_i,e), the payoff of
    player 1 (who picks algorithm i) and minus the payoff of player 2 (who picks (e, k)). Follows
    the authors' code (AggregatePerformance.ipynb): a unilateral move to a profile with a higher
    payoff for the mover has probability eta, an equal payoff eta/50, eta = 1/(sum of moves - 2);
    the aggregate is (1-g)/|S| 1' (I - g C)^-1 R with g = (|S|-1)/|S|. Returns (n_env, n_alg).
    """
    n, m, _ = A.shape
    q = m * n  # player 2's moves, q = e * n + k
    pay = A.reshape(n, q)  # pay[a, q]: player 1's payoff in profile (a, q)
    size = n * q
    eta = 1.0 / ((n - 1) + (q - 1))
    tie = eta / 50

    def move(frm: np.ndarray, to: np.ndarray) -> np.ndarray:  # transition prob for mover's payoffs
        close = np.abs(to - frm) <= np.sqrt(np.finfo(float).eps) * np.maximum(np.abs(to), np.abs(frm))
        return np.where(to > frm, eta, np.where(close, tie, 0.0))

    C = np.zeros((n, q, n, q))
    # player 1 deviates a -> a2 with q fixed; player 2 deviates q -> q2 with a fixed (payoff -pay)
    p1 = move(pay[:, None, :], pay[None, :, :])  # (a, a2, q)
    p2 = move(-pay[:, :, None], -pay[:, None, :])  # (a, q, q2)
    ia, iq = np.arange(n), np.arange(q)
    C[ia[:, None, None], iq[None, None, :], ia[None, :, None], iq[None, None, :]] = p1  # C[a,q,a2,q]
    C[ia[:, None, None], iq[None, :, None], ia[:, None, None], iq[None, None, :]] = p2  # C[a,q,a,q2]
    C = C.reshape(size, size)
    C[np.arange(size), np.arange(size)] = 0.0  # staying put is what is left over
    C[np.arange(size), np.arange(size)] = 1.0 - C.sum(axis=1)
    g = (size - 1.0) / size
    u = np.linalg.solve((np.eye(size) - g * C).T, np.ones(size))  # 1'(I - gC)^-1
    w = (1 - g) / size * u
    return w.reshape(n, q).sum(axis=0).reshape(m, n)


def tuning_agnostic_aggregate(table: pd.DataFrame, reps: int = 10_000, seed=0, confidence: float = 0.95,
                              score: str = "score", weighting: str = "uniform",
                              algorithms=None) -> CDFAggregate:
    """CDF-normalized aggregate performance of Jordan et al. (2020).

    Per env e and pair of algorithms (i, k): A[i,e,k] = mean over i's runs x of F_k,e(x), with
    F_k,e(x) = P(X_k,e <= x) the empirical CDF of k's runs in env e, and A[i,e,i] = 1/2 (the
    authors' code). Each normalizing algorithm counts equally (not each run: the paper's F is per
    algorithm). A diverged run scores -inf: below every finite run, tied with other diverged runs.
    Per-env score of i = mean_k A[i,e,k]. Aggregate: ``weighting="uniform"``: mean over (e, k);
    ``"equilibrium"``: the paper's game-theoretic weights (alpha-rank of the game between an
    algorithm player and an (env, normalizer) player; costs a dense solve of size n_alg^2 * n_env
    per resample); ``"pooled"``: one CDF per env over all compared algorithms' runs pooled (each
    run counts equally, the scored algorithm's own runs included: F_e(x) = #{runs in e <= x} /
    #{runs in e}), per-env score = mean over i's runs of F_e(x), aggregate = mean over envs
    (close to ``"uniform"`` when every algorithm has the same number of runs; they differ in the
    self term). Interval: percentile bootstrap (Jordan et al. 2020's "percentile bootstrap"),
    ``reps`` resamples of runs within every (algorithm, env), whole computation redone.

    ``table``: per-run table of a tuning-agnostic study (each run's hyperparameters drawn from the
    declared distributions; the table's settings are ignored). Needs >= 2 algorithms except
    with ``"pooled"``.
    """
    what = "tuning_agnostic_aggregate"
    check_bootstrap_args(reps, confidence, what)
    if weighting not in ("uniform", "equilibrium", "pooled"):
        raise TableError(f"{what}: weighting must be 'uniform', 'equilibrium' or 'pooled', found {weighting!r}")
    df = check_run_table(table, score, algorithms, what=what)
    algs = sorted(map(str, df["algorithm"].unique()))
    envs = sorted(map(str, df["env"].unique()))
    if len(algs) < 2 and weighting != "pooled":
        raise TableError(f"{what}: CDF normalization against other algorithms needs two; found only {algs} "
                         f"(weighting='pooled' normalizes by the pooled runs)")
    df["algorithm"], df["env"] = df["algorithm"].astype(str), df["env"].astype(str)
    runs = {(a, e): np.where(g["_diverged"], -np.inf, g["_score"]).astype(float)
            for (a, e), g in df.groupby(["algorithm", "env"])}
    rng = make_rng(seed)
    n, m = len(algs), len(envs)
    A = np.full((reps + 1, n, m, n), 0.5)  # row 0: point estimate
    for j, e in enumerate(envs):
        counts = {}
        for a in algs:
            k = len(runs[(a, e)])
            counts[a] = np.vstack([np.ones((1, k)), rng.multinomial(k, np.full(k, 1.0 / k), size=reps)])
        for i, a in enumerate(algs):
            for k, b in enumerate(algs):
                if i != k or weighting == "pooled":  # pooled: own runs are part of the CDF too
                    A[:, i, j, k] = _cdf_pair_means(runs[(a, e)], runs[(b, e)], counts[a], counts[b])
    if weighting == "uniform":
        W = np.full((reps + 1, m, n), 1.0 / (m * n))
    elif weighting == "pooled":  # weight of (e, k): k's share of the runs in e; envs count equally
        sizes = np.array([[len(runs[(b, e)]) for b in algs] for e in envs], dtype=float)
        W = np.broadcast_to(sizes / sizes.sum(axis=1, keepdims=True) / m, (reps + 1, m, n))
    else:
        W = np.stack([_equilibrium_weights(A[r]) for r in range(reps + 1)])
    # per-env score: mean over normalizing algorithms (uniform, equilibrium); run-weighted (pooled)
    per_env = np.einsum("rimk,rmk->rim", A, W) * m if weighting == "pooled" else A.mean(axis=3)
    agg = np.einsum("rimk,rmk->ri", A, W)
    low, high = percentile_interval(agg[1:], confidence)
    el, eh = percentile_interval(per_env[1:], confidence)
    counts_per_alg = df.groupby("algorithm").size()
    rows = tuple(AggregateRow(a, float(agg[0, i]), float(low[i]), float(high[i]), int(counts_per_alg[a]))
                 for i, a in enumerate(algs))
    per = pd.DataFrame([{"algorithm": a, "env": e, "point": per_env[0, i, j], "low": el[i, j],
                         "high": eh[i, j], "n": len(runs[(a, e)])}
                        for i, a in enumerate(algs) for j, e in enumerate(envs)])
    weights = pd.DataFrame([{"env": e, "normalizer": b, "weight": W[0, j, k]}
                            for j, e in enumerate(envs) for k, b in enumerate(algs)])
    method = (f"CDF-normalized aggregate (Jordan et al. 2020), {weighting} weights over (env, normalizing "
              f"algorithm), percentile bootstrap over runs within (algorithm, env)")
    return CDFAggregate(method, weighting, int(len(df)), reps, confidence, rows, per, weights)
