"""Fair tuning by construction (Henderson et al. 2018; Eimer et al. 2023; Patterson et al. 2024).

Every algorithm of a study is tuned with the same search, the same number of candidate settings
(``[tuning] budget``), the same tuning seeds (disjoint from the evaluation seeds) and the same
scheduler. Grid and random candidates are drawn up front from the study seed (:mod:`evalkit.spec`).
A model-based search (``search = "optuna"``: Ray Tune's ``OptunaSearch`` over the study's
Tune search space) runs in fixed-size batches with a fixed seed; every proposal is recorded in
``proposals/<algorithm>.json`` before it runs, so a resumed study replays the recorded proposals
instead of asking the searcher again. ``scheduler = "successive_halving"`` stops bad settings
early: every setting runs at ``min_steps``, the best ``1/eta`` go on at ``eta`` times the budget,
and so on up to the env's full budget (runs restart from scratch; a stopped setting's runs are
complete run files with their truncated budget recorded in ``steps``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from evalkit import accounting, metrics, seeding, spec, store
from evalkit import catalog as catalog_mod
from evalkit.spec import AlgorithmSpec, Run, Study

Execute = Callable[[list[Run], str], None]


def setting_objective(runs: pd.DataFrame) -> pd.Series:
    """Score per setting of one algorithm: per env, the setting's mean run score min-max scaled
    across that algorithm's settings (so envs weigh equally), then averaged over envs.

    ``runs``: per-run table (``metrics.run_scores``) of one algorithm's tuning runs. The divergence
    policy of :mod:`evalkit.accounting`: a setting with a diverged run in any env gets -inf (never
    selected, never promoted); so does a setting with no usable run in some env. Index: setting id.
    """
    if "used" not in runs.columns:  # a per-run table from an older caller: NaN scores are not usable
        runs = runs.assign(used=runs["score"].notna(), reason="")
    means = accounting.setting_means(runs, by=["setting", "env"]).set_index(["setting", "env"])["score"].unstack("env")
    lo, hi = means.min(), means.max()
    scaled = (means - lo) / (hi - lo).where(hi > lo, 1.0)
    objective = scaled.mean(axis=1, skipna=False)
    diverged = runs.groupby("setting")["diverged"].any()
    return objective.where(~diverged.reindex(objective.index, fill_value=False), -math.inf).fillna(-math.inf)


def _scores(study: Study, study_dir: Path, phase_runs: list[Run]) -> pd.DataFrame:
    """Per-run table of ``phase_runs``, one row per run (a run with no episode, a failed or missing
    one stays a row with its reason: :mod:`evalkit.accounting`), for the objective."""
    index = store.stored_index(study_dir)
    ids = {r.run_id for r in phase_runs}
    hit = index[index["run_id"].isin(ids)]
    table = store.load(study_dir, index=hit)
    failures = store.read_failures(study_dir)
    status = dict(zip(hit["run_id"], hit["status"]))
    runs = list({r.run_id: r for r in phase_runs}.values())
    catalog = catalog_mod.identity_frame(runs).assign(
        status=["done" if r.run_id in status else "failed" if r.run_id in failures else "missing" for r in runs],
        diverged_flag=[status.get(r.run_id) == "diverged" for r in runs])
    return metrics.run_scores(table, study.metric, catalog=catalog)


def proposal_path(study: Study, study_dir: Path, alg: AlgorithmSpec) -> Path:
    """``proposals/<algorithm>-<hash>.json``: the hash covers the search space, the tuning settings
    and the study seed, so editing the sweep starts a new search instead of replaying old proposals."""
    t = study.tuning
    key = spec.canonical_json({"seed": study.seed, "sweep": [[a.name, a.kind, list(a.values)] for a in alg.sweep],
                               "budget": t.budget, "batch": t.batch, "search": t.search})
    return Path(study_dir) / "proposals" / f"{alg.name}-{seeding.short_hash(key, 8)}.json"


def load_proposals(study: Study, study_dir: Path, alg: AlgorithmSpec) -> list[dict[str, Any]]:
    """The recorded proposals of an algorithm's model-based search, in the sweep's types."""
    path = proposal_path(study, study_dir, alg)
    return [coerce(alg, p) for p in json.loads(path.read_text())] if path.exists() else []


def _record_proposals(study: Study, study_dir: Path, alg: AlgorithmSpec, proposals: list[dict[str, Any]]) -> None:
    path = proposal_path(study, study_dir, alg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(proposals, indent=1))
    os.replace(tmp, path)


def _optuna_distribution(axis):
    """The study's search-space axis as an Optuna distribution (what OptunaSearch samples from)."""
    from optuna import distributions as d
    if axis.kind in ("loguniform", "uniform"):
        return d.FloatDistribution(float(axis.values[0]), float(axis.values[1]), log=axis.kind == "loguniform")
    if axis.kind == "randint":  # upper bound exclusive, as in ray.tune.randint
        return d.IntDistribution(int(axis.values[0]), int(axis.values[1]) - 1)
    return d.CategoricalDistribution(list(axis.values))


