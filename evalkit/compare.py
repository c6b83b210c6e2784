"""``evalkit compare``: two algorithms, per environment and across environments.

Per env: each algorithm's mean with a 95% bootstrap CI and a (0.9, 0.95) tolerance interval next
to it (Patterson et al. 2023: the spread of runs, not only the uncertainty of the mean), the
difference of means, the tests of Colas et al. (2019) -- Welch t, Mann-Whitney -- and, because
evalkit's runs share seeds across algorithms (common random numbers), the paired t and Wilcoxon
tests on per-seed differences, with Holm's correction across envs; the probability of
improvement (Agarwal et al. 2021); and how many runs the observed difference would need.
Across envs: aggregates are computed only on normalized scores -- min-max to the study's declared
references where every env has one, otherwise CDF-normalized (P(X <= x) over both algorithms'
runs in the env, Jordan et al. 2020) -- never on pooled raw returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import accounting, metrics, stats
from evalkit.errors import EvalkitError
from evalkit.spec import Study


@dataclass(frozen=True)
class Comparison:
    per_env: pd.DataFrame
    aggregate: pd.DataFrame
    normalization: str
    notes: tuple[str, ...]

    def render(self) -> str:
        lines = ["per environment (95% CIs; tolerance intervals hold 90% of runs with 95% confidence; "
                 "p-values Holm-corrected across envs):", self.per_env.to_string(index=False), "",
                 f"across environments ({self.normalization}):", self.aggregate.to_string(index=False)]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def normalize_runs(runs: pd.DataFrame, study: Study, score: str = "score") -> tuple[pd.DataFrame, str]:
    """Add a ``norm`` column: min-max to declared references if every env has one, else CDF (P(X <= x))
    over all runs in the table for that env. Returns the table and a description of the method."""
    refs = {e.name: e.reference for e in study.envs}
    out = runs.copy()
    envs = sorted(out["env"].unique())
    if envs and all(refs.get(e) for e in envs):
        low = out["env"].map(lambda e: refs[e][0])
        high = out["env"].map(lambda e: refs[e][1])
        out["norm"] = (out[score] - low) / (high - low)
        return out, "min-max normalized to the study's declared references"
    out["norm"] = np.nan
    for env, g in out.groupby("env"):
        ref = g[score].dropna().to_numpy()
        out.loc[g.index, "norm"] = stats.cdf_normalize(g[score].to_numpy(), ref, tie="leq") if len(ref) else np.nan
    return out, "CDF-normalized per env: P(X <= x) over both algorithms' runs (Jordan et al. 2020)"


def _paired(x: pd.DataFrame, y: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    both = x.merge(y, on="seed", suffixes=("_x", "_y"))
    if len(both) < 3:
        return None
    return both["score_x"].to_numpy(float), both["score_y"].to_numpy(float)


@dataclass(frozen=True)
class _Test:
    method: str
    p_value: float


def _paired_test(x: np.ndarray, y: np.ndarray, notes: list, env: str):
    """Paired t test on per-seed differences; when the differences are constant (deterministic envs)
    the t statistic is undefined, so the exact Wilcoxon signed-rank test answers instead (p = 1 when
    every difference is 0)."""
    try:
        return stats.paired_t_test(x, y)
    except ValueError:
        d = x - y
        notes.append(f"{env}: the paired differences are constant ({d[0]:.6g}); paired t undefined, "
                     f"Wilcoxon signed-rank test instead")
        if np.all(d == 0):
            return _Test("Wilcoxon signed-rank (all differences 0)", 1.0)
        from scipy import stats as sps
        return _Test("Wilcoxon signed-rank (exact)", float(sps.wilcoxon(d, method="exact").pvalue))


def compare(study: Study, study_dir: Path, a: str, b: str, reps: int = 10_000, seed: int = 0,
            phase: str = "eval", results=None) -> Comparison:
    """Compare algorithms (labels) ``a`` and ``b`` on the stored runs of ``phase`` (``results``: the
    study's :class:`evalkit.results.StudyResults`, loaded here when not given). Every planned run
    is a row: excluded ones are named in the notes."""
    from evalkit import results as results_mod
    res = results if results is not None else results_mod.load(study, study_dir)
    runs = res.runs(phase, study.metric)
    labels = sorted(runs.loc[runs["reason"] != "missing", "label"].unique())
    for name in (a, b):
        if name not in labels:
            raise EvalkitError(f"--algorithms: {name!r} has no stored {phase} runs; found {', '.join(labels) or 'none'}")
    runs = runs[runs["label"].isin([a, b])]
    # every run is accounted for (evalkit.accounting): excluded ones are named per label and env
    notes = accounting.note_lines(runs, ("label", "env"), "excluded runs")
    runs_ok = accounting.used(runs)
    rows, pvals = [], []
    for env in sorted(runs["env"].unique()):
        x = runs_ok[(runs_ok["label"] == a) & (runs_ok["env"] == env)]
        y = runs_ok[(runs_ok["label"] == b) & (runs_ok["env"] == env)]
        if len(x) < 2 or len(y) < 2:
            notes.append(f"{env}: fewer than 2 finished runs of one algorithm; not compared")
            continue
        xs, ys = x["score"].to_numpy(float), y["score"].to_numpy(float)
        ci_x, ci_y = (stats.bootstrap_interval(v, np.mean, reps=reps, seed=seed) for v in (xs, ys))
        tol_x, tol_y = (stats.tolerance_interval(v, 0.9, 0.95, "normal") for v in (xs, ys))
        pair = _paired(x, y)
        test = _paired_test(*pair, notes, env) if pair is not None else stats.welch_t_test(xs, ys)
        mw = stats.mann_whitney_test(xs, ys)
        poi = stats.probability_of_improvement(xs[:, None], ys[:, None], reps=min(reps, 5000), seed=seed)
        pooled_sd = float(np.sqrt((xs.var(ddof=1) + ys.var(ddof=1)) / 2))
        diff = xs.mean() - ys.mean()
        try:
            need = stats.runs_needed(diff, pooled_sd) if diff != 0 and pooled_sd > 0 else None
        except ValueError:  # too small a difference to detect with any practical number of runs
            need = "> 1,000,000"
        mde = stats.minimum_detectable_effect(len(xs), len(ys), sd=pooled_sd) if pooled_sd > 0 else 0.0
        pvals.append(test.p_value)
        rows.append({"env": env, f"n {a}": len(xs), f"n {b}": len(ys),
                     f"mean {a}": f"{ci_x.point:.4g} [{ci_x.low:.4g}, {ci_x.high:.4g}]",
                     f"mean {b}": f"{ci_y.point:.4g} [{ci_y.low:.4g}, {ci_y.high:.4g}]",
                     f"tolerance {a}": f"[{tol_x.low:.4g}, {tol_x.high:.4g}]",
                     f"tolerance {b}": f"[{tol_y.low:.4g}, {tol_y.high:.4g}]",
                     "difference": round(diff, 6), "test": test.method, "p": test.p_value,
                     "p Mann-Whitney": mw.p_value,
                     f"P({a} > {b})": f"{poi.point:.3f} [{poi.low:.3f}, {poi.high:.3f}]",
                     "detectable with n": round(mde, 6), "runs needed": need})
        for label, n in ((a, len(xs)), (b, len(ys))):
            warn = stats.coverage_warning("percentile", n)
            if warn and warn not in notes:
                notes.append(f"{env}, {label}: {warn}")
    per_env = pd.DataFrame(rows)
    if len(per_env):
        per_env["p (Holm)"] = stats.holm(pvals)
    normed, method = normalize_runs(runs, study)
    scores, _, agg_notes = accounting.score_matrices(normed, score="norm", by="label")
    notes += [f"aggregate: {n}" for n in agg_notes if "left out" in n]
    agg_rows = []
    if len(scores) == 2 and min(v.shape[0] for v in scores.values()) >= 2:
        est = stats.interval_estimates(scores, ["iqm", "mean", "median", "optimality_gap"], reps=reps, seed=seed)
        for label in (a, b):
            for name, e in est[label].items():
                agg_rows.append({"algorithm": label, "aggregate": name, "point": e.point, "low": e.low,
                                 "high": e.high, "runs": e.n, "envs": scores[label].shape[1]})
        poi = stats.probability_of_improvement(scores[a], scores[b], reps=min(reps, 5000), seed=seed)
        agg_rows.append({"algorithm": f"P({a} > {b})", "aggregate": "probability of improvement",
                         "point": poi.point, "low": poi.low, "high": poi.high, "runs": poi.n,
                         "envs": scores[a].shape[1]})
    return Comparison(per_env, pd.DataFrame(agg_rows), method, tuple(notes))
