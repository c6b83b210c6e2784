"""``evalkit import``: results other tools wrote become a study store every analysis reads.

Formats (``detect.py`` finds them; ``--format`` overrides): TensorBoard event files (CleanRL, SB3),
SB3 Monitor CSVs, rl-zoo3 log folders, W&B chart exports (+ run folders' ``config.yaml``),
per-algorithm JSON score files (+ reference scores), evalkit's long table and score matrices.

Data only: files are parsed (JSON, CSV, YAML with a safe loader, npz without pickle, TensorBoard
protobuf records); nothing in them is executed or unpickled. One import is one atomic unit
(``writer.py``). Sources are read in worker processes, a bounded number at a time (memory bounded
by a few sources), and written by this process; a malformed source is one line naming its path,
skipped (``on_error="skip"``) or fatal for the whole import (``"stop"``: nothing is written).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.errors import EvalkitError
from evalkit.importers import detect, identity, monitor, scores, tables, tensorboard, wandb, writer, zoo
from evalkit.importers.detect import FORMATS, Source
from evalkit.importers.records import ImportProblem, RunRecord

__all__ = ["FORMATS", "ImportSummary", "import_path", "import_file", "read_source"]
PARALLEL_MIN_SOURCES = 32  # below this, starting worker processes costs more than it saves


@dataclass
class ImportSummary:
    study_dir: Path
    added: int = 0          # runs new to the study
    replaced: int = 0       # runs of changed sources, rewritten
    unchanged: int = 0      # sources skipped: same content and options as the last import
    sources: int = 0        # sources read now
    formats: collections.Counter = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)  # one line per skipped source
    notes: list[str] = field(default_factory=list)
    ignored: int = 0        # files under the path that match no format
    seconds: float = 0.0

    @property
    def runs(self) -> int:
        return self.added + self.replaced


def read_source(source: Source, tag: str | None = None) -> list[RunRecord]:
    """Read one source into run records (identity as far as its files record it)."""
    paths = list(source.paths)
    shown = str(source.folder or paths[0])
    if source.format == "tensorboard":
        return tensorboard.read_tensorboard(paths, shown, tag)
    if source.format == "monitor":
        return monitor.read_monitor(paths, shown)
    if source.format == "zoo":
        return zoo.read_zoo_run(source.folder or paths[0], shown)
    if source.format == "wandb":
        return wandb.read_chart_export(paths[0], shown, tag)
    if source.format == "scores":
        return scores.read_score_file(paths[0], shown)
    if source.format == "table":
        return tables.table_records(tables.read_long_table(paths[0]), shown)
    if source.format == "matrix":
        return tables.matrix_records(*tables.read_score_matrices(paths[0]), shown)
    raise ImportProblem(shown, f"unknown format {source.format!r}; expected one of {', '.join(FORMATS)}")


def _read_guarded(source: Source, tag: str | None) -> tuple[list[RunRecord], str | None]:
    """Worker entry point: records, or the one-line problem (never a traceback)."""
    try:
        return read_source(source, tag), None
    except EvalkitError as exc:
        return [], " ".join(str(exc).split())
    except Exception as exc:  # a reader's unexpected failure is still one line naming the file
        return [], f"{source.folder or source.paths[0]}: unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"


def import_path(path: str | Path, name: str, root: str | Path = "results", *, fmt: str | None = None,
                pattern: str | None = None, tag: str | None = None, reference: str | None = None,
                phase: str = "eval", steps: int | None = None, on_error: str = "stop", workers: int = 2,
                progress: bool = False) -> ImportSummary:
    """Import every run under ``path`` into ``root/name``. Returns what was added, replaced, skipped.

    ``steps``: the step budget of runs whose files do not record it (Monitor CSVs, W&B exports, SB3
    TensorBoard logs); otherwise their last logged step stands in. It sets where ``final`` looks.
    """
    start = time.perf_counter()
    writer.check_name(name)
    if fmt is not None and fmt not in FORMATS:
        raise EvalkitError(f"--format: expected one of {', '.join(FORMATS)}, found {fmt!r}")
    if on_error not in ("skip", "stop"):
        raise EvalkitError(f"--on-error: expected skip or stop, found {on_error!r}")
    if phase not in ("tune", "eval"):
        raise EvalkitError(f"--phase: expected tune or eval, found {phase!r}")
    if steps is not None and steps < 1:
        raise EvalkitError(f"--steps: expected a step budget >= 1, found {steps}")
    if workers < 1:
        raise EvalkitError(f"--workers: expected an integer >= 1, found {workers}")
    compiled = identity.compile_pattern(pattern) if pattern else None
    refs = scores.read_references(reference) if reference else None
    exclude = frozenset(Path(p.strip()).resolve() for p in (reference or "").split(",") if p.strip())
    found = detect.discover(Path(path), fmt, exclude)
    if not found.sources:
        raise EvalkitError(f"{path}: found no runs of a known format ({', '.join(FORMATS)}); "
                           f"{found.ignored} files matched none")
    summary = ImportSummary(Path(root) / name, ignored=found.ignored)
    configs = _wandb_configs(found.configs, summary)
    # everything that shapes a source's runs: a change re-reads the source on the next import
    options = {"pattern": pattern, "tag": tag, "phase": phase, "reference": _ref_key(refs), "format": fmt,
               "steps": steps, "wandb_configs": writer.content_hash(found.configs, {}) if found.configs else None}
    stage = writer.Staging(Path(root), name).open()
    try:
        job = _Job(stage, name, compiled, configs, refs, phase, steps, on_error, summary)
        todo = job.plan(found.sources, options)
        for source in [s for s in todo if s.format == "table"]:  # vectorised: no record per run
            job.take_table(source)
        todo = [s for s in todo if s.format != "table"]
        for source, (records, problem) in _read_all(todo, tag, workers, progress):
            job.take(source, records, problem)
        if summary.runs == 0 and not job.dropped:
            stage.discard()
            if summary.problems and not summary.unchanged:
                raise EvalkitError(f"nothing imported: all {len(summary.problems)} sources were skipped; "
                                   f"first: {summary.problems[0]}")
        else:
            job.finish()
            stage.commit()
    except BaseException:
        stage.discard()
        raise
    summary.seconds = time.perf_counter() - start
    return summary


def import_file(path: str | Path, name: str, root: str | Path = "results") -> int:
    """Import one file or folder, refusing on the first malformed source. Returns the runs written."""
    return import_path(path, name, root, on_error="stop", workers=1).runs


def _ref_key(refs: dict | None) -> Any:
    return sorted((k, list(v)) for k, v in refs.items()) if refs else None


def _wandb_configs(paths: tuple[Path, ...], summary: ImportSummary) -> dict[tuple, list[tuple[Path, dict]]]:
    """``{(algorithm, env, seed): [(config.yaml, hyperparameters), ...]}`` of the W&B run folders found."""
    out: dict[tuple, list[tuple[Path, dict]]] = {}
    for p in paths:
        try:
            ident, hp = wandb.read_config(p)
            if set(ident) != {"algorithm", "env", "seed"}:
                summary.notes.append(f"{p}: no exp_name/algo, env_id/env and seed recorded: not matched to a run")
                continue
            key = (identity.safe_name(ident["algorithm"], str(p), "algorithm"),
                   identity.safe_name(ident["env"], str(p), "env"), int(ident["seed"]))
        except ImportProblem as exc:
            summary.problems.append(str(exc))
            continue
        out.setdefault(key, []).append((p, hp))
    return out


def _match_config(record: RunRecord, configs: dict[tuple, list[tuple[Path, dict]]]) -> dict | None:
    """The W&B config of a run: same algorithm, env and seed, and no hyperparameter contradicting the
    run's own (a sweep shares seeds across settings: put the setting in the run name, --pattern {hp.NAME})."""
    found = [(p, hp) for p, hp in configs.get((record.algorithm, record.env, record.seed), [])
             if all(hp.get(k, v) == v for k, v in record.config.items())]
    if len(found) > 1:
        raise ImportProblem(record.source, f"{len(found)} W&B run configs ({found[0][0]}, {found[1][0]}, ...) match "
                            f"algorithm {record.algorithm!r}, env {record.env!r}, seed {record.seed}; name the "
                            f"hyperparameters that tell them apart in --pattern (e.g. {{hp.learning_rate}})")
    return found[0][1] if found else None


