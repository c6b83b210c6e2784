"""Terminal rendering of result tables that fits a given width (100 columns by default).

Wide results (sensitivity, CHS, audit, compare) hold many quantities per row. :func:`render`
first folds each ``x``/``x_low``/``x_high`` triple into one ``x [low, high]`` column and formats
numbers compactly (4 significant digits); a table that then fits the width prints as a table, else
as one block per row with one quantity per line (``name  value``, long values wrapped). The full
table is never lost: the commands write it as CSV beside the study. :func:`fit` wraps free text
(rendered reports) to the width. :func:`readable_settings` replaces setting ids (hashes) by the
hyperparameters they set (:mod:`evalkit.labels`).
"""

from __future__ import annotations

import math
import textwrap
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from evalkit.labels import number, setting_names

WIDTH = 100
SETTING_COLUMNS = ("setting", "cross_env_setting", "best_setting", "selected_setting")


def cell(v: object) -> str:
    """Compact text of one value: 4 significant digits for floats, thousands separators for big ints."""
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "n/a"
        if float(v).is_integer() and abs(v) >= 1e4 and abs(v) < 1e15:
            return f"{int(v):,}"
        return number(v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return f"{int(v):,}" if abs(int(v)) >= 10_000 else str(int(v))
    return "" if v is None else str(v)


def fold_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """``x``, ``x_low``, ``x_high`` (or ``point``/``low``/``high``) -> one text column ``x``:
    ``point [low, high]``."""
    out = df.copy()
    for c in list(out.columns):
        lo, hi = (f"{c}_low", f"{c}_high") if c != "point" else ("low", "high")
        if lo in out.columns and hi in out.columns:
            out[c] = [_interval(p, a, b) for p, a, b in zip(out[c], out[lo], out[hi])]
            out = out.drop(columns=[lo, hi])
    return out


def _interval(point, low, high) -> str:
    if not all(isinstance(v, (int, float, np.number)) for v in (point, low, high)):
        return f"{cell(point)} [{cell(low)}, {cell(high)}]"
    if not np.isfinite(point):
        return "n/a"
    if not (np.isfinite(low) and np.isfinite(high)):
        return cell(point)
    return f"{cell(point)} [{cell(low)}, {cell(high)}]"


def _as_text(df: pd.DataFrame) -> pd.DataFrame:
    return df.apply(lambda col: col.map(cell)) if len(df) else df.astype(str)


def render(df: pd.DataFrame, width: int = WIDTH, key: Sequence[str] | None = None, drop: Sequence[str] = (
        "method", "reps", "confidence")) -> str:
    """``df`` as text no wider than ``width``: a table when it fits, else one block per row.

    ``key``: the columns that name a row (default: the leading text columns, e.g. algorithm, env);
    in the block layout they head the block and every other column is a line ``name  value``.
    """
    df = fold_intervals(df.drop(columns=[c for c in drop if c in df.columns]))
    if df.empty:
        return "(no rows)"
    text = _as_text(df)
    table = text.to_string(index=False)
    if max(map(len, table.splitlines())) <= width:
        return table
    if key is None:
        key = []
        for c in df.columns:
            if df[c].dtype == object and len(key) < 2 and not any(x.endswith("]") for x in text[c].head(3)):
                key.append(c)
            else:
                break
        key = key or [df.columns[0]]
    rest = [c for c in df.columns if c not in key]
    name_w = min(max(len(c) for c in rest), 32) if rest else 0
    lines = []
    for _, r in text.iterrows():
        lines.append(" | ".join(f"{k}: {r[k]}" if len(key) > 1 else r[k] for k in key))
        for c in rest:
            head = f"  {c:<{name_w}}  "
            lines += textwrap.wrap(r[c] or "-", width=width, initial_indent=head,
                                   subsequent_indent=" " * len(head), break_on_hyphens=False) or [head.rstrip()]
        lines.append("")
    return "\n".join(lines).rstrip()


def fit(text: str, width: int = WIDTH) -> str:
    """Wrap every line of ``text`` longer than ``width``, continuing under its own indentation + 4."""
    out = []
    for line in text.splitlines():
        if len(line) <= width:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        out += textwrap.wrap(line, width=width, subsequent_indent=indent, break_on_hyphens=False,
                             drop_whitespace=True)
    return "\n".join(out)


def readable_settings(df: pd.DataFrame, runs: pd.DataFrame | None = None,
                      names: Mapping[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """Setting-id columns (``setting``, ``cross_env_setting``, ``best_setting``...) shown as the
    swept hyperparameters (``alpha=0.1, epsilon=0.05``); the id is kept in ``<column>_id``.

    ``runs``: the per-run table the ids come from (algorithm, setting, hp.*), or ``names`` from
    :func:`evalkit.labels.setting_names`. Ids without a name are left as they are.
    """
    names = dict(names or {})
    if runs is not None and len(runs):
        names.update(setting_names(runs))
    if not names or "algorithm" not in df.columns:
        return df
    out = df.copy()
    for c in SETTING_COLUMNS:
        if c in out.columns:
            ids = out[c].astype(str)
            text = [names.get((str(a), s), s) for a, s in zip(out["algorithm"], ids)]
            if list(text) != list(ids):
                out.insert(out.columns.get_loc(c) + 1, f"{c}_id", ids)
                out[c] = text
    return out


def render_comparison(result, width: int = WIDTH) -> str:
    """:class:`evalkit.compare.Comparison` for the terminal: its per-env and aggregate tables through
    :func:`render` (the words of ``Comparison.render``, the tables fitted to ``width``)."""
    head, _, _ = result.render().partition("\n")
    lines = [fit(head, width), render(result.per_env, width, key=["env"]), "",
             f"across environments ({result.normalization}):", render(result.aggregate, width)]
    lines += [fit(f"note: {n}", width) for n in result.notes]
    return "\n".join(lines)
