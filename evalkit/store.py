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

At scale (issue 18) a partition also holds a few compacted files, ``part-<time>-<id>.parquet``,
each the episode rows of many runs with the same columns as run files. An import writes them
directly; the runner compacts a partition's run files into one once it holds many
(:func:`compact`). Every compacted file has its per-run metadata (the run files' footers, as
table rows) in ``catalog/stored/<same name>.parquet``, written *before* the data file, so a
compacted file that exists always has its catalog rows. The data file's ``os.replace`` is the
commit point; the run files it replaces are deleted after it. When one run is found in several
files (a writer killed between the two steps, or a run file rewritten after compaction), a run
file wins over compacted files and a newer compacted file over an older one; nothing is read twice.
Reading is one multithreaded ``pyarrow.dataset`` scan over the chosen files (:func:`load`).
"""

from __future__ import annotations

import collections
import functools
import json
import os
import platform
import shutil
import subprocess
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from evalkit.errors import EvalkitError

SCHEMA_VERSION = 1
META_KEY = b"evalkit"
BASE_COLUMNS = ("mode", "step", "episode", "return", "length")
PART_PREFIX = "part-"
#: columns of a stored-run index (:func:`stored_index`): one row per stored run
INDEX_COLUMNS = ("run_id", "algorithm", "agent", "env", "phase", "seed_index", "seed", "setting", "budget",
                 "status", "agent_hash", "config", "written_at", "n_episodes", "n_eval_episodes", "file")
FRONT = ["algorithm", "env", "agent", "run_id", "phase", "seed_index", "seed", "setting", "budget"]


def run_path(study_dir: Path, algorithm: str, env: str, run_id: str) -> Path:
    return Path(study_dir) / "runs" / f"algorithm={algorithm}" / f"env={env}" / f"{run_id}.parquet"


def failure_path(study_dir: Path, run_id: str) -> Path:
    return Path(study_dir) / "failures" / f"{run_id}.json"


def config_json(config: Mapping[str, Any]) -> str:
    """A run's config as canonical JSON (sorted keys, no whitespace), as the catalog stores it."""
    return json.dumps(dict(config), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


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


@functools.lru_cache(maxsize=None)
def git_commit() -> str | None:
    """The evalkit checkout's commit (once per process: the driver stamps every run file with it)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=None)
def _versions() -> tuple:
    # installed versions from package metadata: importing torch only to read its version cost an
    # import of evalkit seconds (issue 18)
    from importlib import metadata
    import evalkit
    out = {"evalkit": evalkit.__version__, "python": platform.python_version()}
    for mod in ("torch", "gymnasium", "numpy"):
        try:
            out[mod] = metadata.version(mod)
        except metadata.PackageNotFoundError:
            pass
    return tuple(out.items())


def versions() -> dict[str, str]:
    return dict(_versions())


def _write_atomic(table: pa.Table, path: Path, **options: Any) -> None:
    """Write ``table`` to ``path`` as Parquet: a temporary file, fsync, then ``os.replace``, so a file
    under its final name is always complete (a killed writer leaves only a ``.tmp`` to remove)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, **options)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
    n_eval = sum(1 for r in rows if r["mode"] == "eval")
    full_meta = {**meta, "schema_version": SCHEMA_VERSION, "written_at": time.time(),
                 "n_episodes": len(rows) - n_eval, "n_eval_episodes": n_eval}
    table = table.replace_schema_metadata({META_KEY: json.dumps(full_meta, default=str).encode()})
    _write_atomic(table, path)
    fail = failure_path(study_dir, meta["run_id"])
    if fail.exists():
        fail.unlink()
    return path


#: threads that write or remove many files at once: fsync and unlink release the GIL, and a journaling
#: file system commits concurrent fsyncs together (measured on ext4 with ``discard``: fsync 2.4 ms a
#: file alone, 0.17 ms a file with 8 threads; unlink 1.9 ms alone, 0.11 ms with 8 threads)
IO_THREADS = 8


def _each(fn, items: Sequence) -> list:
    """``[fn(x) for x in items]`` on :data:`IO_THREADS` threads (in order; the first error is raised
    after the others finished, so no write is left half-done by the one that failed)."""
    if len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(min(IO_THREADS, len(items))) as ex:
        futures = [ex.submit(fn, x) for x in items]
    return [f.result() for f in futures]


