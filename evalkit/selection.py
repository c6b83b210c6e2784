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


def tuning_scores(study: Study, study_dir: Path) -> pd.DataFrame:
    """Per-run scores of the stored tuning runs of ``study`` (its metric, training episodes)."""
    from evalkit.status import load_current
    table = load_current(study, study_dir)
    table = table[table["phase"] == "tune"]
    # successive halving leaves truncated-budget runs: only full-budget runs are compared
    full = table["env"].map({e.name: e.steps for e in study.envs})
    table = table[table["budget"] == full]
    if table.empty:
        raise EvalkitError(f"{study_dir}: no tuning runs are stored yet")
    return metrics.run_scores(table, study.metric)


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


def select(study: Study, study_dir: Path) -> Selection:
    """Choose the reported setting of every (algorithm, env) from the stored tuning runs."""
    runs = tuning_scores(study, study_dir)
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
        return Selection("per_env: highest mean tuning score", values, scores)
    from evalkit import chs
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
    path = Path(study_dir) / "selection.json"
    return json.loads(path.read_text()) if path.exists() else None
