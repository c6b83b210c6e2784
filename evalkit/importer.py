"""``evalkit import``: existing logs into a study store, so every analysis works on them.

Accepted inputs (data only: nothing read here can execute code):

* a long table, CSV or Parquet, one row per episode: ``algorithm``, ``env`` (or ``task``), ``run``
  (or ``seed``/``seed_index``), ``step``, ``return``; optional ``length``, ``phase`` (tune/eval),
  ``mode`` (train/eval) and ``hp.<name>`` columns;
* rliable-style score matrices: ``.npz`` with one ``(runs, tasks)`` array per algorithm and an
  optional ``tasks`` array of names (read with ``allow_pickle=False``), or JSON
  ``{"tasks": [...], "scores": {"algorithm": [[...], ...]}}``. Each score becomes one episode.
"""

from __future__ import annotations

import json
import math
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit import seeding, spec, store
from evalkit.errors import EvalkitError

ALIASES = {"task": "env", "seed": "run", "seed_index": "run", "ret": "return", "episode_return": "return"}


def _fail(path: Path, what: str) -> EvalkitError:
    return EvalkitError(f"{path}: {what}")


def read_long_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            # every column as text first: nothing is interpreted before it is validated
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise _fail(path, f"expected a readable {path.suffix[1:].upper()} table ({type(exc).__name__}: {exc})") from None
    df = df.rename(columns={k: v for k, v in ALIASES.items() if k in df.columns and v not in df.columns})
    missing = [c for c in ("algorithm", "env", "run", "step", "return") if c not in df.columns]
    if missing:
        raise _fail(path, f"expected columns algorithm, env (or task), run (or seed), step, return; missing {missing}")
    for col in ("algorithm", "env"):
        df[col] = df[col].astype(str)
        bad = [v for v in df[col].unique() if not spec.NAME_RE.match(v) or ".." in v]
        if bad:
            raise _fail(path, f"column {col!r}: expected names of letters, digits, '_', '-', '.', found {bad[0]!r}")
    for col in ("step", "return", "run") + (("length",) if "length" in df.columns else ()):
        values = pd.to_numeric(df[col], errors="coerce") if col != "return" else _returns(df[col])
        bad = values.isna() & (df[col].astype(str).str.strip().str.lower() != "nan") if col == "return" else values.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise _fail(path, f"column {col!r} row {i + 2}: expected a number, found {str(df[col].iloc[i])[:40]!r}")
        df[col] = values
    for col, allowed in (("phase", ("tune", "eval")), ("mode", ("train", "eval"))):
        if col in df.columns:
            bad = set(df[col].astype(str)) - set(allowed)
            if bad:
                raise _fail(path, f"column {col!r}: expected {' or '.join(allowed)}, found {sorted(bad)[0]!r}")
        else:
            df[col] = allowed[1] if col == "phase" else "train"
    return df


def _returns(col: pd.Series) -> pd.Series:
    """Returns as floats; 'nan'/'inf' are kept (diverged runs), anything else non-numeric is an error."""
    return pd.to_numeric(col.astype(str).str.strip(), errors="coerce")


