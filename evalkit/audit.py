"""Tuning-fairness audit: was every algorithm of a comparison tuned as hard as the others?

Rules follow Henderson et al. (2018, "Deep RL that matters"), Eimer, Lindauer & Raileanu (2023,
"Hyperparameters in RL and how to tune them") and Patterson et al. (2023, "Empirical design in
RL"). Every rule recomputes its evidence from the stored runs and the study file, never from a
flag a run wrote about itself. Thresholds (documented in :data:`THRESHOLDS`):

* ``budget``: tuning env steps per algorithm within 10% of the largest -> pass; within 2x -> warn;
  otherwise, or no tuning runs while another algorithm has some (defaults only) -> fail.
* ``search_space``: the number of swept hyperparameters and of distinct values tried per
  algorithm; an algorithm with fewer than half the settings of the best-tuned one -> warn.
* ``seeds``: reported (evaluation) runs that reuse a tuning seed in the same env -> fail
  (maximization bias); best-of-many settings reported on the runs that chose them -> warn.
* ``edge``: per env, the best setting's value of a numeric hyperparameter lies in the outer 10% of its
  declared search range (log scale for loguniform axes and wide grids; the values tried for
  imported data) -> warn (the optimum may lie outside: widen the range), unless that end is the
  hyperparameter's own limit declared by the agent (an entropy bonus of 0 cannot be widened).
* ``runs``: per env and pair of algorithms, with the compared setting's used runs (the selected
  setting; the best one per env in a swept study without tuning), the observed difference of means
  is below the minimum detectable effect of a two-sided Welch t-test (alpha 0.05, power 0.8) with the runs at
  hand -> warn (too few runs for the claimed difference).
* ``budget_curve``: expected maximum performance curves (Dodge et al. 2019) over the tuning
  budget, per env (raw returns of different envs are never pooled); if the ranking of algorithms
  flips between budget 1 and the full budget in some env -> warn (ties never count as a flip).

Runs are accounted for as :mod:`evalkit.accounting` says (the notes list excluded runs per cell);
best settings follow its divergence policy (a setting with a diverged run is never the best).

The verdict of an algorithm is its worst rule.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import accounting, metrics
from evalkit.spec import Study

THRESHOLDS = {"budget_equal": 1.10, "budget_warn": 2.0, "settings_ratio_warn": 0.5, "alpha": 0.05,
              "power": 0.8}
ORDER = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class Finding:
    algorithm: str
    rule: str
    verdict: str  # pass | warn | fail
    evidence: str


@dataclass(frozen=True)
class AuditResult:
    findings: tuple[Finding, ...]
    budgets: pd.DataFrame
    curves: pd.DataFrame
    notes: tuple[str, ...] = ()  # accounting, divergence policy and what imported data lets the rules check

    def verdicts(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in self.findings:
            if ORDER[f.verdict] >= ORDER.get(out.get(f.algorithm, "pass"), 0):
                out[f.algorithm] = f.verdict
        return out

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([f.__dict__ for f in self.findings], columns=["algorithm", "rule", "verdict", "evidence"])

    def render(self) -> str:
        lines = [*self.notes, "" if self.notes else None, "tuning budget per algorithm (from the stored tuning runs):",
                 self.budgets.to_string(index=False) if len(self.budgets) else "  (no tuning runs)", ""]
        for alg, verdict in sorted(self.verdicts().items()):
            lines.append(f"{alg}: {verdict.upper()}")
            for f in self.findings:
                if f.algorithm == alg:
                    lines.append(f"  [{f.verdict:4s}] {f.rule:12s} {f.evidence}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _budgets(catalog: pd.DataFrame, algorithms: list[str]) -> pd.DataFrame:
    """Tuning budget per algorithm = the sum over what actually ran: every stored tuning run, at every
    successive-halving rung (a stopped setting's runs count with their truncated budget)."""
    tune = catalog[(catalog["phase"] == "tune") & (catalog["status"] == "done")]
    rows = []
    for alg in algorithms:
        g = tune[tune["algorithm"] == alg]
        rows.append({"algorithm": alg, "settings": g["setting"].nunique(), "runs": len(g),
                     "env_steps": int(g["budget"].sum()) if len(g) else 0})
    return pd.DataFrame(rows, columns=["algorithm", "settings", "runs", "env_steps"])


def _rule_budget(budgets: pd.DataFrame) -> list[Finding]:
    top = budgets["env_steps"].max()
    out = []
    for _, b in budgets.iterrows():
        ev = f"{b['settings']} settings x runs = {b['runs']} tuning runs, {b['env_steps']:,} env steps (largest {top:,})"
        if top == 0:
            out.append(Finding(b["algorithm"], "budget", "warn", "no algorithm was tuned: " + ev))
        elif b["env_steps"] == 0:
            out.append(Finding(b["algorithm"], "budget", "fail", "defaults only, while others were tuned: " + ev))
        elif top / b["env_steps"] <= THRESHOLDS["budget_equal"]:
            out.append(Finding(b["algorithm"], "budget", "pass", ev))
        elif top / b["env_steps"] <= THRESHOLDS["budget_warn"]:
            out.append(Finding(b["algorithm"], "budget", "warn", ev))
        else:
            out.append(Finding(b["algorithm"], "budget", "fail", ev))
    return out


def _swept(runs: pd.DataFrame, alg: str) -> dict[str, list]:
    """Hyperparameters that take more than one value among an algorithm's tuning runs (else all runs)."""
    g = runs[(runs["algorithm"] == alg) & (runs["phase"] == "tune")]
    if g.empty:
        g = runs[runs["algorithm"] == alg]
    out = {}
    for c in (c for c in g.columns if c.startswith("hp.")):
        vals = g[c].dropna().unique().tolist()
        if len(vals) > 1:
            out[c[3:]] = sorted(vals, key=lambda v: (isinstance(v, str), v))
    return out


def _rule_search_space(runs: pd.DataFrame, algorithms: list[str]) -> list[Finding]:
    n_settings = {a: runs[(runs["algorithm"] == a) & (runs["phase"] == "tune")]["setting"].nunique() for a in algorithms}
    if not any(n_settings.values()):
        n_settings = {a: runs[runs["algorithm"] == a]["setting"].nunique() for a in algorithms}
    top = max(n_settings.values())
    out = []
    for a in algorithms:
        swept = _swept(runs, a)
        desc = ", ".join(f"{k} in [{_fmt(v[0])}, {_fmt(v[-1])}] ({len(v)} values)" for k, v in swept.items()) or "none swept"
        ev = f"{n_settings[a]} settings; {desc}"
        if n_settings[a] <= 1 and top > 1:
            out.append(Finding(a, "search_space", "fail", "untuned (one setting) next to tuned algorithms: " + ev))
        elif top and n_settings[a] / top < THRESHOLDS["settings_ratio_warn"]:
            out.append(Finding(a, "search_space", "warn", f"fewer than half the settings of the best-tuned ({top}): " + ev))
        else:
            out.append(Finding(a, "search_space", "pass", ev))
    return out


def _fmt(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _rule_seeds(runs: pd.DataFrame, algorithms: list[str]) -> list[Finding]:
    out = []
    for a in algorithms:
        g = runs[runs["algorithm"] == a]
        tune, evals = g[g["phase"] == "tune"], g[g["phase"] == "eval"]
        shared = set(zip(tune["env"], tune["seed"])) & set(zip(evals["env"], evals["seed"]))
        settings_reported = evals.groupby("env")["setting"].nunique().max() if len(evals) else 0
        if shared:
            out.append(Finding(a, "seeds", "fail", f"{len(shared)} reported runs reuse tuning seeds (maximization bias)"))
        elif tune.empty and settings_reported > 1:
            out.append(Finding(a, "seeds", "warn", f"{settings_reported} settings reported on the same runs that compare "
                               f"them; picking the best of them is biased upward: use a [tuning] stage"))
        else:
            out.append(Finding(a, "seeds", "pass", f"{evals['seed'].nunique()} evaluation seeds, disjoint from "
                               f"{tune['seed'].nunique()} tuning seeds"))
    return out


def _best_settings(runs: pd.DataFrame, alg: str) -> dict[str, pd.Series]:
    """Per env, the first run row of the algorithm's best setting there (tuning runs when it has any).

    Raw returns of different envs are never pooled: the best setting is chosen per env, by the mean
    of its used runs, among settings that diverged in no run there (the divergence policy of
    :mod:`evalkit.accounting`)."""
    g = runs[runs["algorithm"] == alg]
    src = g[g["phase"] == "tune"] if (g["phase"] == "tune").any() else g[g["phase"] == "eval"]
    out = {}
    for env, cell in src.groupby("env", sort=True):
        means = accounting.setting_means(cell, by=["setting"]).dropna(subset=["score"])
        if means.empty:
            continue
        best = means.loc[means["score"].idxmax(), "setting"]
        out[str(env)] = cell[cell["setting"] == best].iloc[0]
    return out


def _numeric(v: object) -> bool:
    """A number, numpy's included (np.int64 is not a Python int), but not a bool."""
    return isinstance(v, (numbers.Real, np.number)) and not isinstance(v, (bool, np.bool_))


def _declared_ranges(study: Study, alg: str) -> dict[str, tuple[float, float, bool]]:
    """``{hyperparameter: (low, high, log_scale)}`` of an algorithm's numeric sweep axes in the study file."""
    try:
        spec_alg = study.algorithm(alg)
    except StopIteration:
        return {}
    out = {}
    for axis in spec_alg.sweep:
        vals = [v for v in axis.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if axis.kind in ("uniform", "loguniform", "randint"):
            hi = axis.values[1] - 1 if axis.kind == "randint" else axis.values[1]
            out[axis.name] = (float(axis.values[0]), float(hi), axis.kind == "loguniform")
        elif len(vals) == len(axis.values) and len(vals) >= 3:
            out[axis.name] = (float(min(vals)), float(max(vals)), min(vals) > 0 and max(vals) / min(vals) >= 100)
    return out


def _agent_limits(study: Study, alg: str, runs: pd.DataFrame | None = None) -> dict[str, tuple]:
    """The allowed (low, high) of each hyperparameter, as the agent declares them (the agent named in
    the study file, or in the stored runs of a results folder read without its study file)."""
    from evalkit import registry
    try:
        agent = study.algorithm(alg).agent if study is not None else "imported"
    except StopIteration:
        agent = "imported"
    if agent == "imported" and runs is not None and "agent" in runs.columns:
        named = runs.loc[runs["algorithm"] == alg, "agent"].dropna().unique()
        agent = str(named[0]) if len(named) == 1 else agent
    try:
        info = registry.resolve_agent(agent)
    except Exception:  # imported data or command agents: no declared limits
        return {}
    return {n: (h.low, h.high) for n, h in info.hyperparameters.items()}


def _rule_edge(runs: pd.DataFrame, algorithms: list[str], study: Study | None = None) -> list[Finding]:
    """Best setting (per env) within the outer 10% (linear or log scale) of the declared search range,
    or at the end of the values tried when the study declares no range (imported data)."""
    out = []
    for a in algorithms:
        best = _best_settings(runs, a)
        declared = _declared_ranges(study, a) if study is not None else {}
        if not declared:
            declared = {k: (float(v[0]), float(v[-1]), False) for k, v in _swept(runs, a).items()
                        if len(v) >= 3 and all(_numeric(x) for x in v)}
        if not declared:
            out.append(Finding(a, "edge", "pass", "no numeric hyperparameter swept over a range (>= 3 values)"))
            continue
        if not best:
            out.append(Finding(a, "edge", "pass", "no best setting: every setting has a diverged or no usable run "
                               "in every env (divergence policy)"))
            continue
        limits = _agent_limits(study, a, runs)
        edges = []
        for env, row in best.items():
            for k, (lo, hi, log) in declared.items():
                v = row.get(f"hp.{k}")
                if v is None or not _numeric(v) or hi <= lo or (isinstance(v, float) and math.isnan(v)):
                    continue
                v = v.item() if hasattr(v, "item") else v
                pos = (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)) if log else (v - lo) / (hi - lo)
                hard_lo, hard_hi = limits.get(k, (None, None))
                # an edge that is the hyperparameter's own limit (e.g. an entropy bonus of 0) cannot be widened
                if (pos <= 0.1 and lo != hard_lo) or (pos >= 0.9 and hi != hard_hi):
                    where = f"{env}: " if len(best) > 1 else ""
                    edges.append(f"{where}{k}={_fmt(v)} (range {_fmt(lo)}..{_fmt(hi)}{', log scale' if log else ''})")
        if edges:
            out.append(Finding(a, "edge", "warn", "best setting at the edge of its search range (widen it): "
                               + "; ".join(edges)))
        else:
            out.append(Finding(a, "edge", "pass", "best setting inside the search range of every swept hyperparameter"))
    return out


def minimum_detectable_effect(n_a: int, n_b: int, sd: float, alpha: float, power: float) -> float:
    """Smallest difference of means a two-sided Welch/Student t-test detects with ``power``.

    Solved exactly with the noncentral t distribution (df = n_a + n_b - 2).
    """
    from evalkit.stats import minimum_detectable_effect as mde
    return float(mde(n_a, n_b, sd=sd, alpha=alpha, power=power))


def _compared_runs(g: pd.DataFrame) -> pd.DataFrame:
    """The runs of the setting a comparison reports, among one algorithm's eval runs in one env: its
    only setting, or (a swept study without tuning) its best non-diverged setting there."""
    if g["setting"].nunique() <= 1:
        return g
    means = accounting.setting_means(g, by=["setting"]).dropna(subset=["score"])
    if means.empty:
        return g.iloc[0:0]
    return g[g["setting"] == means.loc[means["score"].idxmax(), "setting"]]


def _rule_runs(runs: pd.DataFrame, algorithms: list[str]) -> list[Finding]:
    """Minimum detectable effect with the compared settings' used runs (never every setting pooled)."""
    evals = runs[runs["phase"] == "eval"]
    worst: dict[str, Finding] = {}
    for env, g in evals.groupby("env"):
        best = {a: accounting.used(_compared_runs(g[g["algorithm"] == a]))["score"] for a in algorithms}
        for a, b in itertools.combinations(algorithms, 2):
            x, y = best[a], best[b]
            if len(x) < 2 or len(y) < 2:
                continue
            sd = math.sqrt((x.var(ddof=1) * (len(x) - 1) + y.var(ddof=1) * (len(y) - 1)) / (len(x) + len(y) - 2))
            if sd == 0:
                continue
            mde = minimum_detectable_effect(len(x), len(y), sd, THRESHOLDS["alpha"], THRESHOLDS["power"])
            diff = abs(x.mean() - y.mean())
            verdict = "pass" if diff >= mde else "warn"
            ev = (f"{env}: |{a} - {b}| = {diff:.3g} vs minimum detectable {mde:.3g} with n = {len(x)}, {len(y)} "
                  f"(alpha {THRESHOLDS['alpha']}, power {THRESHOLDS['power']})")
            for alg in (a, b):
                if alg not in worst or ORDER[verdict] > ORDER[worst[alg].verdict]:
                    worst[alg] = Finding(alg, "runs", verdict, ev)
    return [worst.get(a, Finding(a, "runs", "pass", "no pairwise difference to check")) for a in algorithms]


def _curves(runs: pd.DataFrame, algorithms: list[str], reps: int, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Expected-max curves (Dodge et al. 2019) per algorithm AND env over its settings' mean scores.

    Per env because raw returns of different envs are never pooled (Dodge et al. compute the curve
    per task). A setting with a diverged run in the env is left out (divergence policy) and counted."""
    from evalkit.expected_max import expected_max_curve
    tune = runs[runs["phase"] == "tune"]
    src = tune if len(tune) else runs
    frames, notes = [], []
    for a in algorithms:
        for env, g in src[src["algorithm"] == a].groupby("env", sort=True):
            means = accounting.setting_means(g, by=["setting"])
            values = means["score"].dropna().to_numpy()
            if len(means) > len(values):
                notes.append(f"expected max, {a} on {env}: {len(values)} of {len(means)} settings "
                             f"({len(means) - len(values)} with a diverged run or no usable run left out)")
            if len(values) == 0:
                continue
            curve = expected_max_curve(values, budgets=np.arange(1, len(values) + 1), reps=reps, seed=seed)
            df = curve if isinstance(curve, pd.DataFrame) else pd.DataFrame(curve)
            df.insert(0, "env", str(env))
            df.insert(0, "algorithm", a)
            frames.append(df)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), notes


def _rule_budget_curve(curves: pd.DataFrame, algorithms: list[str]) -> list[Finding]:
    """Per env: does the ranking by expected max flip between budget 1 and the largest common budget?
    Ties never make a flip, in either direction (:func:`evalkit.expected_max.budget_rankings`)."""
    from evalkit.expected_max import budget_rankings
    if curves.empty or curves["algorithm"].nunique() < 2:
        return [Finding(a, "budget_curve", "pass", "one algorithm with tuning data: nothing to compare") for a in algorithms]
    if "env" not in curves.columns:  # curves of one task
        curves = curves.assign(env="")
    flips, evidence = [], []
    for env, g in curves.groupby("env", sort=True):
        if g["algorithm"].nunique() < 2:
            continue
        common = int(g.groupby("algorithm")["budget"].max().min())
        ranks = budget_rankings(g[g["budget"].isin([1, common])][["algorithm", "budget", "point"]])
        order = dict(zip(ranks.rankings["budget"], ranks.rankings["order"]))
        prefix = f"{env}: " if curves["env"].nunique() > 1 else ""
        evidence.append(f"{prefix}ranking at budget 1: {order.get(1, '?')}; at budget {common}: {order.get(common, '?')}")
        if ranks.flips:
            flips.append(env)
    if not evidence:
        return [Finding(a, "budget_curve", "pass", "no env with two algorithms' tuning data") for a in algorithms]
    ev = "; ".join(evidence)
    return [Finding(a, "budget_curve", "warn" if flips else "pass",
                    ("ranking flips with the tuning budget: " if flips else "") + ev) for a in algorithms]


def audit(study: Study, study_dir: Path, reps: int = 1000, seed: int = 0, results=None) -> AuditResult:
    """Audit the stored runs of a study (``results``: its :class:`evalkit.results.StudyResults`, loaded
    here when not given). Raises when nothing is stored."""
    from evalkit import results as results_mod
    from evalkit.errors import EvalkitError
    res = results if results is not None else results_mod.load(study, study_dir)
    if res.empty:
        raise EvalkitError(f"{study_dir}: no stored runs to audit (run the study first)")
    runs = res.runs(None, study.metric)
    algorithms = sorted(runs["algorithm"].unique())
    budgets = _budgets(res.catalog, algorithms)
    halving = bool((res.catalog["rung"] >= 0).any()) if "rung" in res.catalog.columns else False
    # expected max compares settings at one budget that every setting ran: rung 0 under halving
    curve_runs = res.runs(None, study.metric, rung=0) if halving else runs
    curves, notes = _curves(curve_runs, algorithms, reps, seed)
    if halving:
        b0 = res.catalog.loc[res.catalog["rung"] == 0, "budget"]
        span = f"{int(b0.min()):,}" if b0.min() == b0.max() else f"{int(b0.min()):,}-{int(b0.max()):,}"
        notes.insert(0, f"expected-max curves compare every setting at successive-halving rung 0 "
                        f"({span} env steps), the one budget every setting ran; the "
                        f"other rules use the full budget (settings stopped earlier: stopped-at-rung)")
    findings = (_rule_budget(budgets) + _rule_search_space(runs, algorithms) + _rule_seeds(runs, algorithms)
                + _rule_edge(runs, algorithms, study) + _rule_runs(runs, algorithms) + _rule_budget_curve(curves, algorithms))
    findings.sort(key=lambda f: (f.algorithm, list(("budget", "search_space", "seeds", "edge", "runs",
                                                    "budget_curve")).index(f.rule)))
    notes = accounting.note_lines(runs, ("phase", "algorithm", "env"), "runs") + notes
    notes.append(f"divergence policy: {accounting.DIVERGENCE_POLICY}")
    # runs that were imported (their files say agent "imported"), not a results folder of evalkit's own
    # runs read without its study file: that one answers as the study file does
    if "agent" in res.catalog.columns and len(res.catalog) and (res.catalog["agent"] == "imported").all():
        notes = list(_imported_notes(runs)) + notes
    return AuditResult(tuple(findings), budgets, curves, tuple(notes))


def _imported_notes(runs: pd.DataFrame) -> tuple[str, ...]:
    """Which rules imported logs can support: they record runs, seeds and (often) hyperparameters,
    but not the study's declared search ranges, and a tuning stage only where imported as one."""
    hp = [c for c in runs.columns if c.startswith("hp.") and runs[c].nunique() > 1]
    tuned = (runs["phase"] == "tune").any()
    both = tuned and (runs["phase"] == "eval").any()
    can = ["runs (recorded scores)"]
    cannot = []
    (can if tuned else cannot).append("budget (" + ("env steps of the imported tuning runs)" if tuned else
                                                    "no tuning stage recorded: import the sweep with --phase tune)"))
    (can if hp else cannot).append(f"search_space ({len(hp)} swept hyperparameters recorded)" if hp else
                                   "search_space (no hyperparameter varies in the imported runs)")
    (can if both else cannot).append("seeds (recorded seeds of tuning and evaluation runs)" if both else
                                     "seeds (needs tuning and evaluation runs: import both, with --phase)")
    (can if hp else cannot).append("edge (on the values tried; logs do not record the declared search range)" if hp
                                   else "edge (no swept hyperparameter)")
    (can if hp else cannot).append("budget_curve (settings per algorithm)" if hp else "budget_curve (one setting each)")
    lines = ["imported data: the audit can check " + "; ".join(can)]
    if cannot:
        lines.append("imported data: it cannot check " + "; ".join(cannot) + " (those verdicts describe what was "
                     "imported, not how the runs were tuned)")
    return tuple(lines)
