"""One setting per algorithm for comparison figures and tables (DESIGN.md section 7c).

Curves, aggregates, probability of improvement, profiles, score distributions and pairwise tests
compare algorithms, so each algorithm enters with one setting per env:

* a tuned study's evaluation runs already are the selected setting (tuning seeds disjoint from
  the reported ones): nothing to choose;
* the setting the user names (``--setting "alpha=0.2, epsilon=0.05"``, or per algorithm
  ``"sarsa: alpha=0.2; q_learning: alpha=0.8"``);
* otherwise each algorithm's best setting per env, by the mean run score on the very runs that are
  shown; labelled ``<algorithm> [best per env]``, with a maximization-bias warning (the best of
  several noisy means is biased upward; Henderson et al. 2018, Eimer et al. 2023).

The sweep itself is shown by the sensitivity curves, the performance-sensitivity plane and the
expected-max curves, which read every setting.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from evalkit.errors import EvalkitError
from evalkit.labels import number

BEST = "best per env"
BIAS_NOTE = ("comparison figures and tables use each algorithm's best setting per env, chosen on the runs they "
             "show ({which}): their estimates are biased upward (maximization bias); name one setting with "
             "--setting, or add a [tuning] block that selects on separate seeds")


def parse_setting(text: str) -> dict[str | None, dict[str, str]]:
    """``"alpha=0.2, epsilon=0.05"`` -> ``{None: {...}}``; ``"sarsa: alpha=0.2; q: alpha=1"`` ->
    ``{"sarsa": {"alpha": "0.2"}, "q": {"alpha": "1"}}`` (values as text, compared as numbers later)."""
    out: dict[str | None, dict[str, str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        alg, sep, body = part.partition(":")
        if not sep:
            alg, body = None, part
        values = {}
        for item in filter(None, (i.strip() for i in body.split(","))):
            name, eq, value = item.partition("=")
            if not eq or not name.strip() or not value.strip():
                raise EvalkitError(f"--setting: expected name=value pairs like 'alpha=0.2, epsilon=0.05' "
                                   f"(optionally 'algorithm: ...; ...'), found {item!r}")
            values[name.strip().removeprefix("hp.")] = value.strip()
        out[alg.strip() if alg else None] = values
    if not out:
        raise EvalkitError("--setting: expected name=value pairs like 'alpha=0.2, epsilon=0.05', found nothing")
    return out


def _matches(column: pd.Series, value: str) -> np.ndarray:
    try:
        target = float(value)
        numeric = pd.to_numeric(column, errors="coerce").to_numpy(float)
        return np.isclose(numeric, target, rtol=1e-9, atol=0.0) | (numeric == target)
    except ValueError:
        return (column.astype(str) == value).to_numpy()


def _named(runs: pd.DataFrame, alg: str, values: dict[str, str]) -> pd.DataFrame:
    g = runs[runs["algorithm"] == alg]
    keep = np.ones(len(g), bool)
    for name, value in values.items():
        col = f"hp.{name}"
        if col not in g.columns or g[col].isna().all():
            raise EvalkitError(f"--setting: algorithm {alg!r} has no hyperparameter {name!r}")
        keep &= _matches(g[col], value)
        if not keep.any():
            have = ", ".join(sorted({number(v) for v in g[col].dropna().unique()}, key=lambda t: (len(t), t)))
            raise EvalkitError(f"--setting: no stored run of {alg!r} has {name}={value} (values run: {have})")
    return g[keep]


def one_setting_per_algorithm(runs: pd.DataFrame, setting: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The runs of one setting per (algorithm, env), with their comparison ``label``; and notes.

    ``runs``: per-run table (algorithm, env, setting, score, hp.*). An algorithm with one setting
    per env keeps it (label: the algorithm). ``setting`` (see :func:`parse_setting`) names the
    setting; where it leaves several, or without it, the best mean score per env is taken and the
    label says ``[best per env]``. Runs of other settings are not dropped silently: the notes say
    which settings were left to the sweep figures.
    """
    if runs.empty:
        return runs, []
    named = parse_setting(setting) if setting else {}
    unknown = sorted(set(named) - {None} - set(map(str, runs["algorithm"])))
    if unknown:
        raise EvalkitError(f"--setting: no algorithm named {', '.join(map(repr, unknown))} in the stored runs "
                           f"(algorithms: {', '.join(sorted(map(str, runs['algorithm'].unique())))})")
    kept, notes, best_of = [], [], []
    for alg in sorted(runs["algorithm"].unique()):
        g = runs[runs["algorithm"] == alg]
        values = named.get(alg, named.get(None))
        if values:
            try:
                g = _named(runs, alg, values)
            except EvalkitError:
                if alg in named:
                    raise
                values = None  # a global --setting for hyperparameters this algorithm does not have
        label = str(alg)
        if g.groupby("env")["setting"].nunique().max() > 1:
            g = _best_per_env(g)
            label = f"{alg} [{BEST}]"
            best_of.append(str(alg))
        kept.append(g.assign(label=label))
    out = pd.concat(kept, ignore_index=True)
    if best_of:
        notes.append(BIAS_NOTE.format(which=", ".join(best_of)))
    pairs = ["algorithm", "setting"]
    left = len(runs[pairs].drop_duplicates()) - len(out[pairs].drop_duplicates())
    if left > 0:
        notes.append(f"{left} other settings are shown only by the sensitivity and expected-max figures")
    return out, notes


def _best_per_env(g: pd.DataFrame) -> pd.DataFrame:
    """The runs of the setting with the highest mean finite score in each env (ties: first in id order)."""
    parts = []
    for env, h in g.groupby("env", sort=True):
        means = h.groupby("setting")["score"].apply(lambda s: s[np.isfinite(s)].mean() if np.isfinite(s).any()
                                                     else -math.inf)
        parts.append(h[h["setting"] == means.sort_index().idxmax()])
    return pd.concat(parts)
