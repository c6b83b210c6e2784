"""Where a study stands: done / failed / missing / stale / quarantined runs per algorithm x env."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pandas as pd

from evalkit import catalog, spec, store
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
    index = None
    if results is not None:
        cat, orphans = results.catalog, results.orphans
    else:
        cat, index, _failures, orphans = results_mod.load_catalog(study, study_dir)
    table = status_table(cat)
    if is_imported(study):
        table = table.sort_values(["algorithm", "env", "phase"]).reset_index(drop=True)
    table.attrs["orphans"] = orphans
    table.attrs["orphan_groups"] = _orphan_groups(study, study_dir, cat, index) if orphans and not is_imported(study) else []
    table.attrs["quarantined"] = catalog.quarantined(study_dir)
    table.attrs["running"] = _lock_holder(study_dir)
    table.attrs["pending_selection"] = bool(study.tuning) and not (cat["phase"] == "eval").any()
    return table


def _orphan_groups(study: Study, study_dir: Path, cat: pd.DataFrame, index: pd.DataFrame | None = None) -> list[str]:
    """:func:`orphan_groups` of the stored runs that match no planned run of ``cat``, from the
    stored-run index (file footers and catalog rows; the one the catalog was built from when given,
    read here otherwise; only when there are orphans)."""
    import json
    if index is None:
        index = store.stored_index(study_dir)
    rows = index[~index["run_id"].isin(set(cat["run_id"]))]
    metas = []
    for r in rows.itertuples(index=False):
        config = r.config
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except ValueError:
                config = {}
        metas.append({"algorithm": r.algorithm, "env": r.env, "phase": r.phase, "seed_index": r.seed_index,
                      "config": config or {}, "steps": int(r.budget)})
    runs, _rungs = catalog.planned_runs(study, study_dir)
    return orphan_groups(metas, runs)


def orphan_groups(metas: list[dict], runs: list) -> list[str]:
    """Name the orphans (issue 21): stored runs per (algorithm, env, phase) with what differs from
    the current run of the same seed index -- renamed hyperparameters (``agents.common.RENAMED``),
    changed values, budget -- or, when config and budget agree, that the seed blocks or evaluation
    differ (both are part of a run's id)."""
    from collections import Counter

    from agents.common import RENAMED
    current = {}
    for r in runs:
        current.setdefault((r.algorithm, r.env, r.phase, r.seed_index), r)
    groups: Counter = Counter()
    for m in metas:
        r = current.get((m.get("algorithm"), m.get("env"), m.get("phase"), m.get("seed_index")))
        if r is None:
            why = "no such algorithm, env or seed in the study file now"
        else:
            old, new = dict(m.get("config") or {}), dict(r.config)
            renamed = {k: RENAMED[k] for k in old if k not in new and RENAMED.get(k) in new}
            parts = [f"renamed {k} -> {v}" for k, v in sorted(renamed.items())]
            parts += [f"{k} {old[k]!r} -> {new[k]!r}" for k in sorted(new) if k in old and old[k] != new[k]]
            parts += [f"{k} new" for k in sorted(set(new) - set(old) - set(renamed.values()))]
            parts += [f"{k} gone" for k in sorted(set(old) - set(new) - set(renamed))]
            if m.get("steps") != r.steps:
                parts.append(f"steps {m.get('steps')} -> {r.steps}")
            why = "; ".join(parts[:6]) + ("; ..." if len(parts) > 6 else "") if parts else \
                "same config and budget: seed blocks or evaluation differ"
        groups[(m.get("algorithm"), m.get("env"), m.get("phase"), why)] += 1
    return [f"{a} on {e} ({p}): {n} -- {why}" for (a, e, p, why), n in sorted(groups.items(), key=str)]


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
        lines.extend(f"  {g}" for g in a.get("orphan_groups", []))
    stale = int(table["stale"].sum()) if len(table) else 0
    if stale:
        lines.append(f"stale: {stale} runs were produced by agent code that changed since; "
                     f"'evalkit run --rerun-stale' redoes them")
    return "\n".join(lines)