def _read_all(todo: list[Source], tag: str | None, workers: int, progress: bool):
    """``(source, (records, problem))`` in source order; a bounded number of sources in flight."""
    bar = _bar(len(todo), progress)
    try:
        if workers == 1 or len(todo) < PARALLEL_MIN_SOURCES:
            for s in todo:
                yield s, _read_guarded(s, tag)
                bar.update(1)
            return
        # fork: workers need no re-import and work from scripts without a __main__ guard; they only
        # parse files (numpy, pandas, protobuf), never touch the parent's thread pools
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            window = collections.deque()
            it = iter(todo)
            for s in it:
                window.append((s, pool.submit(_read_guarded, s, tag)))
                if len(window) >= 4 * workers:
                    break
            while window:
                s, fut = window.popleft()
                try:
                    result = fut.result()
                except cf.process.BrokenProcessPool:
                    raise EvalkitError(f"{s.folder or s.paths[0]}: a reader process died (out of memory?); "
                                       f"retry with --workers 1") from None
                nxt = next(it, None)
                if nxt is not None:
                    window.append((nxt, pool.submit(_read_guarded, nxt, tag)))
                bar.update(1)
                yield s, result
    finally:
        bar.close()


def _bar(total: int, enabled: bool):
    from tqdm import tqdm
    # disable=None: tqdm itself turns the bar off when stderr is not a terminal (logs, CI)
    return tqdm(total=total, unit="source", disable=True if not enabled or total < 2 else None, file=sys.stderr,
                desc="import")


