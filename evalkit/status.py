"""Where a study stands: done / failed / missing / stale / quarantined runs per algorithm x env."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pandas as pd

from evalkit import catalog, spec
from evalkit import results as results_mod
from evalkit.spec import Study

COLUMNS = ["algorithm", "env", "phase", "planned", "done", "failed", "missing", "stale", "diverged"]


def current_runs(study: Study, study_dir: Path) -> list[spec.Run]:
    """The runs the study file asks for now: tuning runs (with recorded proposals or successive-halving
    rungs) and, once a selection exists, its evaluation runs."""
    return catalog.planned_runs(study, study_dir)[0]


def is_imported(study: Study) -> bool:
    return catalog.is_imported(study)


def load_current(study: Study, study_dir: Path) -> pd.DataFrame:
    """The episode table of the stored runs that belong to the study as it is now.

    Orphans -- runs of an earlier version of the study file -- are kept on disk but left out of
    every analysis (``evalkit status`` counts them). Imported results are taken whole.
    Prefer :func:`evalkit.results.load`, which returns this table with the catalog beside it.
    """
    return results_mod.load(study, study_dir).episodes


def status_table(cat: pd.DataFrame) -> pd.DataFrame:
    """One row per (algorithm, env, phase) of a catalog (:mod:`evalkit.catalog`)."""
    if cat.empty:
        return pd.DataFrame(columns=COLUMNS)
    flags = pd.DataFrame({"algorithm": cat["algorithm"], "env": cat["env"], "phase": cat["phase"], "planned": 1,
                          "done": cat["status"] == "done", "failed": cat["status"] == "failed",
                          "missing": cat["status"] == "missing", "stale": cat["stale"],
                          "diverged": cat["diverged_flag"]})
    keys = ["algorithm", "env", "phase"]
    table = flags.groupby(keys, sort=False).sum().reset_index()
    return table[COLUMNS].astype({c: "int64" for c in COLUMNS[3:]})


def study_status(study: Study, study_dir: Path, results: "results_mod.StudyResults | None" = None) -> pd.DataFrame:
    """One row per (algorithm, env, phase) of the runs the study file currently asks for
    (successive-halving rung runs included: the driver records them when it plans them).
    Reads only the catalog (no episodes) unless ``results`` were loaded already."""
    if results is not None:
        cat, orphans = results.catalog, results.orphans
    else:
        cat, _index, _failures, orphans = results_mod.load_catalog(study, study_dir)
    table = status_table(cat)
    if is_imported(study):
        table = table.sort_values(["algorithm", "env", "phase"]).reset_index(drop=True)
    table.attrs["orphans"] = orphans
    table.attrs["quarantined"] = catalog.quarantined(study_dir)
    table.attrs["running"] = _lock_holder(study_dir)
    table.attrs["pending_selection"] = bool(study.tuning) and not (cat["phase"] == "eval").any()
    return table


def _lock_holder(study_dir: Path) -> str | None:
    path = Path(study_dir) / ".lock"
    if not path.exists():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            return fh.read().strip() or "another process"
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def render(table: pd.DataFrame) -> str:
    lines = [table.to_string(index=False)]
    a = table.attrs
    if a.get("running"):
        lines.append(f"running: a runner ({a['running']}) holds this study now")
    if a.get("pending_selection"):
        lines.append("evaluation runs: planned after the tuning stage completes (selection pending)")
    if a.get("quarantined"):
        lines.append(f"quarantined: {a['quarantined']} unreadable run files moved to quarantine/ (their runs are redone)")
    if a.get("orphans"):
        lines.append(f"orphans: {a['orphans']} stored runs match no run of the current study file (kept, not used)")
    stale = int(table["stale"].sum()) if len(table) else 0
    if stale:
        lines.append(f"stale: {stale} runs were produced by agent code that changed since; "
                     f"'evalkit run --rerun-stale' redoes them")
    return "\n".join(lines)
