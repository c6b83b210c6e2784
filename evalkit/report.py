"""Score tables for ``evalkit report``: per algorithm x env, with 95% bootstrap confidence intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from evalkit import metrics
from evalkit.labels import setting_text
from evalkit.spec import Study


def run_table(study: Study, study_dir: Path, phase: str = "eval", mode: str = "train", results=None) -> pd.DataFrame:
    """Per-run scores of one phase with the study's metric: one row per planned run (excluded runs
    stay rows with their reason, :mod:`evalkit.accounting`)."""
    from evalkit import results as results_mod
    res = results if results is not None else results_mod.load(study, study_dir)
    return res.runs(phase, study.metric, mode=mode)


def score_table(runs: pd.DataFrame, reps: int = 10_000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per (label, env): n used, planned, excluded runs with reasons, mean and IQM with percentile
    bootstrap CIs over the used runs (:mod:`evalkit.accounting`: excluded runs are counted, never
    silently dropped).
    """
    from evalkit import accounting
    rows = []
    rng = np.random.default_rng(seed)
    for (label, env), g in runs.groupby(["label", "env"], sort=True):
        x = accounting.used(g)["score"].to_numpy(float)
        acct = accounting.of(g)
        row = {"algorithm": label, "env": env, "n": len(x), "diverged": int(g["diverged"].sum()),
               "planned": acct.planned, "excluded": acct.reasons_text()}
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
    return pd.DataFrame(rows, columns=["algorithm", "env", "n", "diverged", "mean", "low", "high", "iqm", "planned",
                                       "excluded"])


def text_report(study: Study, study_dir: Path, reps: int = 10_000, seed: int = 0, results=None,
                setting: str | None = None) -> str:
    """The plain-text report printed by ``evalkit report`` (``results``: the command's one load; one
    setting per algorithm and env, as the comparison figures:
    :func:`evalkit.comparison.one_setting_per_algorithm`)."""
    from evalkit import comparison
    from evalkit import results as results_mod
    results = results_mod.ensure(results, study, study_dir)
    runs = run_table(study, study_dir, results=results)
    if runs.empty or not (runs["reason"] != "missing").any():
        return f"{study.name}: no completed evaluation runs in {study_dir} yet (run 'evalkit run' first)"
    runs, notes = comparison.one_setting_per_algorithm(runs, setting)
    table = score_table(runs, reps=reps, seed=seed)
    lines = [f"study {study.name}: metric {study.metric} (training episodes), {reps} bootstrap resamples, "
             f"95% percentile CIs of the mean over runs", ""]
    for env, g in table.groupby("env", sort=True):
        lines.append(f"== {env}")
        for _, r in g.iterrows():
            ci = f"[{r['low']:9.2f}, {r['high']:9.2f}]" if np.isfinite(r["low"]) else "[   n/a   ,    n/a   ]"
            div = f" of {r['planned']} planned (excluded: {r['excluded']})" if r["excluded"] else ""
            lines.append(f"  {r['algorithm']:>20s}  mean {r['mean']:9.2f} {ci}  IQM {r['iqm']:9.2f}  n={r['n']}{div}")
        lines.append("")
    lines += [f"note: {n}" for n in notes] + ([""] if notes else [])
    lines += _tuning_lines(study, study_dir, results)
    return "\n".join(lines)


def _tuning_lines(study: Study, study_dir: Path, results) -> list[str]:
    """For a tuned study: each algorithm's tuning budget and the setting chosen per env."""
    chosen = results.selection if study.tuning else None
    if not chosen:
        return []
    cat = results.catalog
    # the budget is the sum over what actually ran: every stored tuning run, every halving rung
    tune = cat[(cat["phase"] == "tune") & (cat["status"] == "done")]
    lines = [f"tuning ({study.tuning.search} search, {chosen['method']}):"]
    for alg in study.algorithms:
        g = tune[tune["algorithm"] == alg.name]
        lines.append(f"  {alg.name}: budget {g['setting'].nunique()} settings, {len(g)} runs, "
                     f"{int(g['budget'].sum()):,} env steps")
        for sel in chosen["selected"]:
            if sel["algorithm"] == alg.name:
                values = setting_text(sel["setting"])
                lines.append(f"    {sel['env']}: {values}")
    return lines + [""]