def write_runs(study_dir: Path, items: Sequence[tuple[Mapping[str, Any], list]]) -> list[Path]:
    """:func:`write_run` for many ``(meta, rows)`` at once: each run is still its own atomic file
    (written, fsynced, renamed); only their writes overlap in time."""
    return _each(lambda item: write_run(study_dir, *item), items)


#: schemas of run files read by the last scans, keyed by (path, mtime_ns, size): a load right
#: after a scan does not parse every footer twice
_SCHEMAS: dict[tuple, pa.Schema] = {}


def _file_key(path: Path | str) -> tuple:
    st = os.stat(path)
    return (str(path), st.st_mtime_ns, st.st_size)


def _schema(path: Path | str) -> pa.Schema:
    key = _file_key(path)
    if key not in _SCHEMAS:
        if len(_SCHEMAS) > 200_000:
            _SCHEMAS.clear()
        _SCHEMAS[key] = pq.read_schema(path)
    return _SCHEMAS[key]


def read_meta(path: Path) -> dict[str, Any]:
    """The run metadata stored in a run file's footer. Raises on an unreadable file."""
    md = _schema(path).metadata or {}
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


def _is_part(path: Path) -> bool:
    return path.name.startswith(PART_PREFIX)


def loose_files(study_dir: Path) -> list[Path]:
    """Every run file (one run each, not a compacted file) below ``runs/``."""
    runs_dir = Path(study_dir) / "runs"
    return sorted(p for p in runs_dir.glob("algorithm=*/env=*/*.parquet") if not _is_part(p))


def part_files(study_dir: Path) -> list[Path]:
    """Every compacted file below ``runs/``, oldest first (names sort by creation time)."""
    runs_dir = Path(study_dir) / "runs"
    return sorted(runs_dir.glob(f"algorithm=*/env=*/{PART_PREFIX}*.parquet"), key=lambda p: p.name)


def _catalog_rows_path(study_dir: Path, part_name: str) -> Path:
    return Path(study_dir) / "catalog" / "stored" / f"{part_name}.parquet"


def _scan_loose(study_dir: Path, repair: bool) -> dict[str, StoredRun]:
    out: dict[str, StoredRun] = {}
    runs_dir = Path(study_dir) / "runs"
    if not runs_dir.exists():
        return out
    for tmp in runs_dir.glob("*/*/.*.tmp"):
        if repair:
            tmp.unlink(missing_ok=True)
    for path in loose_files(study_dir):
        try:
            meta = read_meta(path)  # the footer must parse
            if meta.get("run_id") != path.stem:
                raise EvalkitError(f"file name does not match its run_id {meta.get('run_id')!r}")
        except Exception as exc:  # any unreadable file is quarantined, whatever the reader raised
            if repair:
                quarantine(study_dir, path, f"{type(exc).__name__}: {exc}")
            continue
        out[meta["run_id"]] = StoredRun(path, meta)
    return out


def _part_rows(study_dir: Path) -> pd.DataFrame:
    """Catalog rows of every live compacted file (rows of files that no longer exist are ignored),
    newest file last."""
    parts = {p.stem: p for p in part_files(study_dir)}
    paths = [_catalog_rows_path(study_dir, name) for name in parts]
    paths = [p for p in paths if p.exists()]
    if not paths:
        return pd.DataFrame(columns=list(INDEX_COLUMNS))
    table = ds.dataset([str(p) for p in paths], format="parquet").to_table()
    df = _to_pandas(table)
    df["file"] = df["file"].map({n: str(p) for n, p in parts.items()})
    return df.sort_values("file", kind="stable")


