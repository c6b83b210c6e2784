"""Per-algorithm score files and reference scores (rliable-style published results).

A score file is JSON ``{task: [score of run 1, score of run 2, ...]}`` for one algorithm (the file
name, e.g. ``DQN.json``, names the algorithm unless ``--pattern`` does). Each score becomes a run
with one evaluation episode; the position in the list is the run index.

References (``--reference HIGH,LOW``): two JSON files ``{task: score}``, the score that maps to 1
(e.g. human) then the one that maps to 0 (e.g. random), or one CSV with a ``task`` (or ``env``)
column and ``high``/``low`` (or ``human``/``random``) columns. Normalized score
``(x - low) / (high - low)`` (min-max; "human-normalized" for Atari, Mnih et al. 2015); the raw
score is kept in the ``raw_score`` column.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.importers.records import Episodes, ImportProblem, RunRecord


def load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportProblem(path, f"expected JSON ({type(exc).__name__}: {' '.join(str(exc).split())[:80]})") from None


def is_score_file(obj: Any) -> bool:
    """``{task: [number or null, ...]}`` (a matrix file has a "scores" key instead)."""
    return (isinstance(obj, dict) and bool(obj) and "scores" not in obj
            and all(isinstance(v, list) and all(_number(x) or x is None for x in v) for v in obj.values()))


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def read_score_file(path: Path, source: str) -> list[RunRecord]:
    obj = load_json(path)
    if not is_score_file(obj):
        raise ImportProblem(path, "expected a score file {task: [score of run 1, ...]}")
    out = []
    for task, scores in obj.items():
        for i, s in enumerate(scores):
            if isinstance(s, bool) or not isinstance(s, (int, float)) and s is not None:
                raise ImportProblem(path, f"{task}[{i}]: expected a number, found {str(s)[:40]!r}")
            value = math.nan if s is None else float(s)
            out.append(RunRecord(source=f"{source}#{task}[{i}]", episodes=Episodes.of([1], [value], [1], "train"),
                                 env=str(task), seed=i, run=i, budget=1, name=f"{task}[{i}]"))
    return out


def read_references(text: str) -> dict[str, tuple[float, float]]:
    """``{task: (low, high)}`` from ``HIGH.json,LOW.json`` or one CSV."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1 and parts[0].endswith(".csv"):
        return _reference_csv(Path(parts[0]))
    if len(parts) != 2:
        raise ImportProblem("--reference", f"expected HIGH.json,LOW.json (e.g. human.json,random.json) or one "
                            f"CSV, found {text!r}")
    high, low = (_reference_json(Path(p)) for p in parts)
    missing = sorted(set(high) ^ set(low))
    if missing:
        raise ImportProblem(parts[0], f"tasks in one reference file but not the other: {', '.join(missing[:5])}")
    return _checked({t: (low[t], high[t]) for t in high}, parts[0])


def _reference_json(path: Path) -> dict[str, float]:
    obj = load_json(path)
    if not isinstance(obj, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj.values()):
        raise ImportProblem(path, "expected a reference file {task: score}")
    return {str(k): float(v) for k, v in obj.items()}


def _reference_csv(path: Path) -> dict[str, tuple[float, float]]:
    try:
        rows = list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ImportProblem(path, f"expected a reference CSV ({type(exc).__name__})") from None
    cols = set(rows[0]) if rows else set()
    task = next((c for c in ("task", "env", "game") if c in cols), None)
    pair = next(((lo, hi) for lo, hi in (("low", "high"), ("random", "human")) if lo in cols and hi in cols), None)
    if task is None or pair is None:
        raise ImportProblem(path, f"expected columns task (or env) and low,high (or random,human); found {sorted(cols)}")
    out = {}
    for i, r in enumerate(rows):
        try:
            out[r[task]] = (float(r[pair[0]]), float(r[pair[1]]))
        except (TypeError, ValueError):
            raise ImportProblem(path, f"row {i + 2}: expected numbers in {pair[0]} and {pair[1]}") from None
    return _checked(out, str(path))


def _checked(refs: dict[str, tuple[float, float]], where: str) -> dict[str, tuple[float, float]]:
    for t, (lo, hi) in refs.items():
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
            raise ImportProblem(where, f"{t}: expected finite, different low and high reference scores, found {lo}, {hi}")
    return refs


def normalize(record: RunRecord, refs: dict[str, tuple[float, float]], env_key: str) -> tuple[RunRecord, np.ndarray]:
    """The record with min-max normalized returns, and its raw returns."""
    if env_key not in refs:
        raise ImportProblem(record.source, f"no reference scores for task {env_key!r} in --reference")
    lo, hi = refs[env_key]
    e = record.episodes
    normalized = Episodes(e.mode, e.step, (e.ret - lo) / (hi - lo), e.length)
    return record.with_(episodes=normalized), e.ret
