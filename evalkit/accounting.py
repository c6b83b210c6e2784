"""How runs are accounted for: one rule, stated once, applied by every analysis (DESIGN.md 7b).

The unit of evidence is a **planned run**: one row of the run catalog (algorithm, env, phase,
setting, seed index; for successive halving also its rung). Every analysis that shows an estimate
says, for the runs of its cells, how many it **used** and how many it **excluded**, with one of
these reasons (precedence from first to last: a run gets the first that applies):

* ``failed``: the run has a failure record (it raised, timed out or was lost on every attempt).
* ``missing``: the run never ran (study unfinished, or a run of a newer version of the study file).
* ``stopped-at-rung``: successive halving stopped the run's setting at an earlier rung. The run is a
  complete run with its (smaller) budget, never missing and never an orphan; it is excluded only
  from an analysis at a larger budget than it ran (each analysis names the budget it compares at).
* ``diverged``: a return or a logged extra (loss ...) is NaN or infinite, or the run's file says it
  diverged. Its score is NaN.
* ``no-episode``: the run finished its budget without one completed episode of the mode analysed
  (training or evaluation); its mean return (auc), step-weighted return and final return are
  undefined, so it scores NaN. Such a run stays a row of the per-run table (its identity comes
  from the run catalog, never from episode rows).

**Divergence policy** (one for selection, tuning, sensitivity, the audit, expected max, CHS):

* Per-run estimates (report, compare, figures): a diverged run is excluded with reason
  ``diverged`` and counted in the note; it is never silently skipped by a mean.
* Per-setting decisions (which setting is best: per-env selection, the tuning objective and
  successive halving, the sensitivity maxima, the audit's best setting and expected-max curves):
  a setting with any diverged run in an env is *diverged in that env*. It can never be chosen
  there (for cross-env choices: nowhere), and its mean over the surviving runs is never used --
  judging a setting by its survivors rewards instability. Expected-max curves are drawn over the
  settings that diverged nowhere and say how many were left out.
* CHS (Patterson et al. 2024) prescribes its own rule and evalkit follows the paper: a diverged
  run scores N_e = 0 and counts in the normalizer's denominator; the CHS output says so.

Never pool raw returns of different envs: cross-env numbers are per env then combined, or on a
declared normalization (min-max references, percentile, CDF).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import pandas as pd

from evalkit.errors import EvalkitError

REASONS = ("failed", "missing", "stopped-at-rung", "diverged", "no-episode")

DIVERGENCE_POLICY = ("a diverged run (NaN/inf return or loss) is excluded from estimates; a setting with any "
                     "diverged run in an env is never chosen there")
CHS_DIVERGENCE = ("CHS scores a diverged run 0 and counts it in the CDF normalizer's denominator "
                  "(Patterson et al. 2024)")


@dataclass(frozen=True)
class Accounting:
    """Planned, used and excluded runs of one output (or one cell of it).

    ``excluded``: ``{reason: count}`` with reasons from :data:`REASONS`; planned = used + sum(excluded).
    """

    planned: int
    used: int
    excluded: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.used + sum(self.excluded.values()) != self.planned:
            raise ValueError(f"accounting: planned {self.planned} != used {self.used} + excluded "
                             f"{dict(self.excluded)}")

    @property
    def n_excluded(self) -> int:
        return int(sum(self.excluded.values()))

    def reasons_text(self) -> str:
        """``2 no-episode, 1 diverged`` in :data:`REASONS` order; '' when nothing was excluded."""
        return ", ".join(f"{self.excluded[r]} {r}" for r in REASONS if self.excluded.get(r))

    def note(self) -> str:
        """``n=8 used of 10 planned; excluded: 2 no-episode`` (``n=10 used of 10 planned`` when complete)."""
        text = f"n={self.used} used of {self.planned} planned"
        return text + (f"; excluded: {self.reasons_text()}" if self.n_excluded else "")

    def __add__(self, other: "Accounting") -> "Accounting":
        ex = dict(self.excluded)
        for r, k in other.excluded.items():
            ex[r] = ex.get(r, 0) + k
        return Accounting(self.planned + other.planned, self.used + other.used, ex)


def of(runs: pd.DataFrame) -> Accounting:
    """Accounting of a per-run table with ``used`` and ``reason`` columns (:func:`metrics.run_scores`)."""
    if runs is None or len(runs) == 0:
        return Accounting(0, 0, {})
    _check(runs)
    used = int(runs["used"].sum())
    reasons = runs.loc[~runs["used"].astype(bool), "reason"].value_counts()
    return Accounting(len(runs), used, {str(r): int(k) for r, k in reasons.items()})


def account(runs: pd.DataFrame, by: Iterable[str] = ("algorithm", "env")) -> pd.DataFrame:
    """One row per group: ``by`` columns, ``planned``, ``used``, one count column per reason, ``note``."""
    by = list(by)
    cols = by + ["planned", "used", *REASONS, "note"]
    if runs is None or len(runs) == 0:
        return pd.DataFrame(columns=cols)
    _check(runs)
    rows = []
    for key, g in runs.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        a = of(g)
        rows.append({**dict(zip(by, key)), "planned": a.planned, "used": a.used,
                     **{r: int(a.excluded.get(r, 0)) for r in REASONS}, "note": a.note()})
    return pd.DataFrame(rows, columns=cols)


def used(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows an estimate may use (``used`` true)."""
    _check(runs)
    return runs[runs["used"].astype(bool)]