def read_score_matrices(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except ValueError as exc:  # object arrays need pickle: refused
            raise _fail(path, f"refused: the file needs pickle to load ({exc}); save plain numeric arrays") from None
        except (OSError, zipfile.BadZipFile) as exc:
            raise _fail(path, f"expected an .npz archive ({exc})") from None
        tasks = [str(t) for t in arrays.pop("tasks")] if "tasks" in arrays else None
    else:
        try:
            obj = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _fail(path, f"expected JSON {{'tasks': [...], 'scores': {{...}}}} ({exc})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("scores"), dict):
            raise _fail(path, "expected JSON {'tasks': [...], 'scores': {'algorithm': [[...]]}}")
        tasks = obj.get("tasks")
        try:
            arrays = {k: np.asarray(v, dtype=float) for k, v in obj["scores"].items()}
        except (TypeError, ValueError) as exc:
            raise _fail(path, f"scores: expected numeric (runs, tasks) matrices ({exc})") from None
    if not arrays:
        raise _fail(path, "expected at least one algorithm's score matrix")
    shapes = {k: a.shape for k, a in arrays.items()}
    for k, a in arrays.items():
        if a.ndim != 2 or a.size == 0 or not np.issubdtype(a.dtype, np.number):
            raise _fail(path, f"{k}: expected a non-empty numeric (runs, tasks) matrix, found shape {a.shape} "
                        f"dtype {a.dtype}")
    n_tasks = {s[1] for s in shapes.values()}
    if len(n_tasks) != 1:
        raise _fail(path, f"expected the same number of tasks for every algorithm, found {shapes}")
    tasks = tasks or [f"task{j}" for j in range(n_tasks.pop())]
    if len(tasks) != next(iter(shapes.values()))[1]:
        raise _fail(path, f"expected {next(iter(shapes.values()))[1]} task names, found {len(tasks)}")
    return arrays, [str(t) for t in tasks]


def matrices_to_long(arrays: dict[str, np.ndarray], tasks: list[str]) -> pd.DataFrame:
    rows = []
    for alg, a in arrays.items():
        for i in range(a.shape[0]):
            for j, task in enumerate(tasks):
                rows.append({"algorithm": alg, "env": task, "run": i, "step": 1, "return": float(a[i, j]),
                             "length": 1, "phase": "eval", "mode": "train"})
    return pd.DataFrame(rows)


def import_table(df: pd.DataFrame, name: str, root: Path, source: str) -> int:
    """Store one run per (algorithm, env, phase, run, setting) as compacted partition files with their
    catalog rows (:func:`evalkit.store.write_imported`): one atomic unit for a new study folder,
    vectorised over the table (no per-run Python loop over rows). Returns the number of runs."""
    if not spec.NAME_RE.match(name) or ".." in name:
        raise EvalkitError(f"--name: expected a name of letters, digits, '_', '-', '.', found {name!r}")
    study_dir = Path(root) / name
    hp_cols = sorted(c for c in df.columns if c.startswith("hp."))
    for c in ("algorithm", "env"):
        bad = [v for v in df[c].astype(str).unique() if not spec.NAME_RE.match(v) or ".." in v]
        if bad:
            raise EvalkitError(f"{source}: column {c!r}: expected names of letters, digits, '_', '-', '.', found {bad[0]!r}")
    if df.empty:
        return 0
    episodes, runs = runs_of_table(df, name, hp_cols)
    return store.write_imported(study_dir, episodes, runs, {"source": source, "versions": store.versions()})


def runs_of_table(df: pd.DataFrame, name: str, hp_cols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The validated long table as (episode rows with run constants, one row per run)."""
    keys = ["algorithm", "env", "phase", "run", *hp_cols]
    df = df.reset_index(drop=True)
    gid = df.groupby(keys, sort=True, dropna=False).ngroup().to_numpy()
    order = np.lexsort((df["step"].to_numpy(float), gid))  # stable: ties keep the file's order
    df, gid = df.iloc[order].reset_index(drop=True), gid[order]
    first = np.r_[0, np.flatnonzero(np.diff(gid)) + 1]
    heads = df.iloc[first]
    # one config per distinct hyperparameter combination (few), values typed as the old per-run path did
    combos = heads[hp_cols].astype(object).where(heads[hp_cols].notna(), np.nan) if hp_cols else None
    combo_key = (combos.astype(str).agg("\x1f".join, axis=1) if hp_cols else pd.Series([""] * len(heads)))
    configs: dict[str, dict] = {}
    for k, row in zip(combo_key, combos.itertuples(index=False) if hp_cols else [()] * len(heads)):
        if k not in configs:
            configs[k] = {c[3:]: _plain(v) for c, v in zip(hp_cols, row) if not _isnan(v)}
    cfg_json = {k: spec.canonical_json(c) for k, c in configs.items()}
    setting = {k: spec.setting_id(c) for k, c in configs.items()}
    run_index = heads["run"].astype(float).astype(np.int64).to_numpy()
    q = json.dumps
    run_ids = [seeding.short_hash(f'{{"algorithm":{q(a)},"config":{cfg_json[k]},"env":{q(e)},"imported":{q(name)},'
                                  f'"phase":{q(p)},"run":{r}}}')
               for a, e, p, r, k in zip(heads["algorithm"], heads["env"], heads["phase"], run_index, combo_key)]
    ret = df["return"].to_numpy(float)
    n_rows = np.diff(np.r_[first, len(df)])
    is_eval = (df["mode"] == "eval").to_numpy()
    runs = pd.DataFrame({
        "run_id": run_ids, "algorithm": heads["algorithm"].to_numpy(), "agent": "imported",
        "env": heads["env"].to_numpy(), "phase": heads["phase"].to_numpy(), "seed_index": run_index,
        "seed": run_index, "setting": [setting[k] for k in combo_key],
        "budget": np.maximum.reduceat(df["step"].to_numpy(np.int64), first),
        "status": np.where(np.logical_and.reduceat(np.isfinite(ret), first), "complete", "diverged"),
        "agent_hash": "imported", "config": [cfg_json[k] for k in combo_key], "written_at": time.time(),
        "n_eval_episodes": np.add.reduceat(is_eval.astype(np.int64), first)})
    runs["n_episodes"] = n_rows - runs["n_eval_episodes"]
    # two groups that name the same run (e.g. hp "1" and "1.0"): the later one is kept, as before
    dup = runs["run_id"].duplicated(keep="last").to_numpy()
    length = df["length"].fillna(0).to_numpy(np.int64) if "length" in df.columns else np.zeros(len(df), np.int64)
    episodes = pd.DataFrame({
        "algorithm": df["algorithm"].to_numpy(), "env": df["env"].to_numpy(), "mode": df["mode"].to_numpy(),
        "step": df["step"].to_numpy(np.int64), "episode": np.arange(len(df)) - np.repeat(first, n_rows),
        "return": ret, "length": length,
        "run_id": np.repeat(np.asarray(run_ids, dtype=object), n_rows), "phase": df["phase"].to_numpy(),
        "seed_index": np.repeat(run_index, n_rows), "seed": np.repeat(run_index, n_rows),
        "setting": np.repeat(runs["setting"].to_numpy(), n_rows)})
    for c in hp_cols:
        values = {k: store._hp_value(configs[k].get(c[3:], np.nan)) for k in configs}
        col = pd.Series([values[k] for k in combo_key], dtype=object)
        col = col.infer_objects()
        if col.dtype == object and col.dropna().map(type).nunique() > 1:
            col = col.map(lambda v: v if v is None or _isnan(v) else str(v))  # mixed types: stored as text
        episodes[c] = np.repeat(col.to_numpy(), n_rows)
    if dup.any():
        episodes = episodes[~np.repeat(dup, n_rows)]
        runs = runs[~dup]
    return episodes, runs.reset_index(drop=True)


def _plain(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, str):
        try:
            f = float(v)
            return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
        except ValueError:
            return v
    return v


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def import_file(path: str | Path, name: str, root: str | Path = "results") -> int:
    """Import a CSV/Parquet long table or an .npz/JSON of score matrices. Returns runs written."""
    path = Path(path)
    if not path.is_file():
        raise EvalkitError(f"{path}: expected an existing file")
    if path.suffix in (".csv", ".parquet"):
        df = read_long_table(path)
    elif path.suffix in (".npz", ".json"):
        df = matrices_to_long(*read_score_matrices(path))
    else:
        raise EvalkitError(f"{path}: expected a .csv, .parquet, .npz or .json file")
    return import_table(df, name, Path(root), str(path))
