"""The run catalog: one row per planned run of a study, with its status (issue 18, DESIGN.md 7b/7c).

Planned runs come from the study file (:func:`planned_runs`) and from what the driver recorded when
it planned them (``catalog/planned/<hash>.parquet``, :func:`record_planned`): successive halving
plans its later rungs from results, so only the driver knows them. Stored runs come from
:func:`evalkit.store.stored_index`; failures from ``failures/``. :func:`build` joins the three:

``run_id, algorithm, agent, env, phase, seed_index, seed, setting, budget, full_budget, rung,
status ('done' | 'failed' | 'missing'), stale, n_episodes, n_eval_episodes, diverged_flag, hp.*``

This module sits with the store and the spec (layers: cli -> report/plots -> analyses ->
stats/metrics -> catalog/store/spec); it never imports the runner or an analysis.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from evalkit import seeding, spec, store
from evalkit.errors import EvalkitError
from evalkit.spec import Run, Study

COLUMNS = ["run_id", "algorithm", "agent", "env", "phase", "seed_index", "seed", "setting", "budget",
           "full_budget", "rung", "status", "stale", "n_episodes", "n_eval_episodes", "diverged_flag"]
_PLANNED = ["run_id", "algorithm", "agent", "env", "phase", "seed_index", "seed", "setting", "budget",
            "setting_values", "config"]


# ------------------------------------------------------------------ code identity (stale runs)


def current_agent_hash(run: Run) -> str:
    """Hash of the code that would run ``run`` today (agent source, or the command template)."""
    if run.command is not None:
        return seeding.short_hash(run.command)
    from evalkit import registry
    try:
        return registry.resolve_agent(run.agent).source_hash
    except EvalkitError:
        return ""


def stale_runs(runs: Iterable[Run], stored: dict[str, store.StoredRun]) -> list[Run]:
    """Runs whose stored file was produced by agent code that has changed since."""
    hashes: dict[str, str] = {}
    out = []
    for run in runs:
        sr = stored.get(run.run_id)
        if sr is None:
            continue
        key = run.agent + (run.command or "")
        if key not in hashes:
            hashes[key] = current_agent_hash(run)
        if sr.meta.get("agent_hash") != hashes[key]:
            out.append(run)
    return out


# ------------------------------------------------------------------ planned runs


def planned_path(study_dir: Path) -> Path:
    return Path(study_dir) / "catalog" / "planned"


def record_planned(study_dir: Path, runs: list[Run]) -> Path | None:
    """Persist the runs the driver is about to execute (atomic; one file per distinct plan)."""
    if not runs:
        return None
    key = seeding.short_hash(",".join(sorted(r.run_id for r in runs)), 16)
    path = planned_path(study_dir) / f"{key}.parquet"
    if path.exists():
        return path
    rows = {c: [] for c in _PLANNED}
    for r in runs:
        for c, v in (("run_id", r.run_id), ("algorithm", r.algorithm), ("agent", r.agent), ("env", r.env),
                     ("phase", r.phase), ("seed_index", r.seed_index), ("seed", r.seed), ("setting", r.setting),
                     ("budget", r.steps), ("setting_values", spec.canonical_json(dict(r.setting_values))),
                     ("config", spec.canonical_json(dict(r.config)))):
            rows[c].append(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    pq.write_table(pa.table(rows), tmp)
    os.replace(tmp, path)
    return path


def read_planned(study_dir: Path) -> pd.DataFrame:
    """Every run the driver recorded as planned (deduplicated by run_id)."""
    files = sorted(planned_path(study_dir).glob("*.parquet"))
    if not files:
        return pd.DataFrame(columns=_PLANNED)
    df = ds.dataset([str(f) for f in files], format="parquet").to_table().to_pandas()
    return df.drop_duplicates("run_id").reset_index(drop=True)


def _halving_budgets(study: Study, env: spec.EnvSpec) -> list[int]:
    """Step budget of each successive-halving rung in ``env`` (the last one is the env's budget)."""
    t = study.tuning
    max_steps = max(e.steps for e in study.envs)
    out, rung = [], 0
    while True:
        budget = t.min_steps * t.eta ** rung
        if budget >= max_steps:
            return out + [env.steps]
        out.append(min(int(budget), env.steps))
        rung += 1


def _halving_runs(study: Study, study_dir: Path) -> tuple[list[Run], dict[str, int]]:
    """Planned tuning runs of a successive-halving study: rung 0 for every setting (known up front)
    and every later-rung run the driver recorded that the study as it is now would plan too.
    Returns the runs and ``{run_id: rung}``."""
    t = study.tuning
    runs, rungs = [], {}
    recorded = read_planned(study_dir)
    recorded = recorded[recorded["phase"] == "tune"]
    by_alg = {a: g for a, g in recorded.groupby("algorithm")}
    for alg in study.algorithms:
        defaults = spec.agent_defaults(alg)
        batch = spec.batch_size(study, alg, t.runs)
        settings = {spec.setting_id(v): v for v in spec.settings(study, alg)}
        rec = by_alg.get(alg.name, pd.DataFrame(columns=_PLANNED))
        for env in study.envs_of(alg):
            budgets = _halving_budgets(study, env)
            first = None if len(budgets) == 1 else budgets[0]
            for values in settings.values():
                for i in range(t.runs):
                    r = spec.make_run(study, alg, env, values, "tune", i, defaults, batch=batch, steps=first,
                                      n_runs=t.runs)
                    runs.append(r)
                    rungs[r.run_id] = 0
            env_rec = rec[(rec["env"] == env.name) & rec["setting"].isin(settings)]
            for row in env_rec.itertuples(index=False):
                if row.run_id in rungs or int(row.budget) not in budgets[1:]:
                    continue
                k = budgets.index(int(row.budget), 1)
                final = k == len(budgets) - 1
                r = spec.make_run(study, alg, env, settings[row.setting], "tune", int(row.seed_index), defaults,
                                  batch=batch, steps=None if final else int(row.budget), n_runs=t.runs)
                if r.run_id == row.run_id:  # still what the study would plan
                    runs.append(r)
                    rungs[r.run_id] = k
    return runs, rungs


def planned_runs(study: Study, study_dir: Path) -> tuple[list[Run], dict[str, int]]:
    """The runs the study file asks for now, and the successive-halving rung of each tuning run
    (absent = not part of successive halving): tuning runs (with recorded proposals or rungs) and,
    once a selection exists, its evaluation runs."""
    t = study.tuning
    rungs: dict[str, int] = {}
    if t is not None and t.scheduler == "successive_halving" and t.search != "optuna":
        runs, rungs = _halving_runs(study, study_dir)
    elif t is not None and t.search == "optuna":
        from evalkit.tuning import load_proposals  # reads recorded proposals only
        runs = spec.expand(study, {a.name: load_proposals(study, study_dir, a) for a in study.algorithms})
    else:
        runs = spec.expand(study)
    if t is not None:
        chosen = read_selection(study_dir)
        if chosen is not None:
            values = {(s["algorithm"], s["env"]): s["setting"] for s in chosen["selected"]}
            try:
                runs += spec.evaluation_runs(study, values)
            except KeyError:
                pass  # the study changed since the selection was made
    return runs, rungs


def read_selection(study_dir: Path) -> dict | None:
    """``selection.json`` of a tuned study, or None."""
    path = Path(study_dir) / "selection.json"
    return json.loads(path.read_text()) if path.exists() else None


def is_imported(study: Study) -> bool:
    return all(a.agent == "imported" for a in study.algorithms)


# ------------------------------------------------------------------ the catalog


def _hp_columns(configs: pd.Series) -> pd.DataFrame:
    """``hp.<name>`` columns from a Series of config dicts or canonical-JSON strings (parsed once
    per distinct value: a sweep has few settings and many runs)."""
    keys = configs.map(lambda c: c if isinstance(c, str) else spec.canonical_json(dict(c)))
    uniq = pd.unique(keys)
    parsed = {k: json.loads(k) for k in uniq}
    names = sorted({n for d in parsed.values() for n in d})
    codes = pd.Categorical(keys, categories=uniq).codes
    out = {}
    for n in names:
        col = [store._hp_value(parsed[k].get(n, np.nan)) if n in parsed[k] else np.nan for k in uniq]
        out[f"hp.{n}"] = pd.Series(col, dtype=object).infer_objects().to_numpy()[codes]
    return pd.DataFrame(out, index=configs.index)


def identity_frame(runs: list) -> pd.DataFrame:
    """One row per planned :class:`evalkit.spec.Run`: run_id, algorithm, agent, env, phase,
    seed_index, seed, setting, budget (its step budget)."""
    return pd.DataFrame({
        "run_id": [r.run_id for r in runs], "algorithm": [r.algorithm for r in runs],
        "agent": [r.agent for r in runs], "env": [r.env for r in runs], "phase": [r.phase for r in runs],
        "seed_index": [r.seed_index for r in runs], "seed": [r.seed for r in runs],
        "setting": [r.setting for r in runs], "budget": [r.steps for r in runs]})


def build(study: Study, study_dir: Path, index: pd.DataFrame,
          failures: dict[str, dict]) -> tuple[pd.DataFrame, int]:
    """The catalog (:data:`COLUMNS` + ``hp.*``) and the number of orphans (stored runs no planned
    run matches). A results folder without a study file (imports) plans exactly what is stored."""
    full = {e.name: e.steps for e in study.envs}
    if is_imported(study):
        planned = index.drop(columns=["file"]).copy()
        planned["rung"] = -1
        configs = planned["config"]
    else:
        runs, rungs = planned_runs(study, study_dir)
        runs = list({r.run_id: r for r in runs}.values())
        planned = identity_frame(runs).assign(rung=[rungs.get(r.run_id, -1) for r in runs])
        configs = pd.Series([dict(r.config) for r in runs], dtype=object)
        hashes = {}
        for r in runs:
            hashes.setdefault(r.algorithm, current_agent_hash(r))
        planned["_hash"] = planned["algorithm"].map(hashes)
    planned["full_budget"] = planned["env"].map(full).fillna(planned["budget"]).astype("int64")
    stored = index.set_index("run_id")
    done = planned["run_id"].isin(stored.index)
    status = np.where(done, "done", np.where(planned["run_id"].isin(list(failures)), "failed", "missing"))
    cat = planned[["run_id", "algorithm", "agent", "env", "phase", "seed_index", "seed", "setting", "budget",
                   "full_budget", "rung"]].copy()
    cat["status"] = status
    hit = stored.reindex(planned["run_id"])
    if is_imported(study):
        cat["stale"] = False
    else:
        cat["stale"] = (done & (hit["agent_hash"].to_numpy() != planned["_hash"].to_numpy())).to_numpy()
    cat["n_episodes"] = np.where(done, hit["n_episodes"].astype(float).fillna(0).to_numpy(), 0).astype("int64")
    cat["n_eval_episodes"] = np.where(done, hit["n_eval_episodes"].astype(float).fillna(0).to_numpy(), 0).astype("int64")
    cat["diverged_flag"] = (done & (hit["status"].to_numpy() == "diverged")).to_numpy()
    for c in ("seed_index", "seed", "budget", "rung"):
        cat[c] = cat[c].astype("int64")
    if len(cat):
        cat = pd.concat([cat, _hp_columns(configs)], axis=1)
    orphans = int((~index["run_id"].isin(set(planned["run_id"]))).sum()) if len(index) else 0
    return cat, orphans


def quarantined(study_dir: Path) -> int:
    return len(list((Path(study_dir) / "quarantine").glob("*.parquet")))

