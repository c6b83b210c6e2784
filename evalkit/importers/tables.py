"""evalkit's own long table (CSV/Parquet) and rliable-style score matrices (.npz / JSON).

* Long table, one row per episode: ``algorithm``, ``env`` (or ``task``), ``run`` (or
  ``seed``/``seed_index``), ``step``, ``return``; optional ``length``, ``phase`` (tune/eval),
  ``mode`` (train/eval) and ``hp.<name>`` columns. Every cell is read as text and validated.
* Score matrices: ``.npz`` with one ``(runs, tasks)`` array per algorithm and an optional ``tasks``
  array of names (``allow_pickle=False``), or JSON ``{"tasks": [...], "scores": {"alg": [[...]]}}``.
  Each score becomes a run with one episode.
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
from evalkit.importers.records import Episodes, ImportProblem, RunRecord

ALIASES = {"task": "env", "seed": "run", "seed_index": "run", "ret": "return", "episode_return": "return"}


def is_long_table(header: list[str]) -> bool:
    """Columns of an episode table: algorithm, step, return and an env (or task) column."""
    cols = set(header)
    return {"algorithm", "step", "return"} <= cols and bool({"env", "task"} & cols)


def read_long_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            # every column as text first: nothing is interpreted before it is validated
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ImportProblem(path, f"expected a readable {path.suffix[1:].upper()} table ({type(exc).__name__}: {exc})") from None
    df = df.rename(columns={k: v for k, v in ALIASES.items() if k in df.columns and v not in df.columns})
    missing = [c for c in ("algorithm", "env", "run", "step", "return") if c not in df.columns]
    if missing:
        raise ImportProblem(path, f"expected columns algorithm, env (or task), run (or seed), step, return; missing {missing}")
    for col in ("algorithm", "env"):
        df[col] = df[col].astype(str)
        bad = [v for v in df[col].unique() if not spec.NAME_RE.match(v) or ".." in v]
        if bad:
            raise ImportProblem(path, f"column {col!r}: expected names of letters, digits, '_', '-', '.', found {bad[0]!r}")
    for col in ("step", "return", "run") + (("length",) if "length" in df.columns else ()):
        text = df[col].astype(str).str.strip()
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna() & (text.str.lower() != "nan") if col == "return" else values.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ImportProblem(path, f"column {col!r} row {i + 2}: expected a number, found {str(df[col].iloc[i])[:40]!r}")
        df[col] = values
    for col, allowed in (("phase", ("tune", "eval")), ("mode", ("train", "eval"))):
        if col in df.columns:
            bad = set(df[col].astype(str)) - set(allowed)
            if bad:
                raise ImportProblem(path, f"column {col!r}: expected {' or '.join(allowed)}, found {sorted(bad)[0]!r}")
    return df


def table_records(df: pd.DataFrame, source: str) -> list[RunRecord]:
    """One run per (algorithm, env, phase, run, hyperparameter values)."""
    hp_cols = sorted(c for c in df.columns if c.startswith("hp."))
    if "mode" not in df.columns:
        df = df.assign(mode="train")
    keys = ["algorithm", "env", *(["phase"] if "phase" in df.columns else []), "run", *hp_cols]
    out = []
    for key, g in df.groupby(keys, sort=True, dropna=False):
        values = dict(zip(keys, key))
        config = {c[3:]: _plain(values[c]) for c in hp_cols if not _isnan(values[c])}
        g = g.sort_values("step", kind="stable")
        parts = [Episodes.of(m["step"], m["return"], m["length"] if "length" in m else None, mode)
                 for mode, m in g.groupby("mode", sort=False)]
        run = int(values["run"])
        out.append(RunRecord(source=source, episodes=Episodes.concat(parts), algorithm=values["algorithm"],
                             env=values["env"], seed=run, run=run, config=config, phase=values.get("phase"),
                             budget=None))  # not recorded: --steps, else the last step
    return out


def runs_of_table(df: pd.DataFrame, name: str, hp_cols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The validated long table as (episode rows with run constants, one row per run), vectorised
    over the table (no Python loop over runs: 100,000 runs import in seconds). Run ids are those of
    :func:`evalkit.importers.writer.run_id` (the same run imported again gets the same id); the
    result feeds :func:`evalkit.store.write_imported` (compacted partition files + catalog rows)."""
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


def read_score_matrices(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except ValueError as exc:  # object arrays need pickle: refused
            raise ImportProblem(path, f"refused: the file needs pickle to load ({exc}); save plain numeric arrays") from None
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise ImportProblem(path, f"expected an .npz archive ({exc})") from None
        tasks = [str(t) for t in arrays.pop("tasks")] if "tasks" in arrays else None
    else:
        try:
            obj = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ImportProblem(path, f"expected JSON {{'tasks': [...], 'scores': {{...}}}} ({exc})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("scores"), dict):
            raise ImportProblem(path, "expected JSON {'tasks': [...], 'scores': {'algorithm': [[...]]}} or a score "
                                "file {task: [score of run 1, ...]}")
        tasks = obj.get("tasks")
        try:
            arrays = {k: np.asarray(v, dtype=float) for k, v in obj["scores"].items()}
        except (TypeError, ValueError) as exc:
            raise ImportProblem(path, f"scores: expected numeric (runs, tasks) matrices ({exc})") from None
    if not arrays:
        raise ImportProblem(path, "expected at least one algorithm's score matrix")
    shapes = {k: a.shape for k, a in arrays.items()}
    for k, a in arrays.items():
        if a.ndim != 2 or a.size == 0 or not np.issubdtype(a.dtype, np.number):
            raise ImportProblem(path, f"{k}: expected a non-empty numeric (runs, tasks) matrix, found shape {a.shape} "
                                f"dtype {a.dtype}")
    n_tasks = {s[1] for s in shapes.values()}
    if len(n_tasks) != 1:
        raise ImportProblem(path, f"expected the same number of tasks for every algorithm, found {shapes}")
    tasks = tasks or [f"task{j}" for j in range(n_tasks.pop())]
    if len(tasks) != next(iter(shapes.values()))[1]:
        raise ImportProblem(path, f"expected {next(iter(shapes.values()))[1]} task names, found {len(tasks)}")
    return arrays, [str(t) for t in tasks]


def matrix_records(arrays: dict[str, np.ndarray], tasks: list[str], source: str) -> list[RunRecord]:
    return [RunRecord(source=f"{source}#{alg}", episodes=Episodes.of([1], [float(a[i, j])], [1]), algorithm=alg,
                      env=task, seed=i, run=i, budget=1)
            for alg, a in arrays.items() for i in range(a.shape[0]) for j, task in enumerate(tasks)]
