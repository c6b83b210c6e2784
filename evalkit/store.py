"""The run store: one Parquet file per completed run, written atomically (DESIGN.md section 4).

Layout below a study's results folder::

    runs/algorithm=<a>/env=<e>/<run_id>.parquet   one row per episode, run metadata in the footer
    failures/<run_id>.json                        traceback, cause and attempts of a failed run
    quarantine/                                   unreadable files moved out of the way

Rows: ``mode`` ("train" | "eval"), ``step`` (env steps when the episode ended), ``episode``,
``return``, ``length``, optional extras (``loss``, ...), and per-run constants ``run_id``,
``phase``, ``seed_index``, ``seed``, ``setting`` and ``hp.<name>``. ``algorithm`` and ``env``
are hive partitions, so ``pyarrow.dataset.dataset(dir, partitioning="hive")`` reads the store too.
Stored data is Parquet and JSON only: loading a store never executes code.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evalkit.errors import EvalkitError

SCHEMA_VERSION = 1
META_KEY = b"evalkit"
BASE_COLUMNS = ("mode", "step", "episode", "return", "length")


def run_path(study_dir: Path, algorithm: str, env: str, run_id: str) -> Path:
    return Path(study_dir) / "runs" / f"algorithm={algorithm}" / f"env={env}" / f"{run_id}.parquet"


def failure_path(study_dir: Path, run_id: str) -> Path:
    return Path(study_dir) / "failures" / f"{run_id}.json"


def _hp_value(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def episodes_table(rows: list[Mapping[str, Any]], constants: Mapping[str, Any]) -> pa.Table:
    """Episode rows plus per-run constant columns as an Arrow table (fixed column order)."""
    extras = sorted({k for r in rows for k in r} - set(BASE_COLUMNS))
    cols: dict[str, pa.Array] = {
        "mode": pa.array([r["mode"] for r in rows], pa.string()),
        "step": pa.array([int(r["step"]) for r in rows], pa.int64()),
        "episode": pa.array([int(r["episode"]) for r in rows], pa.int64()),
        "return": pa.array([float(r["return"]) for r in rows], pa.float64()),
        "length": pa.array([int(r["length"]) for r in rows], pa.int64()),
    }
    for k in extras:
        cols[k] = pa.array([float(r[k]) if r.get(k) is not None else None for r in rows], pa.float64())
    n = len(rows)
    for k, v in constants.items():
        cols[k] = pa.array([_hp_value(v)] * n)
    return pa.table(cols)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    import evalkit
    out = {"evalkit": evalkit.__version__, "python": platform.python_version()}
    for mod in ("torch", "gymnasium", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def write_run(study_dir: Path, meta: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> Path:
    """Write one completed run atomically: a temporary file, fsync, then ``os.replace``.

    ``meta`` must hold run_id, algorithm, env, phase, seed_index, seed, setting, config.
    A file that exists under its final name is always complete.
    """
    path = run_path(study_dir, meta["algorithm"], meta["env"], meta["run_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    constants = {"run_id": meta["run_id"], "phase": meta["phase"], "seed_index": int(meta["seed_index"]),
                 "seed": int(meta["seed"]), "setting": meta["setting"]}
    constants.update({f"hp.{k}": v for k, v in sorted(meta["config"].items())})
    table = episodes_table(rows, constants)
    full_meta = {**meta, "schema_version": SCHEMA_VERSION, "written_at": time.time()}
    table = table.replace_schema_metadata({META_KEY: json.dumps(full_meta, default=str).encode()})
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fail = failure_path(study_dir, meta["run_id"])
    if fail.exists():
        fail.unlink()
    return path


def read_meta(path: Path) -> dict[str, Any]:
    """The run metadata stored in a run file's footer. Raises on an unreadable file."""
    md = pq.read_schema(path).metadata or {}
    if META_KEY not in md:
        raise EvalkitError(f"{path}: not an evalkit run file (no '{META_KEY.decode()}' metadata)")
    meta = json.loads(md[META_KEY])
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise EvalkitError(f"{path}: run file schema version {version!r}, this evalkit reads version "
                           f"{SCHEMA_VERSION}; re-run it or use a matching evalkit version")
    return meta


