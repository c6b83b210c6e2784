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
    """Write one run file per (algorithm, env, phase, run, setting). Returns the number of runs."""
    if not spec.NAME_RE.match(name) or ".." in name:
        raise EvalkitError(f"--name: expected a name of letters, digits, '_', '-', '.', found {name!r}")
    study_dir = Path(root) / name
    hp_cols = sorted(c for c in df.columns if c.startswith("hp."))
    for c in ("algorithm", "env"):
        bad = [v for v in df[c].astype(str).unique() if not spec.NAME_RE.match(v) or ".." in v]
        if bad:
            raise EvalkitError(f"{source}: column {c!r}: expected names of letters, digits, '_', '-', '.', found {bad[0]!r}")
    n = 0
    keys = ["algorithm", "env", "phase", "run", *hp_cols]
    for key, g in df.groupby(keys, sort=True, dropna=False):
        alg, env, phase, run = key[:4]
        config = {c[3:]: _plain(v) for c, v in zip(hp_cols, key[4:]) if not _isnan(v)}
        setting = spec.setting_id(config)
        run_index = int(run)
        run_id = seeding.short_hash(spec.canonical_json({"imported": name, "algorithm": alg, "env": env,
                                                         "phase": phase, "run": run_index, "config": config}))
        rows = [{"mode": r["mode"], "step": int(r["step"]), "episode": k, "return": float(r["return"]),
                 "length": int(r.get("length", 0) or 0)} for k, (_, r) in enumerate(g.sort_values("step").iterrows())]
        meta = {"run_id": run_id, "study": name, "algorithm": alg, "agent": "imported", "env": env, "env_id": env,
                "phase": phase, "seed_index": run_index, "seed": run_index, "setting": setting,
                "setting_values": config, "config": config, "steps": int(g["step"].max()),
                "status": "diverged" if not np.isfinite(g["return"].astype(float)).all() else "complete",
                "agent_hash": "imported", "source": source, "versions": store.versions()}
        store.write_run(study_dir, meta, rows)
        n += 1
    return n


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