# ---------------------------------------------------------------------------------------------
# the Markdown / HTML report
# ---------------------------------------------------------------------------------------------

FIGURE_CAPTIONS = {
    "curves": "Learning curves (training episodes) on a common step grid (openrlbenchmark, rliable): each run's "
              "value at a grid point is the mean return of its episodes ending in that window, carried forward "
              "from its last finished episode where none ends there, never past its budget; then the mean over "
              "runs with a 95% percentile bootstrap band over runs. n = runs per curve (runs enter at their "
              "first finished episode); runs without an episode are excluded as no-episode and counted in "
              "the legend.",
    "eval_curves": "Evaluation curves: mean return of the greedy/deterministic evaluation episodes over runs, "
                   "each round's value held until the next round (the same grid rule), 95% bootstrap bands.",
    "normalized_curves": "Sample efficiency across envs: IQM over runs and envs of min-max normalized returns "
                         "against the fraction of the budget, 95% stratified-bootstrap bands.",
    "aggregates": "Aggregate scores across envs (Agarwal et al. 2021): median, IQM, mean and optimality gap of "
                  "normalized run scores with 95% stratified-bootstrap CIs.",
    "improvement": "Probability of improvement P(X > Y) averaged over envs, 95% stratified-bootstrap CIs; "
                   "0.5 means no difference.",
    "profiles": "Performance profiles: fraction of runs (over runs and envs) with a normalized score above tau, "
                "95% bootstrap bands.",
    "distributions": "Run scores per env: dots are runs; beside them +-1 standard error (grey, not an interval), "
                     "the 95% bootstrap CI of the mean (thick) and a tolerance interval holding 90% of runs with "
                     "95% confidence (thin).",
    "sensitivity_plane": "Performance-sensitivity plane (Adkins et al. 2024): per-env tuned normalized score "
                         "against sensitivity, 95% bootstrap CIs.",
    "expected_max": "Expected maximum performance against the number of hyperparameter settings tried "
                    "(Dodge et al. 2019), per env from each setting's mean run score there (returns of different "
                    "envs are never pooled), 95% bootstrap bands over settings.",
}


def _versions() -> str:
    import platform
    from importlib import metadata
    import evalkit
    parts = [f"evalkit {evalkit.__version__}", f"Python {platform.python_version()}"]
    for pkg in ("numpy", "scipy", "pandas", "torch", "gymnasium", "ray", "rliable"):
        try:
            parts.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def _fmt_ci(point: float, low: float, high: float) -> str:
    if not np.isfinite(point):
        return "n/a"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{point:.4g}"
    return f"{point:.4g} [{low:.4g}, {high:.4g}]"


def _mean_ci_text(x: np.ndarray, reps: int, seed: int, empty: str = "n/a") -> str:
    """``mean [low, high]`` with a 95% percentile bootstrap CI over the finite run scores ``x``; the
    mean alone when the runs cannot vary (fewer than 2, or all equal); ``empty`` without runs."""
    from evalkit import stats
    if len(x) >= 2 and np.ptp(x) > 0:
        ci = stats.bootstrap_interval(x, np.mean, reps=reps, seed=seed)
        return _fmt_ci(ci.point, ci.low, ci.high)
    return _fmt_ci(float(np.mean(x)), np.nan, np.nan) if len(x) else empty