def stored_index(study_dir: Path, repair: bool = False) -> pd.DataFrame:
    """One row per stored run, whatever file holds it: :data:`INDEX_COLUMNS`.

    ``file`` is the path the run's episodes are read from (the winning copy when a run is stored
    twice). ``n_episodes`` / ``n_eval_episodes`` are -1 where a run file of an older evalkit did not
    record them. Run files are read footer by footer (they are few once compacted); compacted runs
    come from their catalog rows in one dataset read.
    """
    study_dir = Path(study_dir)
    parts = _part_rows(study_dir)
    loose = _scan_loose(study_dir, repair)
    rows = [_meta_row(sr) for sr in loose.values()]
    frames = [f for f in (parts, pd.DataFrame(rows, columns=list(INDEX_COLUMNS))) if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(INDEX_COLUMNS))
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    # run files come last and newer compacted files after older ones: the last copy wins
    df = df.drop_duplicates("run_id", keep="last").reset_index(drop=True)
    for c in ("seed_index", "seed", "budget", "n_episodes", "n_eval_episodes"):
        df[c] = df[c].astype("int64")
    return df[list(INDEX_COLUMNS)]


def _meta_row(sr: StoredRun) -> dict[str, Any]:
    m = sr.meta
    return {"run_id": m["run_id"], "algorithm": m["algorithm"], "agent": m.get("agent", ""), "env": m["env"],
            "phase": m["phase"], "seed_index": int(m["seed_index"]), "seed": int(m["seed"]),
            "setting": m.get("setting", ""), "budget": int(m.get("steps", 0)), "status": m.get("status", "complete"),
            "agent_hash": m.get("agent_hash", ""), "config": config_json(m.get("config", {})),
            "written_at": float(m.get("written_at", 0.0)), "n_episodes": int(m.get("n_episodes", -1)),
            "n_eval_episodes": int(m.get("n_eval_episodes", -1)), "file": str(sr.path)}


def scan(study_dir: Path, repair: bool = True) -> dict[str, StoredRun]:
    """``{run_id: StoredRun}`` of every complete, readable stored run of a study.

    A run file that cannot be read (truncated, garbage, foreign) is quarantined when ``repair`` is
    true, so the runner redoes its run. Leftover temporary files of a killed writer are removed.
    Compacted runs carry their catalog row as ``meta`` (``steps`` = budget, ``config`` parsed).
    """
    study_dir = Path(study_dir)
    out: dict[str, StoredRun] = {}
    parts = _part_rows(study_dir)
    configs: dict[str, dict] = {}
    for row in parts.to_dict("records"):
        cfg = configs.setdefault(row["config"], json.loads(row["config"]))
        meta = {**row, "steps": int(row["budget"]), "config": cfg, "setting_values": cfg}
        out[row["run_id"]] = StoredRun(Path(row["file"]), meta)
    out.update(_scan_loose(study_dir, repair))
    return out


def _unified_schema(paths: list[str]) -> pa.Schema:
    schemas = {id(s): s for s in (_schema(p) for p in paths)}  # run files of one scan share few schemas
    schemas = list({s.remove_metadata().to_string(): s.remove_metadata() for s in schemas.values()}.values())
    return pa.unify_schemas(schemas, promote_options="permissive")


def read_episodes(study_dir: Path, index: pd.DataFrame, columns: list[str] | None = None) -> pa.Table:
    """The episode rows of the runs in ``index`` (rows of :func:`stored_index`) as one Arrow table.

    One ``pyarrow.dataset`` scan (multithreaded) over the files that hold these runs; a file
    holding runs outside ``index`` (or superseded copies) is read with a ``run_id`` filter.
    ``algorithm`` and ``env`` come from the hive partition names.
    """
    study_dir = Path(study_dir)
    if not len(index):
        return pa.table({})
    counts = index["file"].value_counts(sort=False)
    per_file_runs = _runs_per_file(study_dir, counts.index)
    clean = sorted(f for f, n in counts.items() if per_file_runs.get(f, n) == n)
    filtered = sorted(set(counts.index) - set(clean))
    files = index[index["file"].isin(filtered)].groupby("file")["run_id"].agg(list) if filtered else {}
    schema = _unified_schema(sorted(counts.index))
    schema = pa.unify_schemas([schema, pa.schema([("algorithm", pa.string()), ("env", pa.string())])])
    part = ds.partitioning(pa.schema([("algorithm", pa.string()), ("env", pa.string())]), flavor="hive")
    tables = []
    base = str(study_dir / "runs")
    if clean:
        tables.append(ds.dataset(clean, schema=schema, format="parquet", partitioning=part,
                                 partition_base_dir=base).to_table(columns=columns, use_threads=True))
    for f in filtered:  # few: compacted files with runs outside ``index`` or superseded copies
        wanted = pa.array(files[f], pa.string())
        dset = ds.dataset([f], schema=schema, format="parquet", partitioning=part, partition_base_dir=base)
        tables.append(dset.to_table(columns=columns, filter=ds.field("run_id").isin(wanted), use_threads=True))
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """``table.to_pandas()``: plain object string columns (dictionary-encoding them first measured
    slower), numeric columns without a copy per block."""
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _runs_per_file(study_dir: Path, files) -> dict[str, int]:
    """How many runs each compacted file holds (from its catalog rows); run files hold one."""
    out = {}
    for f in files:
        if _is_part(Path(f)):
            meta = _schema(f).metadata or {}
            info = json.loads(meta.get(META_KEY, b"{}"))
            out[f] = int(info.get("n_runs", -1))
        else:
            out[f] = 1
    return out


