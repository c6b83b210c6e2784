"""Score tables for ``evalkit report``: per algorithm x env, with 95% bootstrap confidence intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from evalkit import metrics, store
from evalkit.spec import Study


def run_table(study: Study, study_dir: Path, phase: str = "eval", mode: str = "train") -> pd.DataFrame:
    """Per-run scores of the stored runs of one phase, with the study's metric."""
    from evalkit.status import load_current
    table = load_current(study, study_dir)
    table = table[table["phase"] == phase]
    return metrics.run_scores(table, study.metric, mode=mode)


def score_table(runs: pd.DataFrame, reps: int = 10_000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per (label, env): n, diverged, mean and IQM with percentile bootstrap CIs over runs.

    Diverged runs are counted and left out of the estimates (their scores are NaN).
    """
    rows = []
    rng = np.random.default_rng(seed)
    for (label, env), g in runs.groupby(["label", "env"], sort=True):
        x = g["score"].to_numpy(float)
        x = x[np.isfinite(x)]
        row = {"algorithm": label, "env": env, "n": len(x), "diverged": int(g["diverged"].sum())}
        if len(x) >= 2 and np.ptp(x) > 0:
            ci = sps.bootstrap((x,), np.mean, n_resamples=reps, confidence_level=confidence, method="percentile",
                               random_state=rng).confidence_interval
            row.update(mean=x.mean(), low=ci.low, high=ci.high)
        elif len(x) >= 2:  # every run scored the same: the bootstrap interval is that point
            row.update(mean=x[0], low=x[0], high=x[0])
        else:
            row.update(mean=x.mean() if len(x) else np.nan, low=np.nan, high=np.nan)
        row["iqm"] = sps.trim_mean(x, 0.25) if len(x) else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["algorithm", "env", "n", "diverged", "mean", "low", "high", "iqm"])


def text_report(study: Study, study_dir: Path, reps: int = 10_000, seed: int = 0) -> str:
    """The plain-text report printed by ``evalkit report``."""
    runs = run_table(study, study_dir)
    if runs.empty:
        return f"{study.name}: no completed evaluation runs in {study_dir} yet (run 'evalkit run' first)"
    table = score_table(runs, reps=reps, seed=seed)
    lines = [f"study {study.name}: metric {study.metric} (training episodes), {reps} bootstrap resamples, "
             f"95% percentile CIs of the mean over runs", ""]
    for env, g in table.groupby("env", sort=True):
        lines.append(f"== {env}")
        for _, r in g.iterrows():
            ci = f"[{r['low']:9.2f}, {r['high']:9.2f}]" if np.isfinite(r["low"]) else "[   n/a   ,    n/a   ]"
            div = f"  ({r['diverged']} diverged)" if r["diverged"] else ""
            lines.append(f"  {r['algorithm']:>20s}  mean {r['mean']:9.2f} {ci}  IQM {r['iqm']:9.2f}  n={r['n']}{div}")
        lines.append("")
    return "\n".join(lines)