def _searcher(study: Study, alg: AlgorithmSpec, round_index: int):
    """Ray Tune's OptunaSearch (TPE), seeded per (study, algorithm, round): each round's proposals are
    reproducible, and a new round does not repeat the previous round's random start."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {a.name: _optuna_distribution(a) for a in alg.sweep}
    seed = int(seeding.derive(study.seed, "optuna", alg.name, round_index).generate_state(1)[0])
    return OptunaSearch(space=space, metric="objective", mode="max", seed=seed)


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in config.items()}


def coerce(alg: AlgorithmSpec, values: dict[str, Any]) -> dict[str, Any]:
    """A searcher's proposal in the sweep's types: ``randint`` axes are ints (searchers and JSON
    round trips may hand back 12.0), uniform/loguniform axes floats."""
    kinds = {a.name: a.kind for a in alg.sweep}
    out = {}
    for k, v in _plain(values).items():
        if kinds.get(k) == "randint":
            v = int(round(v))
        elif kinds.get(k) in ("uniform", "loguniform"):
            v = float(v)
        out[k] = v
    return out


def optuna_stage(study: Study, study_dir: Path, execute: Execute) -> dict[str, list[dict[str, Any]]]:
    """Run the model-based search batch by batch; returns the proposals per algorithm."""
    tuning = study.tuning
    proposals = {a.name: load_proposals(study, study_dir, a) for a in study.algorithms}
    while True:
        runs = spec.expand(study, proposals)
        execute(runs, "tuning")
        if all(len(p) >= tuning.budget for p in proposals.values()):
            return proposals
        scores = _scores(study, study_dir, runs)
        for alg in study.algorithms:
            done = proposals[alg.name]
            if len(done) >= tuning.budget:
                continue
            searcher = _searcher(study, alg, len(done) // tuning.batch)
            objective = setting_objective(scores[scores["algorithm"] == alg.name]) if done else pd.Series(dtype=float)
            for values in done:  # replay: the searcher sees exactly what it saw before
                value = objective.get(spec.setting_id(values), -math.inf)
                searcher.add_evaluated_point(values, float(value) if np.isfinite(value) else -1e9)
            n_new = min(tuning.batch, tuning.budget - len(done))
            new = [coerce(alg, searcher.suggest(f"{alg.name}-{len(done) + i}")) for i in range(n_new)]
            proposals[alg.name] = done + new
            _record_proposals(study, study_dir, alg, proposals[alg.name])


def halving_stage(study: Study, study_dir: Path, execute: Execute) -> list[Run]:
    """Successive halving over the up-front candidates; returns every tuning run it planned.

    Rung k runs the surviving settings at ``min_steps * eta**k`` steps (capped at the env budget);
    the best ``ceil(n / eta)`` by :func:`setting_objective` survive. The same rungs apply to
    every algorithm. Selection later uses only the last rung's (full-budget) runs.
    """
    tuning = study.tuning
    all_runs: list[Run] = []
    survivors = {a.name: spec.settings(study, a) for a in study.algorithms}
    max_steps = max(e.steps for e in study.envs)
    rung = 0
    while True:
        budget = tuning.min_steps * tuning.eta ** rung
        final = budget >= max_steps
        runs = []
        for alg in study.algorithms:
            defaults = spec.agent_defaults(alg)
            for env in study.envs_of(alg):
                for values in survivors[alg.name]:
                    batch = spec.batch_size(study, alg, tuning.runs, spec.resolved_config(alg, env, values, defaults))
                    runs += [spec.make_run(study, alg, env, values, "tune", i, defaults, batch=batch,
                                           steps=None if final else budget, n_runs=tuning.runs)
                             for i in range(tuning.runs)]
        execute(runs, f"tuning rung {rung}")
        all_runs += runs
        if final:
            return all_runs
        scores = _scores(study, study_dir, runs)
        for alg in study.algorithms:
            objective = setting_objective(scores[scores["algorithm"] == alg.name]).sort_values(ascending=False,
                                                                                               kind="stable")
            keep = set(objective.index[: max(1, math.ceil(len(survivors[alg.name]) / tuning.eta))])
            survivors[alg.name] = [v for v in survivors[alg.name] if spec.setting_id(v) in keep]
        rung += 1


def budget_spent(runs: pd.DataFrame) -> pd.DataFrame:
    """Per algorithm: settings tried, tuning runs and env steps actually spent (from stored runs).

    ``runs``: the long episode table of the tuning phase (``store.load``), which carries each
    run's ``budget`` (its step budget, truncated for stopped settings).
    """
    per_run = runs.drop_duplicates("run_id")
    out = per_run.groupby("algorithm").agg(settings=("setting", "nunique"), runs=("run_id", "nunique"),
                                           env_steps=("budget", "sum"))
    return out.reset_index()