def load(study_dir: str | Path, runs: Iterable[StoredRun] | None = None,
         index: pd.DataFrame | None = None) -> pd.DataFrame:
    """One long DataFrame of every stored episode of a study (or of the given runs).

    Columns: ``algorithm``, ``env``, ``agent``, ``run_id``, ``phase``, ``seed_index``, ``seed``,
    ``setting``, ``budget`` (the run's step budget), ``mode``, ``step``, ``episode``, ``return``,
    ``length``, extras, and ``hp.<name>`` for every hyperparameter (NaN where an algorithm has
    none of that name). Empty (with these columns) when nothing is stored.
    ``runs`` (``StoredRun`` objects, as :func:`scan` returns) or ``index`` (rows of
    :func:`stored_index`) restrict the table to those runs.
    """
    study_dir = Path(study_dir)
    if index is None:
        index = stored_index(study_dir)
        if runs is not None:
            index = index[index["run_id"].isin({sr.meta["run_id"] for sr in runs})]
    table = read_episodes(study_dir, index)
    if table.num_rows == 0:
        return pd.DataFrame(columns=[*FRONT, *BASE_COLUMNS])
    # per-run columns from the index, joined in Arrow (a hash join in C++, not a pandas lookup)
    pos = pc.index_in(table["run_id"], value_set=pa.array(index["run_id"].to_numpy(object), pa.string()))
    table = table.append_column("agent", pc.take(pa.array(index["agent"].to_numpy(object), pa.string()), pos))
    table = table.append_column("budget", pc.take(pa.array(index["budget"].to_numpy(np.int64)), pos))
    df = _to_pandas(table)
    hp = sorted(c for c in df.columns if c.startswith("hp."))
    rest = [c for c in df.columns if c not in FRONT and c not in hp]
    return df[FRONT + rest + hp]


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(table, path, row_group_size=1 << 20)


def _part_name() -> str:
    return f"{PART_PREFIX}{time.time_ns():020d}-{os.urandom(4).hex()}"


def write_part(study_dir: Path, algorithm: str, env: str, episodes: pa.Table, runs: pd.DataFrame,
               extra_meta: Mapping[str, Any] | None = None) -> Path:
    """Write one compacted file of partition ``(algorithm, env)``: its catalog rows first, then the data.

    ``episodes``: the runs' episode rows with the run-file columns (no ``algorithm``/``env``);
    ``runs``: one row per run, :data:`INDEX_COLUMNS` (``file`` is set here). Returns the data file.
    """
    study_dir = Path(study_dir)
    name = _part_name()
    rows = runs.assign(file=name, algorithm=algorithm, env=env)[list(INDEX_COLUMNS)]
    _atomic_write_table(pa.Table.from_pandas(rows, preserve_index=False), _catalog_rows_path(study_dir, name))
    meta = {"schema_version": SCHEMA_VERSION, "kind": "compacted", "n_runs": int(len(rows)),
            "written_at": time.time(), **(extra_meta or {})}
    episodes = episodes.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    path = Path(study_dir) / "runs" / f"algorithm={algorithm}" / f"env={env}" / f"{name}.parquet"
    _atomic_write_table(episodes, path)
    return path