@dataclass(frozen=True)
class StoredRun:
    path: Path
    meta: dict[str, Any]


def quarantine(study_dir: Path, path: Path, reason: str) -> Path:
    """Move an unreadable file to ``quarantine/`` (never delete data) and warn."""
    qdir = Path(study_dir) / "quarantine"
    qdir.mkdir(parents=True, exist_ok=True)
    dest = qdir / f"{int(time.time())}-{path.name}"
    shutil.move(str(path), dest)
    (dest.parent / (dest.name + ".reason.txt")).write_text(reason + "\n")
    warnings.warn(f"{path}: unreadable run file moved to {dest}: {reason}", stacklevel=2)
    return dest


def scan(study_dir: Path, repair: bool = True) -> dict[str, StoredRun]:
    """``{run_id: StoredRun}`` of every complete, readable run file of a study.

    A file that cannot be read (truncated, garbage, foreign) is quarantined when ``repair`` is
    true, so the runner redoes its run. Leftover temporary files of a killed writer are removed.
    """
    out: dict[str, StoredRun] = {}
    runs_dir = Path(study_dir) / "runs"
    if not runs_dir.exists():
        return out
    for tmp in runs_dir.glob("*/*/.*.tmp"):
        if repair:
            tmp.unlink(missing_ok=True)
    for path in sorted(runs_dir.glob("algorithm=*/env=*/*.parquet")):
        try:
            meta = read_meta(path)
            pq.ParquetFile(path).metadata  # noqa: B018  (footer must parse)
            if meta.get("run_id") != path.stem:
                raise EvalkitError(f"file name does not match its run_id {meta.get('run_id')!r}")
        except Exception as exc:  # any unreadable file is quarantined, whatever the reader raised
            if repair:
                quarantine(study_dir, path, f"{type(exc).__name__}: {exc}")
            continue
        out[meta["run_id"]] = StoredRun(path, meta)
    return out


def load(study_dir: str | Path, runs: Iterable[StoredRun] | None = None) -> pd.DataFrame:
    """One long DataFrame of every stored episode of a study.

    Columns: ``algorithm``, ``env``, ``agent``, ``run_id``, ``phase``, ``seed_index``, ``seed``,
    ``setting``, ``budget`` (the run's step budget), ``mode``, ``step``, ``episode``, ``return``,
    ``length``, extras, and ``hp.<name>`` for every hyperparameter (NaN where an algorithm has
    none of that name). Empty (with these columns) when nothing is stored.
    """
    study_dir = Path(study_dir)
    stored = list(runs) if runs is not None else list(scan(study_dir, repair=False).values())
    frames = []
    for sr in stored:
        try:
            df = pq.read_table(sr.path).to_pandas()
        except Exception as exc:
            warnings.warn(f"{sr.path}: skipped unreadable run file ({exc})", stacklevel=2)
            continue
        df.insert(0, "algorithm", sr.meta["algorithm"])
        df.insert(1, "env", sr.meta["env"])
        df.insert(2, "agent", sr.meta.get("agent", ""))
        df["budget"] = int(sr.meta.get("steps", 0))
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["algorithm", "env", "agent", "run_id", "phase", "seed_index", "seed",
                                     "setting", "budget", *BASE_COLUMNS])
    table = pd.concat(frames, ignore_index=True, sort=False)
    front = ["algorithm", "env", "agent", "run_id", "phase", "seed_index", "seed", "setting", "budget"]
    hp = sorted(c for c in table.columns if c.startswith("hp."))
    rest = [c for c in table.columns if c not in front and c not in hp]
    return table[front + rest + hp]


def write_failure(study_dir: Path, run_id: str, record: Mapping[str, Any]) -> Path:
    """Record (or update) a failed run as JSON, atomically."""
    path = failure_path(study_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(record), indent=2, default=str))
    os.replace(tmp, path)
    return path


def read_failures(study_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted((Path(study_dir) / "failures").glob("*.json")):
        try:
            out[p.stem] = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            out[p.stem] = {"run_id": p.stem, "error": "unreadable failure record"}
    return out