def _config_text(study: Study, alg) -> str:
    """The resolved config per env (issue 21: the agent's per-env defaults, then the study's
    config), as the values that differ from the agent's generic defaults."""
    from evalkit import spec, status
    if status.is_imported(study):  # no agent to resolve against: the stored config keys
        return ", ".join(f"{k}={v}" for k, v in sorted(alg.config.items())) or "defaults"
    base = spec.agent_defaults(alg)
    per_env = {e.name: ", ".join(f"{k}={v}" for k, v in sorted(spec.resolved_config(alg, e, {}, base).items())
                                 if base.get(k, object()) != v)
               for e in study.envs_of(alg)}
    if len(set(per_env.values())) == 1:
        return next(iter(per_env.values())) or "defaults"
    return "; ".join(f"{e}: {t or 'defaults'}" for e, t in per_env.items())


def _summary_tables(study: Study) -> tuple[pd.DataFrame, pd.DataFrame]:
    algs = []
    for a in study.algorithms:
        envs = ", ".join(e.name for e in study.envs_of(a))
        config = _config_text(study, a)
        sweep = "; ".join(f"{ax.name}: {ax.kind} {list(ax.values)}" for ax in a.sweep) or "-"
        algs.append({"algorithm": a.name, "agent": a.agent, "envs": envs, "config": config, "sweep": sweep})
    envs = [{"env": e.name, "id": e.id, "steps": e.steps,
             "reference (low, high)": f"{e.reference[0]:g}, {e.reference[1]:g}" if e.reference else "-"}
            for e in study.envs]
    return pd.DataFrame(algs), pd.DataFrame(envs)


def results_table(data, reps: int, seed: int) -> pd.DataFrame:
    """Per (label, env): runs done / planned / failed / missing / diverged, mean [95% CI], IQM [95% CI],
    median, the (0.9, 0.95) tolerance interval, and the last evaluation round's mean [95% CI].
    ``n`` counts the used runs; ``excluded`` the others with their reasons (:mod:`evalkit.accounting`)."""
    from evalkit import accounting, stats
    runs = data.runs
    rows = []
    evals = data.eval_runs
    for k, ((label, env), g) in enumerate(runs.groupby(["label", "env"], sort=True)):
        x = accounting.used(g)["score"].to_numpy(float)
        acct = accounting.of(g)
        row = {"algorithm": label, "env": env, "n": len(x), "planned": acct.planned,
               "excluded": acct.reasons_text() or "-", "diverged": int(g["diverged"].sum())}
        if len(x) >= 2 and np.ptp(x) > 0:
            est = stats.interval_estimates({"a": x[:, None]}, ["mean", "iqm"], reps=reps, seed=seed + k)["a"]
            tol = stats.tolerance_interval(x, 0.9, 0.95, "normal")
            row.update(mean=_fmt_ci(est["mean"].point, est["mean"].low, est["mean"].high),
                       iqm=_fmt_ci(est["iqm"].point, est["iqm"].low, est["iqm"].high),
                       median=float(np.median(x)), tolerance=f"[{tol.low:.4g}, {tol.high:.4g}]")
        else:
            row.update(mean=_fmt_ci(x.mean(), np.nan, np.nan) if len(x) else "n/a",
                       iqm=_fmt_ci(float(sps.trim_mean(x, 0.25)), np.nan, np.nan) if len(x) else "n/a",
                       median=float(np.median(x)) if len(x) else np.nan,
                       tolerance="[{0:.4g}, {0:.4g}]".format(x[0]) if len(x) >= 2 else "n/a")
        if len(evals):
            eg = evals[(evals["label"] == label) & (evals["env"] == env)]
            e = accounting.used(eg)["score"].to_numpy(float)
            text = _mean_ci_text(e, reps, seed + k)
            if len(e) < len(eg):  # runs without a finished evaluation round are counted, not hidden
                text += f" ({len(e)} of {len(eg)} runs: {accounting.of(eg).reasons_text()})"
            row["last evaluation"] = text
        rows.append(row)
    return pd.DataFrame(rows)


