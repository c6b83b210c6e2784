"""Stage two of a tuned study: pick the setting each algorithm is reported with.

``select = "per_env"``: per (algorithm, env), the setting with the highest mean tuning-run score
among the settings with no diverged run in that env (the divergence policy of :mod:`evalkit.accounting`).
``select = "cross_env"``: one setting per algorithm for all envs, by the CHS score of
Patterson et al. (2024), computed on the tuning runs (see :mod:`evalkit.chs`).
Selection uses tuning seeds only; the evaluation runs that follow use fresh seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit import accounting, metrics, spec
from evalkit.errors import EvalkitError
from evalkit.spec import Study


@dataclass(frozen=True)
class Selection:
    """``values[(algorithm, env)]`` = the chosen ``{hyperparameter: value}`` setting."""

    method: str
    values: dict[tuple[str, str], dict[str, Any]]
    scores: dict[tuple[str, str], float]

    def as_dict(self) -> dict:
        return {"method": self.method,
                "selected": [{"algorithm": a, "env": e, "setting": v, "tuning_score": self.scores.get((a, e))}
                             for (a, e), v in sorted(self.values.items())]}


def tuning_scores(study: Study, study_dir: Path, results=None, rung: int | None = None) -> pd.DataFrame:
    """Per-run table of the tuning phase, one row per planned tuning run (:meth:`StudyResults.runs`):
    ``score``, ``used``, ``reason``. Successive halving: settings are compared at the full budget by
    default (``rung``: at that rung's budget); a setting stopped at an earlier rung is a complete
    run excluded there as ``stopped-at-rung``, never missing."""
    from evalkit import results as results_mod
    res = results if results is not None else results_mod.load(study, study_dir)
    runs = res.runs("tune", study.metric, rung=rung)
    if runs.empty or not (runs["reason"] != "missing").any():
        raise EvalkitError(f"{study_dir}: no tuning runs are stored yet")
    return runs


def _setting_values(runs: pd.DataFrame, study: Study, algorithm: str, setting: str) -> dict[str, Any]:
    """The swept values of one stored setting, in the agent's declared types (a column shared with an
    algorithm that lacks the hyperparameter holds NaN there, so pandas stores ints as floats)."""
    row = runs[(runs["algorithm"] == algorithm) & (runs["setting"] == setting)].iloc[0]
    alg = study.algorithm(algorithm)
    defaults = spec.agent_defaults(alg)
    out = {}
    for axis in alg.sweep:
        v = _plain(row[f"hp.{axis.name}"])
        if isinstance(defaults.get(axis.name), bool) or isinstance(axis.values[0], bool):
            v = bool(v)
        elif isinstance(defaults.get(axis.name), int) or axis.kind == "randint":
            v = int(round(v))
        out[axis.name] = v
    return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def select(study: Study, study_dir: Path, results=None) -> Selection:
    """Choose the reported setting of every (algorithm, env) from the stored tuning runs."""
    runs = tuning_scores(study, study_dir, results)
    values, scores = {}, {}
    if study.tuning.select == "per_env":
        # the divergence policy (evalkit.accounting): a setting with a diverged run in an env is never
        # chosen there, and is never judged on its surviving runs
        means = accounting.setting_means(runs)
        for alg in study.algorithms:
            for env in study.envs_of(alg):
                cell = means[(means["algorithm"] == alg.name) & (means["env"] == env.name)]
                ok = cell[cell["score"].notna()]
                if ok.empty:
                    raise EvalkitError(f"{alg.name} on {env.name}: every tuning setting diverged or has no usable "
                                       f"run ({len(cell)} settings; {accounting.of(runs[(runs['algorithm'] == alg.name) & (runs['env'] == env.name)]).note()})")
                best = ok.loc[ok["score"].idxmax()]
                values[(alg.name, env.name)] = _setting_values(runs, study, alg.name, best["setting"])
                scores[(alg.name, env.name)] = float(best["score"])
        return Selection("per_env: highest mean tuning score among settings with no diverged run", values, scores)
    from evalkit import chs
    runs = chs.stage_runs(runs)  # used runs + diverged ones (CHS scores them 0, as the paper does)
    chosen = chs.select_chs(runs)
    for alg in study.algorithms:
        setting = chosen[alg.name]
        setting = setting if isinstance(setting, str) else setting["setting"]
        chs_score = chs.chs_scores(runs, alg.name).set_index("setting")["score"].get(setting)
        for env in study.envs_of(alg):
            values[(alg.name, env.name)] = _setting_values(runs, study, alg.name, setting)
            scores[(alg.name, env.name)] = float(chs_score) if chs_score is not None else float("nan")
    return Selection("cross_env: highest CHS score (Patterson et al. 2024)", values, scores)


def load_selection(study_dir: Path) -> dict | None:
    from evalkit.catalog import read_selection
    return read_selection(study_dir)
