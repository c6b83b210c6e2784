"""Find the runs under an imported path and the format of each (or take ``--format``).

A *source* is the unit that is read, hashed and re-imported as one: a TensorBoard run folder
(its ``events.out.tfevents.*`` files), an rl-zoo3 run folder, the numbered monitor files of one
vectorized run or one monitor file, one W&B chart export, one JSON/CSV/Parquet/npz file.
W&B run folders (``files/config.yaml``) are not runs but the hyperparameters of runs found
elsewhere (matched by algorithm, env and seed). Files that match no format are counted, not read;
hidden folders (``.*``) are not entered.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from evalkit.importers import monitor, scores, tables, wandb, zoo
from evalkit.importers.records import ImportProblem

FORMATS = ("tensorboard", "monitor", "zoo", "wandb", "scores", "table", "matrix")
TB_PREFIX = "events.out.tfevents"


@dataclass(frozen=True)
class Source:
    format: str
    paths: tuple[Path, ...]  # the files read (and hashed)
    key: str                 # the source's absolute path ('/'-separated); --pattern matches its end
    folder: Path | None = None

    def candidates(self) -> tuple[str, ...]:
        """Paths a --pattern is matched against: the key without extension(s), then its folder."""
        key = self.key
        for ext in (".monitor.csv", ".csv", ".json", ".parquet", ".npz"):
            if key.endswith(ext):
                key = key[: -len(ext)]
                break
        parent = key.rpartition("/")[0]
        return (key, parent) if parent and self.folder is None else (key,)


@dataclass(frozen=True)
class Found:
    sources: tuple[Source, ...]
    configs: tuple[Path, ...]  # W&B files/config.yaml
    ignored: int


def discover(path: Path, fmt: str | None = None, exclude: frozenset[Path] = frozenset()) -> Found:
    path = Path(path)
    if not path.exists():
        raise ImportProblem(path, "expected an existing file or folder")
    if path.is_file():
        return Found((_file_source(path, fmt, strict=True),), (), 0)
    sources: list[Source] = []
    configs: list[Path] = []
    ignored = 0
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        folder_p = Path(folder)
        files = sorted(f for f in files if (folder_p / f).resolve() not in exclude)
        if (fmt in (None, "zoo")) and zoo.zoo_env_dir(folder_p) is not None:
            sources.append(Source("zoo", _zoo_files(folder_p), _key(folder_p), folder_p))
            dirs[:] = []  # everything below belongs to this run
            continue
        if fmt is None and folder_p.name == "files" and "config.yaml" in files:
            configs.append(folder_p / "config.yaml")
        if fmt in (None, "tensorboard"):
            events = [folder_p / f for f in files if f.startswith(TB_PREFIX)]
            if events:
                sources.append(Source("tensorboard", tuple(events), _key(folder_p), folder_p))
        vec = [folder_p / f for f in files if monitor.VEC_MONITOR.match(f)]
        if vec and fmt in (None, "monitor"):
            vec.sort(key=lambda p: int(p.name.split(".")[0]))
            sources.append(Source("monitor", tuple(vec), _key(folder_p), folder_p))
        for f in files:
            p = folder_p / f
            if f.startswith(TB_PREFIX) or monitor.VEC_MONITOR.match(f) or (folder_p.name == "files" and f == "config.yaml"):
                continue
            s = _file_source(p, None, strict=False)
            if s is None or fmt not in (None, s.format):
                ignored += 1
            else:
                sources.append(s)
    return Found(tuple(sources), tuple(configs), ignored)


def _key(p: Path) -> str:
    return p.resolve().as_posix()


def _zoo_files(run_dir: Path) -> tuple[Path, ...]:
    inner = zoo.zoo_env_dir(run_dir)
    files = [inner / "config.yml", *([inner / "args.yml"] if (inner / "args.yml").is_file() else [])]
    files += sorted(p for p in run_dir.iterdir() if monitor.VEC_MONITOR.match(p.name) or p.name == "evaluations.npz")
    return tuple(files)


def _file_source(p: Path, fmt: str | None, strict: bool) -> Source | None:
    """The source one file is, by --format or by its name and first bytes; None (or an error) if none."""
    key = _key(p)
    if fmt is not None:
        return Source(fmt, (p,), key)
    name = p.name
    if name.startswith(TB_PREFIX):
        return Source("tensorboard", (p,), key)
    if name.endswith(".csv"):
        if name.endswith("monitor.csv") or monitor.is_monitor(p):
            return Source("monitor", (p,), key)
        header = wandb.read_header(p)
        if wandb.is_chart_export(header):
            return Source("wandb", (p,), key)
        if strict or tables.is_long_table(header):
            return Source("table", (p,), key)
        return None
    if name.endswith(".parquet"):
        return Source("table", (p,), key) if strict or tables.is_long_table(_parquet_columns(p)) else None
    if name.endswith(".npz"):
        return Source("matrix", (p,), key) if strict or name != "evaluations.npz" else None
    if name.endswith(".json"):
        kind = _json_kind(p)
        if kind is None and strict:
            return Source("matrix", (p,), key)  # read it to say what is wrong
        return Source(kind, (p,), key) if kind else None
    if strict:
        raise ImportProblem(p, "expected a .csv, .parquet, .npz or .json file, a TensorBoard event file "
                            f"({TB_PREFIX}.*), an SB3 monitor CSV or a folder of runs")
    return None


def _parquet_columns(p: Path) -> list[str]:
    """Column names from the footer (evalkit's own run files have no algorithm column: not a table)."""
    try:
        import pyarrow.parquet as pq
        return list(pq.read_schema(p).names)
    except Exception:  # not Parquet at all: not a table either
        return []


def _json_kind(p: Path) -> str | None:
    try:
        if p.stat().st_size > 256 * 2**20:
            return None
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("scores"), dict):
        return "matrix"
    return "scores" if scores.is_score_file(obj) else None