def _pairwise(data, reps: int, seed: int, max_labels: int = 6) -> pd.DataFrame:
    """Per env and pair of labels: difference of means, Welch test (Holm across the table), P(X > Y),
    and the runs per algorithm a two-sided Welch test would need to detect the observed difference."""
    from evalkit import accounting, stats
    runs = accounting.used(data.runs)
    rows, pvals = [], []
    for env, g in runs.groupby("env", sort=True):
        labels = sorted(g["label"].unique())
        if len(labels) < 2 or len(labels) > max_labels:
            continue
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                x = g[g["label"] == a]["score"].to_numpy(float)
                y = g[g["label"] == b]["score"].to_numpy(float)
                if len(x) < 2 or len(y) < 2:
                    continue
                diff = float(x.mean() - y.mean())
                sd = float(np.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2))
                if sd > 0:
                    test = stats.welch_t_test(x, y)
                    p = test.p_value
                else:
                    p = 0.0 if diff != 0 else 1.0
                poi = stats.probability_of_improvement(x[:, None], y[:, None], reps=min(reps, 2000), seed=seed)
                try:
                    need = stats.runs_needed(diff, sd) if diff != 0 and sd > 0 else None
                except ValueError:  # a difference too small to detect with any practical number of runs
                    need = "> 1,000,000"
                pvals.append(p)
                rows.append({"env": env, "X": a, "Y": b, "mean X - mean Y": diff, "p (Welch)": p,
                             "P(X > Y)": _fmt_ci(poi.point, poi.low, poi.high),
                             "runs needed (80% power)": "-" if need is None else str(need)})
    df = pd.DataFrame(rows)
    if len(df):
        df.insert(5, "p (Holm)", stats.holm(pvals))
    return df


MAX_PAIRWISE_ROWS = 30  # larger pairwise tables are summarised in the report, in full in pairwise.csv


def _pairwise_summary(pair: pd.DataFrame) -> pd.DataFrame:
    """Per env: pairs compared, pairs significant after Holm (p < 0.05), and the largest |difference|."""
    rows = []
    for env, g in pair.groupby("env", sort=True):
        top = g.loc[g["mean X - mean Y"].abs().idxmax()]
        rows.append({"env": env, "pairs": len(g), "p (Holm) < 0.05": int((g["p (Holm)"] < 0.05).sum()),
                     "largest difference": f"{top['X']} - {top['Y']}: {top['mean X - mean Y']:.4g}"})
    return pd.DataFrame(rows)


def _aggregate_table(scores: dict, reps: int, seed: int) -> pd.DataFrame:
    from evalkit import stats
    est = stats.interval_estimates(scores, ["iqm", "mean", "median", "optimality_gap"], reps=reps, seed=seed)
    rows = []
    for label, e in sorted(est.items()):
        rows.append({"algorithm": label, "runs": e["iqm"].n, "envs": scores[label].shape[1],
                     **{name: _fmt_ci(v.point, v.low, v.high) for name, v in e.items()}})
    return pd.DataFrame(rows)


