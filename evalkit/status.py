"""Where a study stands: done / failed / missing / stale / quarantined runs per algorithm x env."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pandas as pd

from evalkit import runner, spec, store
from evalkit.spec import Study

COLUMNS = ["algorithm", "env", "phase", "planned", "done", "failed", "missing", "stale", "diverged"]


def current_runs(study: Study, study_dir: Path) -> list[spec.Run]:
    """The runs the study file asks for now: tuning runs (with recorded proposals) and, once a
    selection exists, its evaluation runs."""
    from evalkit import selection, tuning
    optuna = study.tuning is not None and study.tuning.search == "optuna"
    runs = spec.expand(study, {a.name: tuning.load_proposals(study, study_dir, a) for a in study.algorithms}
                       if optuna else None)
    if study.tuning:
        chosen = selection.load_selection(study_dir)
        if chosen is not None:
            values = {(s["algorithm"], s["env"]): s["setting"] for s in chosen["selected"]}
            try:
                runs += spec.evaluation_runs(study, values)
            except KeyError:
                pass  # the study changed since the selection was made
    return runs


def is_imported(study: Study) -> bool:
    return all(a.agent == "imported" for a in study.algorithms)


def load_current(study: Study, study_dir: Path) -> pd.DataFrame:
    """The episode table of the stored runs that belong to the study as it is now.

    Orphans -- runs of an earlier version of the study file -- are kept on disk but left out of
    every analysis (``evalkit status`` counts them). Imported results are taken whole.
    """
    stored = store.scan(study_dir, repair=False)
    if is_imported(study):
        return store.load(study_dir, stored.values())
    ids = {r.run_id for r in current_runs(study, study_dir)}
    return store.load(study_dir, [stored[i] for i in sorted(ids) if i in stored])


def study_status(study: Study, study_dir: Path) -> pd.DataFrame:
    """One row per (algorithm, env, phase) of the runs the study file currently asks for."""
    stored = store.scan(study_dir, repair=False)
    failures = store.read_failures(study_dir)
    if is_imported(study):
        return _stored_only(stored)
    runs = current_runs(study, study_dir)
    stale = {r.run_id for r in runner.stale_runs(runs, stored)}
    rows = {}
    for r in runs:
        key = (r.algorithm, r.env, r.phase)
        row = rows.setdefault(key, dict.fromkeys(COLUMNS[3:], 0))
        row["planned"] += 1
        if r.run_id in stored:
            row["done"] += 1
            row["stale"] += r.run_id in stale
            row["diverged"] += stored[r.run_id].meta.get("status") == "diverged"
        elif r.run_id in failures:
            row["failed"] += 1
        else:
            row["missing"] += 1
    table = pd.DataFrame([{"algorithm": a, "env": e, "phase": p, **v} for (a, e, p), v in rows.items()],
                         columns=COLUMNS)
    expected = {r.run_id for r in runs}
    table.attrs["orphans"] = len(set(stored) - expected)
    table.attrs["orphan_groups"] = orphan_groups([stored[i].meta for i in sorted(set(stored) - expected)], runs)
    table.attrs["quarantined"] = len(list((Path(study_dir) / "quarantine").glob("*.parquet")))
    table.attrs["running"] = _lock_holder(study_dir)
    table.attrs["pending_selection"] = bool(study.tuning) and not any(r.phase == "eval" for r in runs)
    return table


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


def _stored_only(stored: dict) -> pd.DataFrame:
    """Status of a results folder without a study file (imported data): what is stored."""
    rows: dict = {}
    for sr in stored.values():
        m = sr.meta
        row = rows.setdefault((m["algorithm"], m["env"], m["phase"]), dict.fromkeys(COLUMNS[3:], 0))
        row["planned"] += 1
        row["done"] += 1
        row["diverged"] += m.get("status") == "diverged"
    return pd.DataFrame([{"algorithm": a, "env": e, "phase": p, **v} for (a, e, p), v in sorted(rows.items())],
                        columns=COLUMNS)


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
