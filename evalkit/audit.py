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
* ``edge``: the best setting's value of a numeric hyperparameter lies in the outer 10% of its
  declared search range (log scale for loguniform axes and wide grids; the values tried for
  imported data) -> warn (the optimum may lie outside: widen the range), unless that end is the
  hyperparameter's own limit declared by the agent (an entropy bonus of 0 cannot be widened).
* ``runs``: per env and pair of algorithms, the observed difference of means is below the
  minimum detectable effect of a two-sided Welch t-test (alpha 0.05, power 0.8) with the runs at
  hand -> warn (too few runs for the claimed difference).
* ``budget_curve``: expected maximum performance curves (Dodge et al. 2019) over the tuning
  budget; if the ranking of algorithms flips between budget 1 and the full budget -> warn.

The verdict of an algorithm is its worst rule.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import metrics
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
    notes: tuple[str, ...] = ()  # what imported data lets the rules check (and what not)

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
        return "\n".join(line for line in lines if line is not None)


def _budgets(runs: pd.DataFrame, algorithms: list[str]) -> pd.DataFrame:
    tune = runs[runs["phase"] == "tune"]
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


def _best_setting(runs: pd.DataFrame, alg: str) -> pd.Series | None:
    g = runs[runs["algorithm"] == alg]
    evals = g[g["phase"] == "eval"]
    src = g[g["phase"] == "tune"] if len(g[g["phase"] == "tune"]) else evals
    if src.empty or src["score"].notna().sum() == 0:
        return None
    means = src.groupby("setting")["score"].mean()
    best = means.idxmax()
    return src[src["setting"] == best].iloc[0]


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


def _agent_limits(study: Study, alg: str) -> dict[str, tuple]:
    """The allowed (low, high) of each hyperparameter, as the agent declares them."""
    try:
        from evalkit import registry
        info = registry.resolve_agent(study.algorithm(alg).agent)
    except Exception:  # imported data or command agents: no declared limits
        return {}
    return {n: (h.low, h.high) for n, h in info.hyperparameters.items()}


def _rule_edge(runs: pd.DataFrame, algorithms: list[str], study: Study | None = None) -> list[Finding]:
    """Best setting within the outer 10% (linear or log scale) of the declared search range, or at the
    end of the values tried when the study declares no range (imported data)."""
    out = []
    for a in algorithms:
        best = _best_setting(runs, a)
        declared = _declared_ranges(study, a) if study is not None else {}
        if not declared:
            declared = {k: (float(v[0]), float(v[-1]), False) for k, v in _swept(runs, a).items()
                        if len(v) >= 3 and all(isinstance(x, (int, float)) for x in v)}
        if best is None or not declared:
            out.append(Finding(a, "edge", "pass", "no numeric hyperparameter swept over a range (>= 3 values)"))
            continue
        limits = _agent_limits(study, a) if study is not None else {}
        edges = []
        for k, (lo, hi, log) in declared.items():
            v = best.get(f"hp.{k}")
            if v is None or not isinstance(v, (int, float)) or hi <= lo:
                continue
            pos = (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)) if log else (v - lo) / (hi - lo)
            hard_lo, hard_hi = limits.get(k, (None, None))
            # an edge that is the hyperparameter's own limit (e.g. an entropy bonus of 0) cannot be widened
            if (pos <= 0.1 and lo != hard_lo) or (pos >= 0.9 and hi != hard_hi):
                edges.append(f"{k}={_fmt(v)} (range {_fmt(lo)}..{_fmt(hi)}{', log scale' if log else ''})")
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


def _rule_runs(runs: pd.DataFrame, algorithms: list[str]) -> list[Finding]:
    evals = runs[runs["phase"] == "eval"]
    worst: dict[str, Finding] = {}
    for env, g in evals.groupby("env"):
        best = {a: g[g["algorithm"] == a]["score"].dropna() for a in algorithms}
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


def _curves(runs: pd.DataFrame, algorithms: list[str], reps: int, seed: int) -> pd.DataFrame:
    from evalkit.expected_max import expected_max_curve
    tune = runs[runs["phase"] == "tune"]
    src = tune if len(tune) else runs
    frames = []
    for a in algorithms:
        g = src[src["algorithm"] == a]
        per_setting = g.groupby(["setting", "env"])["score"].mean().unstack("env")
        values = per_setting.mean(axis=1).dropna().to_numpy()
        if len(values) == 0:
            continue
        curve = expected_max_curve(values, budgets=np.arange(1, len(values) + 1), reps=reps, seed=seed)
        df = curve if isinstance(curve, pd.DataFrame) else pd.DataFrame(curve)
        df.insert(0, "algorithm", a)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _rule_budget_curve(curves: pd.DataFrame, algorithms: list[str]) -> list[Finding]:
    if curves.empty or curves["algorithm"].nunique() < 2:
        return [Finding(a, "budget_curve", "pass", "one algorithm with tuning data: nothing to compare") for a in algorithms]
    common = curves.groupby("algorithm")["budget"].max().min()
    at = curves[curves["budget"].isin([1, common])].pivot_table(index="budget", columns="algorithm", values="point")
    first, last = at.loc[1].sort_values(ascending=False), at.loc[common].sort_values(ascending=False)
    flipped = list(first.index) != list(last.index)
    ev = (f"ranking at budget 1: {' > '.join(first.index)}; at budget {common}: {' > '.join(last.index)}")
    return [Finding(a, "budget_curve", "warn" if flipped else "pass",
                    ("ranking flips with the tuning budget: " if flipped else "") + ev) for a in algorithms]


def audit(study: Study, study_dir: Path, reps: int = 1000, seed: int = 0) -> AuditResult:
    """Audit the stored runs of a study. Raises when nothing is stored."""
    from evalkit.status import load_current
    table = load_current(study, study_dir)
    if table.empty:
        from evalkit.errors import EvalkitError
        raise EvalkitError(f"{study_dir}: no stored runs to audit (run the study first)")
    runs = metrics.run_scores(table, study.metric)
    runs = runs.merge(table.drop_duplicates("run_id")[["run_id", "budget"]], on="run_id")
    algorithms = sorted(runs["algorithm"].unique())
    budgets = _budgets(runs, algorithms)
    curves = _curves(runs, algorithms, reps, seed)
    findings = (_rule_budget(budgets) + _rule_search_space(runs, algorithms) + _rule_seeds(runs, algorithms)
                + _rule_edge(runs, algorithms, study) + _rule_runs(runs, algorithms) + _rule_budget_curve(curves, algorithms))
    findings.sort(key=lambda f: (f.algorithm, list(("budget", "search_space", "seeds", "edge", "runs",
                                                    "budget_curve")).index(f.rule)))
    from evalkit.status import is_imported
    return AuditResult(tuple(findings), budgets, curves, _imported_notes(runs) if is_imported(study) else ())


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