def _warnings(data, status: pd.DataFrame) -> list[str]:
    from evalkit import stats
    out = []
    for r in status.itertuples():
        if r.failed:
            out.append(f"{r.algorithm} on {r.env} ({r.phase}): {r.failed} failed runs (see failures/; "
                       f"'evalkit run' retries them)")
        if r.missing:
            out.append(f"{r.algorithm} on {r.env} ({r.phase}): {r.missing} of {r.planned} runs missing "
                       f"(the study is partial; tables use the {r.done} runs done)")
        if r.diverged:
            out.append(f"{r.algorithm} on {r.env} ({r.phase}): {r.diverged} diverged runs, left out of the estimates")
    if len(data.runs):  # every excluded run of the reported tables, with its reason
        from evalkit import accounting
        out += accounting.note_lines(data.runs, ("label", "env"), "reported runs")
    if status.attrs.get("pending_selection"):
        out.append("the tuning phase has not finished: no setting is selected and no evaluation runs exist yet")
    if len(data.runs):
        n = int(data.runs.groupby(["label", "env"])["used"].sum().min())
        warn = stats.coverage_warning("percentile", n)
        if warn:
            out.append(f"as few as {warn}")
        if n < 10:
            out.append(f"{n} runs per cell: tolerance intervals are wide and only large differences are "
                       f"detectable (see 'runs needed'; Colas et al. 2019 recommend 10-20 runs or more)")
    study = data.study
    if study.tuning is None:
        swept = [a.name for a in study.algorithms if a.sweep]
        if not swept and len(study.algorithms) > 1:
            out.append("no algorithm was tuned in this study: the comparison is between default or hand-set "
                       "hyperparameters, which favours whichever agent's defaults were tuned for these envs "
                       "(add a [tuning] block for a fair comparison)")
    return list(dict.fromkeys(out + data.notes))  # each warning once, in order


def build_report(study: Study, study_dir: Path, out: Path | None = None, reps: int = 10_000, seed: int = 0,
                 figures: bool = True, formats=("pdf", "png"), size: str = "double", results=None,
                 setting: str | None = None):
    """The report of a study (complete or partial) as a :class:`evalkit.document.Document`, with its
    figures written to ``out/figures``. Returns (document, {figure: paths}). ``results``: the
    command's one load (:func:`evalkit.results.load`); loaded here when not given."""
    from evalkit import figures as figs_mod
    from evalkit import results as results_mod
    from evalkit.document import Document
    from evalkit.status import study_status
    out = Path(out or study_dir)
    results = results_mod.ensure(results, study, study_dir)
    data = figs_mod.load(study, study_dir, results=results, setting=setting)
    status = study_status(study, study_dir, results=results)
    doc = Document(f"evalkit report: {study.name}")
    doc.heading("Study")
    ev = (f"evaluation every {study.evaluation.every:,} steps, {study.evaluation.episodes} episodes"
          if study.evaluation else "no evaluation episodes")
    tune = (f"tuning: search {study.tuning.search}, select {study.tuning.select}, {study.tuning.runs} runs per "
            f"setting on tuning seeds disjoint from the reported ones" + (
                f", budget {study.tuning.budget} settings per algorithm" if study.tuning.budget else "")
            if study.tuning else "no tuning phase")
    doc.text(f"Study file {study.path}; root seed {study.seed}; {study.runs} runs (seeds) per algorithm and env; "
             f"metric {study.metric} over training episodes; {ev}; {tune}.")
    if study.description:
        doc.text(study.description)
    doc.text(f"Software: {_versions()}. Generated {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC.")
    algs, envs = _summary_tables(study)
    doc.table(algs, "Algorithms: agent, envs, fixed configuration and swept hyperparameters", "algorithms")
    doc.table(envs, "Environments: gymnasium id, env steps per run, normalization references", "envs")
    doc.heading("Runs")
    doc.table(status[["algorithm", "env", "phase", "planned", "done", "failed", "missing", "diverged"]],
              "Runs per cell: planned, done, failed, missing and diverged", "status")
    if len(data.runs):
        doc.heading("Results per environment")
        doc.table(results_table(data, reps, seed),
                  f"Metric {study.metric} (training episodes) per run; mean and IQM over runs with 95% percentile "
                  f"bootstrap CIs ({reps} resamples); tolerance: normal-theory interval holding 90% of runs with 95% "
                  f"confidence; last evaluation: mean of the last evaluation round, 95% CI", "results")
        pair = _pairwise(data, reps, seed)
        if len(pair) > MAX_PAIRWISE_ROWS:  # summarised; every pair is in pairwise.csv beside the report
            out.mkdir(parents=True, exist_ok=True)
            pair.to_csv(out / "pairwise.csv", index=False)
            doc.table(_pairwise_summary(pair), f"Pairwise comparisons per env, summarised ({len(pair)} pairs; "
                      f"every pair with its test, P(X > Y) and runs needed is in pairwise.csv): pairs, pairs "
                      f"with Holm-corrected p < 0.05, and the largest difference of means", "pairwise")
        elif len(pair):
            doc.table(pair, "Pairwise comparisons per env: difference of means, Welch t-test p-value (Holm-corrected "
                            "across the table), probability of improvement with 95% CI, runs per algorithm needed "
                            "to detect the observed difference with 80% power at alpha 0.05", "pairwise")
        scores = figs_mod.score_matrices(data)
        if scores and len(data.runs["env"].unique()) > 1:
            doc.heading("Across environments")
            doc.table(_aggregate_table(scores, reps, seed),
                      f"Aggregates over runs and envs of {data.normalization}; 95% stratified-bootstrap CIs "
                      f"(Agarwal et al. 2021); raw returns of different envs are never pooled", "aggregates")
    _reliability_section(doc, data, out, reps, seed, figures, formats, size)
    audit_warnings = _tuning_sections(doc, study, study_dir, data, reps, seed, results)
    written = {}
    if figures:
        built = figs_mod.build(data, size=size, reps=min(reps, 2_000), seed=seed)
        written = figs_mod.write(built, out / "figures", formats)
        if written:
            doc.heading("Figures")
            for name, paths in written.items():
                png = next((p for p in paths if p.suffix == ".png"), None)
                if png is None:
                    continue
                caption = FIGURE_CAPTIONS.get(name, FIGURE_CAPTIONS["sensitivity_plane"] if name.startswith(
                    "sensitivity_plane") else f"Sensitivity to {name[12:]}: best normalized score per value, "
                    f"95% bootstrap bands (Adkins et al. 2024)." if name.startswith("sensitivity_") else name)
                doc.figure(png, str(png.relative_to(out)), caption)
    doc.heading("Warnings")
    warnings_ = list(dict.fromkeys(_warnings(data, status) + audit_warnings))
    doc.items(warnings_ or ["none"])
    return doc, written


