"""Readable names for algorithms' hyperparameter settings, and their numeric order.

A setting is shown as the hyperparameters its algorithm sweeps, never as a setting id (hash):
``lr=0.001, eps=0.2``, with compact numbers (:func:`number`). A run's label is its algorithm name,
plus ``[<setting>]`` when the algorithm has several settings in that env and phase
(``q_learning[alpha=0.1, eps=0.05]``). Labels sort by algorithm, then by each hyperparameter's
value as a number (``eps=0`` < ``eps=0.1`` < ``eps=0.15``), not as strings (:func:`sort_key`).
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

GROUP = ["algorithm", "phase", "env"]  # settings are told apart within one algorithm, env and phase


def number(v: object) -> str:
    """Compact text of a hyperparameter value: 4 significant digits, short exponents.

    >>> number(0.00025), number(1e-05), number(3.0), number(100000), number("adam")
    ('0.00025', '1e-5', '3', '100000', 'adam')
    """
    if isinstance(v, (bool, np.bool_)) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return str(v)
        text = format(float(v), ".4g")
        return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text)
    return str(v)


def setting_text(values: Mapping[str, object], names: Iterable[str] | None = None) -> str:
    """``lr=0.001, eps=0.2`` from ``{hyperparameter: value}`` (``hp.`` prefixes dropped), limited to
    ``names`` (the swept ones) when given, in that order; ``defaults`` when nothing is left."""
    keys = list(names) if names is not None else sorted(values)
    parts = [f"{k[3:] if k.startswith('hp.') else k}={number(values[k])}" for k in keys if k in values]
    return ", ".join(parts) or "defaults"


def swept(runs: pd.DataFrame) -> list[str]:
    """The ``hp.*`` columns whose value differs between runs of ``runs`` (one algorithm's runs)."""
    cols = [c for c in runs.columns if c.startswith("hp.")]
    return [c for c in cols if runs[c].astype(str).nunique(dropna=False) > 1]


def run_labels(runs: pd.DataFrame) -> pd.Series:
    """Display label per row of a per-run table (algorithm, phase, env, setting, hp.*): the
    algorithm name, plus its swept hyperparameters when it has several settings in that env and phase."""
    if runs.empty:
        return pd.Series([], dtype=object, index=runs.index)
    out = runs["algorithm"].astype(str).copy()
    group = [c for c in GROUP if c in runs.columns]
    ident = "setting" if "setting" in runs.columns else None
    for _, g in runs.groupby(group, sort=False):
        if ident is not None and g[ident].nunique() <= 1:
            continue  # one setting (e.g. tuning-agnostic draws share the setting 'agnostic'): the algorithm
        cols = swept(g)
        if not cols and ident is None:
            continue
        if cols:  # vectorised: each distinct value is formatted once (sweeps of 100,000 runs)
            parts = [f"{c[3:]}=" + g[c].map({v: number(v) for v in g[c].unique()}).astype(str) for c in cols]
            values = parts[0].str.cat(parts[1:], sep=", ") if len(parts) > 1 else parts[0]
        else:
            values = "setting " + g[ident].astype(str)
        out.loc[g.index] = g["algorithm"].astype(str) + "[" + values + "]"
    return out


def setting_names(runs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """``{(algorithm, setting id): "lr=0.001, eps=0.2"}``: each setting by the hyperparameters its
    algorithm sweeps (over all envs and phases of ``runs``), for tables that carry setting ids."""
    out = {}
    if runs.empty or "setting" not in runs.columns:
        return out
    for alg, g in runs.groupby("algorithm", sort=False):
        cols = swept(g.drop_duplicates("setting"))
        for _, r in g.drop_duplicates("setting").iterrows():
            out[(str(alg), str(r["setting"]))] = setting_text({c: r[c] for c in cols}, cols)
    return out


def _value_key(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def sort_key(label: str) -> tuple:
    """Order key of a label or setting text: algorithm, then each ``name=value`` pair with numbers
    compared as numbers (strings after numbers of the same name)."""
    label = str(label)
    head, sep, rest = label.partition("[")
    body = rest[:-1] if sep and rest.endswith("]") else ("" if sep else "")
    if not sep and "=" in head:  # a bare setting text
        head, body = "", label
    pairs = []
    for part in filter(None, (p.strip() for p in body.split(","))):
        name, _, value = part.partition("=")
        pairs.append((name, _value_key(value)))
    return (head, tuple(pairs), label)


def ordered(labels: Iterable[object]) -> list[str]:
    """Distinct labels in display order (:func:`sort_key`)."""
    return sorted({str(v) for v in labels}, key=sort_key)
