"""Write an import as one atomic unit, and remember what was imported (re-imports add only what is new).

The study folder is never written in place: a staging folder beside it (``.<name>.import-<pid>``)
starts as a hard-linked copy of the existing study (run files are immutable: the store replaces,
never rewrites, a file), receives the new run files and the manifest, and then takes the study's
place with two renames. A failed or interrupted import removes its staging folder and leaves the
study as it was; the old study survives under ``.<name>.previous`` only for the instant between the
two renames, and the next import puts it back if a crash fell in that instant.

``imports.json`` (the manifest) records per source: format, content hash (sha256 over its files'
bytes and the import options that shape its runs) and the run ids it produced. A source whose hash
is unchanged is not read again; a changed one replaces its runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from evalkit import seeding, spec, store
from evalkit.errors import EvalkitError

MANIFEST = "imports.json"


def check_name(name: str) -> None:
    if not spec.NAME_RE.match(name) or ".." in name:
        raise EvalkitError(f"--name: expected a name of letters, digits, '_', '-', '.', found {name!r}")


def content_hash(paths: Iterable[Path], options: dict[str, Any]) -> str:
    h = hashlib.sha256(spec.canonical_json(options).encode())
    for p in paths:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def run_id(study: str, algorithm: str, env: str, phase: str, run: int, seed: int, config: dict) -> str:
    """Identity hash of an imported run: the same run imported again gets the same id."""
    key = {"imported": study, "algorithm": algorithm, "env": env, "phase": phase, "run": run, "config": config}
    if seed != run:
        key["seed"] = seed
    return seeding.short_hash(spec.canonical_json(key))


class Staging:
    """The staging folder of one import: ``open`` it, write runs into ``.dir``, then ``commit`` or ``discard``."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = Path(root), name
        self.study_dir = self.root / name
        self.previous = self.root / f".{name}.previous"
        self.dir = self.root / f".{name}.import-{os.getpid()}"

    def open(self) -> "Staging":
        self.root.mkdir(parents=True, exist_ok=True)
        if self.previous.exists() and not self.study_dir.exists():
            os.rename(self.previous, self.study_dir)  # a crash fell between the two renames of a commit
        for stale in self.root.glob(f".{self.name}.import-*"):
            pid = stale.name.rpartition("-")[2]
            if not (pid.isdigit() and _alive(int(pid))) or int(pid) == os.getpid():
                shutil.rmtree(stale, ignore_errors=True)
        if self.study_dir.exists():
            shutil.copytree(self.study_dir, self.dir, copy_function=_link)
        else:
            self.dir.mkdir()
        return self

    def manifest(self) -> dict[str, Any]:
        path = self.dir / MANIFEST
        if not path.exists():
            return {"sources": {}}
        try:
            data = json.loads(path.read_text())
            return data if isinstance(data.get("sources"), dict) else {"sources": {}}
        except (OSError, json.JSONDecodeError, AttributeError):
            return {"sources": {}}

    def write_manifest(self, data: dict[str, Any]) -> None:
        tmp = self.dir / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.dir / MANIFEST)

    def write_run(self, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        store.write_run(self.dir, meta, rows)

    def remove_run(self, meta: dict[str, Any]) -> None:
        store.run_path(self.dir, meta["algorithm"], meta["env"], meta["run_id"]).unlink(missing_ok=True)

    def commit(self) -> None:
        if self.study_dir.exists():
            os.rename(self.study_dir, self.previous)
            os.rename(self.dir, self.study_dir)
            shutil.rmtree(self.previous, ignore_errors=True)
        else:
            os.rename(self.dir, self.study_dir)

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a filesystem without hard links
        shutil.copy2(src, dst)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