def tuned_results_table(chosen: dict, budgets: pd.DataFrame | None, data, reps: int, seed: int) -> pd.DataFrame:
    """Per (algorithm, env) of a tuned study: tuning budget (settings, runs, env steps), chosen
    hyperparameters, tuning score, and the evaluation-seed mean with its 95% bootstrap CI."""
    budget = budgets.set_index("algorithm") if budgets is not None and len(budgets) else None
    runs = data.runs
    rows = []
    for k, s in enumerate(chosen["selected"]):
        alg, env = s["algorithm"], s["env"]
        row = {"algorithm": alg, "env": env}
        if budget is not None and alg in budget.index:
            b = budget.loc[alg]
            row["tuning budget"] = f"{int(b['settings'])} settings, {int(b['runs'])} runs, {int(b['env_steps']):,} steps"
        row["chosen hyperparameters"] = (setting_text(s["setting"]) if s["setting"] else "defaults (nothing swept)")
        row["tuning score"] = s["tuning_score"]
        cell = runs[(runs["algorithm"] == alg) & (runs["env"] == env)] if len(runs) else runs
        x = cell.loc[cell["used"].astype(bool), "score"].to_numpy(float) if len(cell) else np.array([])
        row["evaluation runs"] = len(x)
        excluded = cell.loc[~cell["used"].astype(bool), "reason"].value_counts() if len(cell) else []
        row["excluded"] = ", ".join(f"{k} {r}" for r, k in excluded.items()) if len(excluded) else "-"
        row["evaluation score"] = _mean_ci_text(x, reps, seed + k, empty="not run yet")
        rows.append(row)
    return pd.DataFrame(rows)


