"""A study's figures: which plots a study supports, built from its stored runs (``evalkit plot``).

The reported runs are the evaluation phase (fresh seeds of the selected setting in a tuned study,
every run otherwise). Cross-env figures use normalized scores only: min-max to the study's
declared references where every env has one, else CDF-normalized (see
:func:`evalkit.compare.normalize_runs`). One palette serves every figure of the study.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import metrics, plots
from evalkit.errors import EvalkitError
from evalkit.spec import Study

KINDS = ("curves", "eval_curves", "normalized_curves", "aggregates", "improvement", "profiles", "distributions",
         "sensitivity", "expected_max")


@dataclass
class StudyData:
    """Everything the figures and the report read, loaded once."""

    study: Study
    table: pd.DataFrame            # episode table of the reported (evaluation) phase
    runs: pd.DataFrame             # per-run scores (study metric, training episodes) of that phase
    eval_runs: pd.DataFrame        # per-run scores of the last evaluation round (empty without evaluation)
    sweep_runs: pd.DataFrame       # runs for sensitivity / expected max (tuning phase, or a swept eval phase)
    colors: dict
    normalization: str = ""
    normed: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list = field(default_factory=list)


def load(study: Study, study_dir: Path, setting: str | None = None) -> StudyData:
    """Load the stored runs of ``study`` that belong to it now (orphans left out).

    Comparison figures get one setting per algorithm and env (:mod:`evalkit.comparison`: the
    selected one in a tuned study, else the one named by ``setting``, else the best per env with a
    maximization-bias note); the sweep figures get every setting (``sweep_runs``).
    """
    from evalkit import selection
    from evalkit.status import load_current
    full = load_current(study, study_dir)
    if full.empty:
        raise EvalkitError(f"{study_dir}: no stored runs (run 'evalkit run {study.path}' first)")
    sweep = pd.DataFrame()
    if study.tuning and (full["phase"] == "tune").any():
        try:
            sweep = selection.tuning_scores(study, study_dir)
        except EvalkitError:
            sweep = pd.DataFrame()
    return assemble(study, full, sweep, setting)


def assemble(study: Study, full: pd.DataFrame, sweep: pd.DataFrame | None = None,
             setting: str | None = None) -> StudyData:
    """:class:`StudyData` from a study's episode table ``full`` (every phase) and the per-run table
    of its sweep (``sweep``; default: the evaluation runs when an algorithm has several settings)."""
    from evalkit import comparison, compare
    table = full[full["phase"] == "eval"]
    runs = metrics.run_scores(table, study.metric) if len(table) else pd.DataFrame()
    sweep = pd.DataFrame() if sweep is None else sweep
    if sweep.empty and len(runs) and runs.groupby(["algorithm", "env"])["setting"].nunique().max() > 1:
        sweep = runs
    notes = []
    if len(runs):
        runs, notes = comparison.one_setting_per_algorithm(runs, setting)
        label_of = runs.set_index("run_id")["label"]
        table = table[table["run_id"].isin(label_of.index)]
        table = table.assign(label=table["run_id"].map(label_of))
    has_eval = len(table) and (table["mode"] == "eval").any()
    eval_runs = pd.DataFrame()
    if has_eval:
        eval_runs = metrics.run_scores(table, "final", mode="eval")
        eval_runs["label"] = eval_runs["run_id"].map(runs.set_index("run_id")["label"])
    names = set(map(str, full["algorithm"].unique()))
    if len(runs):
        names |= set(map(str, runs["label"]))
    data = StudyData(study, table, runs, eval_runs, sweep, plots.palette(names), notes=notes)
    ok = runs[np.isfinite(runs["score"])] if len(runs) else runs
    if len(ok):
        data.normed, data.normalization = compare.normalize_runs(ok, study)
    return data


def score_matrices(data: StudyData) -> dict[str, np.ndarray] | None:
    """``{label: (runs, envs)}`` normalized scores, or None (with a note) when labels do not share envs."""
    from evalkit import stats
    if data.normed.empty:
        return None
    try:
        scores = stats.score_dict(data.normed, score="norm", by="label")
    except ValueError as exc:
        data.notes.append(f"cross-env aggregates skipped: {exc}")
        return None
    if len({v.shape[1] for v in scores.values()}) != 1 or min(v.shape[0] for v in scores.values()) < 2:
        data.notes.append("cross-env aggregates skipped: labels do not share their envs or have < 2 runs")
        return None
    return {k: v for k, v in scores.items() if np.isfinite(v).all()} or None


def build(data: StudyData, kinds=KINDS, size: str = "double", reps: int = 2_000, seed: int = 0) -> dict:
    """``{name: Figure}`` for every requested kind the study supports (others are skipped with a note)."""
    from evalkit import sensitivity
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise EvalkitError(f"--kind: expected some of {', '.join(KINDS)} or all, found {', '.join(unknown)}")
    colors, figs, study = data.colors, {}, data.study
    single = "single"  # one-panel figures are one column wide
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if "curves" in kinds and len(data.table):
            figs["curves"] = plots.learning_curves(data.table, "train", "mean", reps=reps, seed=seed,
                                                   colors=colors, size=size)
        if "eval_curves" in kinds and len(data.eval_runs):
            figs["eval_curves"] = plots.learning_curves(data.table, "eval", "mean", reps=reps, seed=seed,
                                                        colors=colors, size=size)
        refs = {e.name: e.reference for e in study.envs}
        envs = sorted(data.table["env"].unique()) if len(data.table) else []
        if "normalized_curves" in kinds and envs:
            if all(refs.get(e) for e in envs):
                figs["normalized_curves"] = plots.normalized_curves(data.table, refs, reps=reps, seed=seed,
                                                                    colors=colors, size=single)
            else:
                data.notes.append("no normalized learning curves across envs: declare reference = { low, high } for "
                                  "every env to get them")
        scores = score_matrices(data) if {"aggregates", "improvement", "profiles"} & set(kinds) else None
        xlabel = "normalized score" if "min-max" in data.normalization else "CDF-normalized score"
        if scores:
            if "aggregates" in kinds:
                figs["aggregates"] = plots.aggregate_intervals(scores, reps=reps, seed=seed, colors=colors,
                                                               xlabel=xlabel, size=size)
            if "improvement" in kinds and len(scores) > 1:
                figs["improvement"] = plots.improvement(scores, reps=reps, seed=seed, colors=colors, size=single)
            if "profiles" in kinds:
                figs["profiles"] = plots.performance_profiles(scores, reps=reps, seed=seed, colors=colors,
                                                              xlabel=f"{xlabel} tau", size=single)
        if "distributions" in kinds and len(data.runs):
            figs["distributions"] = plots.score_distributions(data.runs, reps=max(reps, 2_000), seed=seed,
                                                              colors=colors, ylabel=f"run score ({study.metric})",
                                                              size=size)
        sweep = data.sweep_runs
        if "sensitivity" in kinds and len(sweep):
            figs.update(_sensitivity_figures(sweep, colors, size, reps, seed, data.notes, sensitivity))
        if "expected_max" in kinds and len(sweep):
            curves = expected_max_per_env(sweep, reps, seed, data.notes)
            if len(curves):
                figs["expected_max"] = plots.expected_max(curves, colors=colors, ylabel=f"mean {study.metric}",
                                                          size=single if curves["env"].nunique() == 1 else size)
    for w in caught:
        msg = str(w.message)
        if msg not in data.notes:
            data.notes.append(msg)
    return figs


def expected_max_per_env(sweep: pd.DataFrame, reps: int, seed: int, notes: list | None = None) -> pd.DataFrame:
    """Expected max curves (Dodge et al. 2019) per algorithm and env: each setting's mean run score in
    that env (raw returns of one env; never pooled across envs), budgets 1..settings. Settings whose
    runs there all diverged or failed have no mean and are left out, counted in ``notes``."""
    from evalkit.expected_max import expected_max_curve
    frames, dropped = [], 0
    streams = iter(np.random.SeedSequence(seed).spawn(max(1, sweep[["algorithm", "env"]].drop_duplicates().shape[0])))
    for (alg, env), g in sweep.groupby(["algorithm", "env"], sort=True):
        means = g.groupby("setting")["score"].apply(lambda x: x[np.isfinite(x)].mean() if np.isfinite(x).any()
                                                    else np.nan)
        dropped += int(means.isna().sum())
        values = means.dropna().to_numpy(float)
        if len(values) < 2:
            continue
        curve = expected_max_curve(values, reps=min(reps, 1_000), seed=next(streams))
        frames.append(curve.assign(algorithm=alg, env=env))
    if dropped and notes is not None:
        notes.append(f"expected max curves leave out {dropped} (algorithm, env, setting) cells without a finite score")
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _sensitivity_figures(sweep, colors, size, reps, seed, notes, sensitivity) -> dict:
    out = {}
    swept = [c for c in sweep.columns if c.startswith("hp.")
             and sweep.groupby("algorithm")[c].nunique(dropna=True).max() > 1]
    if not swept:
        return out
    try:
        result = sensitivity.hyperparameter_sensitivity(sweep, reps=min(reps, 1_000), seed=seed)
        out["sensitivity_plane"] = plots.sensitivity_plane(result, colors=colors)
    except EvalkitError as exc:
        notes.append(f"sensitivity plane skipped: {exc}")
    for col in swept[:4]:
        try:
            curves = sensitivity.sensitivity_curves(sweep, col, reps=min(reps, 1_000), seed=seed)
            out[f"sensitivity_{col[3:]}"] = plots.sensitivity_curves(curves, colors=colors, size=size)
        except EvalkitError as exc:
            notes.append(f"sensitivity curve of {col[3:]} skipped: {exc}")
    return out


def write(figs: dict, out: Path, formats=("pdf", "png")) -> dict[str, list[Path]]:
    """Save every figure as ``out/<name>.<fmt>``; returns the paths per figure."""
    return {name: plots.save(fig, Path(out) / name, formats) for name, fig in figs.items()}