class _Job:
    """Turns read records into run files in the staging folder, keeping the manifest and the counts."""

    def __init__(self, stage: writer.Staging, name: str, pattern, configs, refs, phase: str, steps: int | None,
                 on_error: str, summary: ImportSummary) -> None:
        self.stage, self.name, self.pattern, self.configs, self.steps = stage, name, pattern, configs, steps
        self.refs, self.phase, self.on_error, self.summary = refs, phase, on_error, summary
        self.manifest = stage.manifest()
        self.owner = {rid: key for key, entry in self.manifest["sources"].items() for rid in entry.get("runs", [])}
        self.hashes: dict[str, str] = {}
        self.dropped = 0  # runs of changed sources that are gone now
        self.versions = _versions()

    def plan(self, sources: tuple[Source, ...], options: dict) -> list[Source]:
        todo = []
        for s in sources:
            key = self._key(s)
            h = writer.content_hash(s.paths, {**options, "source_format": s.format})
            if self.manifest["sources"].get(key, {}).get("hash") == h:
                self.summary.unchanged += 1
                continue
            self.hashes[key] = h
            todo.append(s)
        return todo

    @staticmethod
    def _key(s: Source) -> str:
        return str((s.folder or s.paths[0]).resolve())

    def take(self, source: Source, records: list[RunRecord], problem: str | None) -> None:
        key = self._key(source)
        try:
            if problem is not None:
                raise EvalkitError(problem)
            if not records:
                raise ImportProblem(source.folder or source.paths[0], "expected at least one run, found none")
            runs = [self._complete(source, r) for r in records]
        except EvalkitError as exc:
            self._problem(exc)
            return
        old = set(self.manifest["sources"].get(key, {}).get("runs", []))
        for meta, rows in runs:
            self.stage.write_run(meta, rows)
            if meta["run_id"] in old:
                self.summary.replaced += 1
            else:
                self.summary.added += 1
            self.owner[meta["run_id"]] = key
        new_ids = {m["run_id"] for m, _ in runs}
        for rid in old - new_ids:
            self._remove(rid)
        self.manifest["sources"][key] = {"format": source.format, "hash": self.hashes[key], "runs": sorted(new_ids)}
        self.summary.sources += 1
        self.summary.formats[source.format] += 1
        for r in records:
            for n in r.notes:
                if n not in self.summary.notes:
                    self.summary.notes.append(n)

    def _problem(self, exc: EvalkitError) -> None:
        """A malformed source: fatal for the whole import (``stop``) or one line, skipped (``skip``)."""
        line = " ".join(str(exc).split())
        if self.on_error == "stop":
            raise EvalkitError(f"{line} (nothing imported; --on-error skip imports the rest)") from None
        self.summary.problems.append(line)

    def take_table(self, source: Source) -> None:
        """An evalkit long table, imported vectorised (100,000 runs in seconds): compacted partition
        files with their catalog rows (:func:`evalkit.store.write_imported`) in the staging folder."""
        from evalkit import store
        key = self._key(source)
        try:
            df = tables.read_long_table(source.paths[0])
            if df.empty:
                raise ImportProblem(source.paths[0], "expected at least one run, found none")
            df = df.assign(**{c: v for c, v in (("phase", self.phase), ("mode", "train")) if c not in df.columns})
            hp_cols = sorted(c for c in df.columns if c.startswith("hp."))
            episodes, runs = tables.runs_of_table(df, self.name, hp_cols)
            taken = {rid: o for rid in runs["run_id"] if (o := self.owner.get(rid)) not in (None, key)}
            if taken:
                rid, owner = next(iter(taken.items()))
                raise ImportProblem(source.paths[0], f"run {rid} is also a run of {owner} (same algorithm, env, "
                                    f"seed, phase and hyperparameters)")
        except EvalkitError as exc:
            self._problem(exc)
            return
        if self.steps:
            runs["budget"] = int(self.steps)
        store.write_imported(self.stage.dir, episodes, runs, {"source": str(source.paths[0]), "versions": self.versions,
                                                              "import_format": "table"})
        old = set(self.manifest["sources"].get(key, {}).get("runs", []))
        new_ids = set(runs["run_id"])
        self.summary.replaced += len(new_ids & old)
        self.summary.added += len(new_ids - old)
        for rid in old - new_ids:
            self._remove(rid)
        self.owner.update(dict.fromkeys(new_ids, key))
        self.manifest["sources"][key] = {"format": source.format, "hash": self.hashes[key], "runs": sorted(new_ids)}
        self.summary.sources += 1
        self.summary.formats[source.format] += 1

    def _remove(self, rid: str) -> None:
        for p in (self.stage.dir / "runs").glob(f"algorithm=*/env=*/{rid}.parquet"):
            p.unlink()
            self.dropped += 1
        self.owner.pop(rid, None)

    def _complete(self, source: Source, record: RunRecord) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        cands = ((record.name,) if source.format == "wandb" and record.name else ()) + source.candidates()
        record = identity.apply_pattern(record, self.pattern, cands)
        if source.format == "scores" and record.algorithm is None:
            record = record.with_(algorithm=Path(source.paths[0]).stem)
        raw_env = record.env
        record = identity.complete(record, self.pattern)
        hp = _match_config(record, self.configs)
        if hp:
            record = record.with_(config={**hp, **record.config})
        record = record.with_(episodes=record.episodes.sorted())
        raw = None
        if self.refs is not None:
            ref_env = raw_env if raw_env in self.refs else record.env
            record, raw = scores.normalize(record, self.refs, ref_env)
            lo, hi = self.refs[ref_env]
        phase = record.phase or self.phase
        config = dict(record.config)
        rid = writer.run_id(self.name, record.algorithm, record.env, phase, int(record.run), int(record.seed), config)
        owner = self.owner.get(rid)
        if owner is not None and owner != self._key(source):
            raise ImportProblem(record.source, f"same algorithm {record.algorithm!r}, env {record.env!r}, seed "
                                f"{record.seed}, phase {phase!r} and hyperparameters as a run of {owner}; "
                                f"tell them apart with --pattern (e.g. a {{seed}} or {{hp.NAME}} field)")
        self.owner[rid] = self._key(source)
        rows = record.episodes.rows()
        if raw is not None:
            for row, x in zip(rows, raw.tolist()):
                row["raw_score"] = x
        finite = bool(np.isfinite(record.episodes.ret).all())
        budget = record.budget or self.steps or (int(record.episodes.step.max()) if len(record.episodes) else 0)
        meta = {"run_id": rid, "study": self.name, "algorithm": record.algorithm, "agent": "imported",
                "env": record.env, "env_id": record.env, "phase": phase, "seed_index": int(record.run),
                "seed": int(record.seed), "setting": _setting(config), "setting_values": config, "config": config,
                "steps": int(budget), "status": "complete" if finite else "diverged", "agent_hash": "imported",
                "source": record.source, "import_format": source.format, "notes": list(record.notes),
                "versions": self.versions}
        if raw is not None:
            meta["normalization"] = {"low": lo, "high": hi, "formula": "(x - low) / (high - low)"}
        return meta, rows

    def finish(self) -> None:
        self.stage.write_manifest(self.manifest)


def _versions() -> dict[str, str]:
    """Versions that shaped the import (not torch/gymnasium: imported runs never ran here)."""
    import platform
    import evalkit
    out = {"evalkit": evalkit.__version__, "python": platform.python_version(), "numpy": np.__version__}
    if "tensorboard" in sys.modules:
        out["tensorboard"] = getattr(sys.modules["tensorboard"], "__version__", "?")
    return out


def _setting(config: dict) -> str:
    from evalkit import spec
    return spec.setting_id(config)