def _tuning_sections(doc, study: Study, study_dir: Path, data, reps: int, seed: int, results=None) -> list[str]:
    """Tuning (budget and chosen hyperparameters), audit, sensitivity and CHS, when the study has them.
    Returns warnings for the audit's warn and fail verdicts."""
    from evalkit import audit, selection, sensitivity
    from evalkit.errors import EvalkitError
    warned = []
    if study.tuning:
        doc.heading("Tuning")
        chosen = results.selection if results is not None else selection.load_selection(study_dir)
        try:
            result = audit.audit(study, study_dir, reps=min(reps, 1_000), seed=seed, results=data.results)
        except EvalkitError as exc:
            doc.text(f"audit not available: {exc}")
            result = None
        if result is not None and len(result.budgets):
            doc.table(result.budgets, "Tuning budget per algorithm, recomputed from the stored tuning runs",
                      "budgets")
        if chosen:
            table = tuned_results_table(chosen, result.budgets if result is not None else None, data, reps, seed)
            doc.table(table, f"Result per algorithm: the tuning budget it received, the setting selected "
                             f"({chosen['method']}) and its score on fresh evaluation seeds (metric "
                             f"{study.metric}, mean with 95% percentile bootstrap CI)", "selection")
        if result is not None:
            doc.heading("Tuning-fairness audit", 3)
            verdicts = pd.DataFrame(sorted(result.verdicts().items()), columns=["algorithm", "verdict"])
            doc.table(verdicts, "Verdict per algorithm (the worst of its rules)", "verdicts")
            doc.table(result.table(), "Audit rules and their evidence", "audit")
            if result.notes:  # runs the audit excluded, and the budget its expected-max curves compare at
                doc.items(list(result.notes))
            for f in result.findings:
                if f.verdict != "pass":
                    warned.append(f"tuning audit, {f.algorithm}: {f.verdict.upper()} ({f.rule}): {f.evidence}")
        if study.tuning.select == "cross_env":
            from evalkit import chs
            try:
                # CHS scores stage 2 (full budget) against stage-1 CDFs at the same, full budget
                stage1 = selection.tuning_scores(study, study_dir, data.results)
                if len(stage1) and len(data.runs):
                    res = chs.chs_evaluate(stage1, data.runs, reps=reps, seed=seed)
                    t = res.table()
                    doc.heading("CHS", 3)
                    doc.table(t.drop(columns=[c for c in ("method", "reps", "confidence") if c in t]),
                              f"CHS score of the stage-2 runs (Patterson et al. 2024): {res.method}", "chs")
            except (EvalkitError, ValueError) as exc:
                doc.text(f"CHS not available: {exc}")
    sweep = data.sweep_runs
    if len(sweep):
        try:
            res = sensitivity.hyperparameter_sensitivity(sweep, reps=min(reps, 2_000), seed=seed)
            t = res.table()
            keep = ["algorithm", "per_env_tuned", "cross_env_tuned", "sensitivity", "sensitivity_low",
                    "sensitivity_high", "dimensionality", "important_hyperparameters", "n_settings", "n_runs"]
            doc.heading("Hyperparameter sensitivity", 3)
            doc.table(t[[c for c in keep if c in t]], f"Adkins et al. (2024): {res.method}", "sensitivity")
            from evalkit import accounting
            rung = sweep["rung"] if "rung" in sweep.columns else None
            at = (f"settings compared at successive-halving rung {int(rung.max())} (every setting ran it); "
                  if rung is not None and (rung >= 0).any() else "")
            doc.items([f"{at}{accounting.summary_note(sweep, 'runs')}", *accounting.note_lines(sweep),
                       *res.notes])
        except (EvalkitError, ValueError) as exc:
            doc.text(f"sensitivity not available: {exc}")
    return warned