def note_lines(runs: pd.DataFrame, by: Iterable[str] = ("algorithm", "env"), what: str = "") -> list[str]:
    """One line per group that excluded runs (``what``: a prefix, e.g. 'evaluation runs')."""
    table = account(runs, by)
    lines = []
    for _, r in table.iterrows():
        if r["used"] != r["planned"]:
            cell = ", ".join(str(r[b]) for b in by)
            lines.append(f"{what + ': ' if what else ''}{cell}: {r['note']}")
    return lines


def summary_note(runs: pd.DataFrame, what: str = "runs") -> str:
    """One line over the whole table: ``runs: n=8 used of 10 planned; excluded: 2 no-episode``."""
    return f"{what}: {of(runs).note()}"


def setting_diverged(runs: pd.DataFrame, by: Iterable[str] = ("algorithm", "env", "setting")) -> pd.Series:
    """Per (algorithm, env, setting): whether any of its runs diverged (the divergence policy)."""
    return runs.groupby(list(by), sort=True)["diverged"].any()


def setting_means(runs: pd.DataFrame, by: Iterable[str] = ("algorithm", "env", "setting")) -> pd.DataFrame:
    """Per (algorithm, env, setting): mean score of its used runs, ``n_used``, ``n_planned`` and
    ``diverged`` (any run diverged). The mean is NaN for a diverged setting (divergence policy) and
    for a setting without a used run; never a mean over the survivors of a diverged setting."""
    by = list(by)
    g = runs.assign(_u=runs["used"].astype(bool), _s=runs["score"].where(runs["used"].astype(bool)))
    out = g.groupby(by, sort=True).agg(score=("_s", "mean"), n_used=("_u", "sum"), n_planned=("_u", "size"),
                                       diverged=("diverged", "any"))
    out.loc[out["diverged"], "score"] = float("nan")
    return out.reset_index()


def _check(runs: pd.DataFrame) -> None:
    missing = {"used", "reason"} - set(runs.columns)
    if missing:
        raise EvalkitError(f"per-run table: expected columns 'used' and 'reason' (metrics.run_scores), "
                           f"missing {', '.join(sorted(missing))}")


def check_one_env_or_normalized(runs: pd.DataFrame, what: str, normalized: bool = False) -> None:
    """Refuse to pool raw returns across envs: one env, or a declared normalization."""
    envs = sorted(set(map(str, runs["env"]))) if len(runs) else []
    if len(envs) > 1 and not normalized:
        raise EvalkitError(f"{what}: refusing to pool raw returns of {len(envs)} envs ({', '.join(envs)}); "
                           f"compute it per env or on normalized scores")


def score_matrices(runs: pd.DataFrame, score: str = "score", by: str = "label",
                   envs: Iterable[str] | None = None, normalized: bool | None = None
                   ) -> tuple[dict, list[str], list[str]]:
    """rliable-shaped ``{label: (runs, envs)}`` matrices of the USED runs, the env order, and notes.

    Stratified bootstraps and the aggregates (mean, median, IQM, optimality gap, probability of
    improvement) treat each env's runs as their own sample, so a column holds that env's used
    scores in seed order and rows need not be the same seed across envs: an algorithm whose
    diverged runs sit at different seeds in different envs keeps every other run (never a row
    dropped because one env's run failed). A label whose envs have unequal numbers of used runs,
    or that lacks an env, is left out with a note naming the counts (never silently).
    ``score`` must be on a common (normalized) scale when there are several envs: ``normalized``
    (default: true unless ``score`` is the raw ``"score"`` column) declares it; raw returns of several
    envs are refused (one-line error).
    """
    _check(runs)
    envs = sorted(set(map(str, runs["env"]))) if envs is None else list(envs)
    check_one_env_or_normalized(runs, "cross-env aggregates", score != "score" if normalized is None else normalized)
    out, notes = {}, []
    for name, g in runs.groupby(by, sort=True):
        ok = g[g["used"].astype(bool) & g[score].notna()]
        counts = {e: int((ok["env"].astype(str) == e).sum()) for e in envs}
        acct = of(g)
        if acct.n_excluded:
            notes.append(f"{name}: {acct.note()}")
        if min(counts.values(), default=0) == 0:
            notes.append(f"{name}: left out of the cross-env aggregates (no used run in "
                         f"{', '.join(e for e, k in counts.items() if k == 0)})")
            continue
        if len(set(counts.values())) > 1:
            notes.append(f"{name}: left out of the cross-env aggregates (unequal used runs per env: "
                         f"{', '.join(f'{e} {k}' for e, k in counts.items())})")
            continue
        cols = [ok[ok["env"].astype(str) == e].sort_values("seed_index", kind="stable")[score].to_numpy(float)
                for e in envs]
        out[str(name)] = pd.DataFrame(dict(enumerate(cols))).to_numpy(float)
    return out, envs, notes