def _drop_files(study_dir: Path, paths: Iterable[Path]) -> None:
    def drop(p: Path) -> None:
        p = Path(p)
        p.unlink(missing_ok=True)  # data first: catalog rows without their file are ignored
        if _is_part(p):
            _catalog_rows_path(study_dir, p.stem).unlink(missing_ok=True)

    _each(drop, list(paths))


def compact(study_dir: Path, min_files: int = 256) -> int:
    """Merge the run files of every partition holding at least ``min_files`` of them, together with
    its compacted files, into one compacted file. Returns the number of partitions compacted.

    Call with the study lock held (the runner does). A kill at any point loses nothing: the new
    file is committed by its ``os.replace``, and until the old files are deleted the newest copy
    of each run wins when reading.
    """
    study_dir = Path(study_dir)
    loose = collections.Counter(p.parent for p in loose_files(study_dir))
    todo = [d for d, n in loose.items() if n >= min_files]
    if not todo:
        return 0
    index = stored_index(study_dir, repair=True)
    for d in todo:
        rows = index[index["file"].map(lambda f: Path(f).parent == d)]
        if rows.empty:
            continue
        old = {Path(f) for f in rows["file"]} | {p for p in part_files(study_dir) if p.parent == d}
        table = read_episodes(study_dir, rows).drop_columns(["algorithm", "env"])
        counts = _episode_counts(table)
        rows = rows.assign(n_episodes=rows["run_id"].map(counts["train"]).fillna(0).astype("int64"),
                           n_eval_episodes=rows["run_id"].map(counts["eval"]).fillna(0).astype("int64"))
        alg, env = (rows["algorithm"].iloc[0], rows["env"].iloc[0])
        new = write_part(study_dir, alg, env, table, rows)
        _drop_files(study_dir, [p for p in old if p != new])
    return len(todo)


def _episode_counts(table: pa.Table) -> pd.DataFrame:
    """``(run_id) x {train, eval}`` episode row counts of an episode table."""
    df = table.select(["run_id", "mode"]).to_pandas()
    counts = df.groupby(["run_id", "mode"]).size().unstack("mode", fill_value=0)
    return counts.reindex(columns=["train", "eval"], fill_value=0)


def write_imported(study_dir: Path, episodes: pd.DataFrame, runs: pd.DataFrame,
                   extra_meta: Mapping[str, Any] | None = None) -> int:
    """Store imported runs as compacted files (one per partition) with their catalog rows.

    ``episodes``: long table with ``algorithm``, ``env`` and the run-file columns (``run_id``,
    ``phase``, ``seed_index``, ``seed``, ``setting``, ``mode``, ``step``, ``episode``, ``return``,
    ``length``, extras, ``hp.*``); ``runs``: one row per run, :data:`INDEX_COLUMNS` but ``file``.
    Into a new folder the import is one atomic unit: everything is written to a staging folder that
    is renamed into place. Into an existing folder each partition is atomic and the newer copy of a
    run wins (re-importing the same data is idempotent). Returns the number of runs.
    """
    study_dir = Path(study_dir)
    fresh = not study_dir.exists()
    target = study_dir.with_name(f".{study_dir.name}.import-{os.getpid()}") if fresh else study_dir
    if fresh and target.exists():
        shutil.rmtree(target)
    episodes = episodes.sort_values(["algorithm", "env"], kind="stable")
    keys = episodes[["algorithm", "env"]].drop_duplicates()
    table = pa.Table.from_pandas(episodes.drop(columns=["algorithm", "env"]), preserve_index=False)
    bounds = np.flatnonzero(episodes[["algorithm", "env"]].ne(episodes[["algorithm", "env"]].shift()).any(axis=1))
    bounds = [*bounds.tolist(), len(episodes)]
    try:
        for (alg, env), lo, hi in zip(keys.itertuples(index=False), bounds[:-1], bounds[1:]):
            part_runs = runs[(runs["algorithm"] == alg) & (runs["env"] == env)]
            write_part(target, alg, env, table.slice(lo, hi - lo), part_runs, extra_meta)
        if fresh:
            os.replace(target, study_dir)
        else:  # run files of the same runs (an older import) would win over the new compacted files
            ids = set(runs["run_id"])
            _drop_files(study_dir, [p for p in loose_files(study_dir) if p.stem in ids])
    except BaseException:
        if fresh:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return int(len(runs))


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