def _reliability_section(doc, data, out: Path, reps: int, seed: int, figures: bool, formats, size: str) -> None:
    """Reliability metrics (Chan et al. 2020) of the reported runs: per metric and env each algorithm's
    value and rank with its bootstrap CI, the mean rank over envs, excluded runs, and the rank figure."""
    from evalkit import plots, reliability
    from evalkit.errors import EvalkitError
    if data.table is None or len(data.table) == 0:
        return
    doc.heading("Reliability")
    try:
        planned = None
        if len(data.runs) and "reason" in data.runs.columns:  # the compared runs, excluded ones included
            planned = data.runs[["run_id", "algorithm", "env", "seed_index"]].assign(
                reason=data.runs["reason"].where(data.runs["reason"].isin(["failed", "missing"]), ""))
        result = reliability.compute(data.table, planned=planned)
        ranks = reliability.rank_table(result, reps=min(reps, 1_000), seed=seed)
    except (EvalkitError, ValueError) as exc:
        doc.text(f"reliability metrics not available: {exc}")
        return
    doc.text(f"{result.method}. Each metric says which direction is better; ranks: 1 = best, "
             f"{ranks['confidence'].iloc[0]:.0%} percentile bootstrap CIs resampling each algorithm's runs "
             f"({ranks['reps'].iloc[0]} resamples); across envs only ranks are combined. In return units a "
             f"policy that does not learn has flat curves and scores as stable; 'evalkit reliability "
             f"--normalize curve_range' divides by each run's curve range, as the paper's experiments did.")
    table = ranks.assign(
        metric=[f"{reliability.METRICS[m].short} {m.replace('_', ' ')} ({b} better)"
                for m, b in zip(ranks["metric"], ranks["better"])],
        value=[("-" if e == "all envs" else _fmt_ci(v, np.nan, np.nan)) for e, v in zip(ranks["env"], ranks["value"])],
        rank=[_fmt_ci(r, lo, hi) for r, lo, hi in zip(ranks["rank"], ranks["rank_low"], ranks["rank_high"])],
        n=["-" if not np.isfinite(n) else str(int(n)) for n in ranks["n"]])
    doc.table(table[["env", "metric", "label", "value", "n", "rank"]].rename(columns={"label": "algorithm"}),
              "Reliability metrics per env (per-run metrics: median over runs) and rank [95% CI]", "reliability")
    excluded = result.accounting[result.accounting["excluded"] != ""]
    if len(excluded):
        doc.table(excluded.rename(columns={"label": "algorithm"}),
                  "Runs left out of a reliability metric, with the reason", "reliability_excluded")
    for note in result.notes:
        doc.text(f"note: {note}")
    if figures:
        paths = plots.save(plots.reliability_ranks(ranks, colors=data.colors, size=size),
                           out / "figures" / "reliability_ranks", formats)
        png = next((p for p in paths if p.suffix == ".png"), None)
        if png is not None:
            doc.figure(png, str(png.relative_to(out)), "Reliability ranks (Chan et al. 2020) per metric with "
                                                       "95% bootstrap CIs; 1 = best.")


def write_report(study: Study, study_dir: Path, out: Path | None = None, reps: int = 10_000, seed: int = 0,
                 figures: bool = True, latex: bool = False, formats=("pdf", "png"), results=None,
                 setting: str | None = None) -> list[Path]:
    """Write report.md and report.html (self-contained) to ``out`` (default: the study's results
    folder), figures to ``out/figures``, and with ``latex`` the tables as booktabs in report_tables.tex.
    Each file is written to a temporary name and renamed. Returns the report files written."""
    import os
    from evalkit import document
    out = Path(out or study_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc, _ = build_report(study, study_dir, out, reps=reps, seed=seed, figures=figures, formats=formats,
                          results=results, setting=setting)
    texts = {"report.md": document.to_markdown(doc), "report.html": document.to_html(doc)}
    if latex:
        texts["report_tables.tex"] = document.to_latex(doc)
    paths = []
    for name, text in texts.items():
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        paths.append(path)
    return paths
