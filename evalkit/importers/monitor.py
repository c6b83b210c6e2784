"""Stable-Baselines3 ``Monitor`` CSV files: training episodes with their returns and lengths.

A monitor file starts with one header line ``#{"t_start": ..., "env_id": "CartPole-v1"}`` (JSON),
then a CSV with columns ``r`` (episodic return), ``l`` (episode length) and ``t`` (seconds since
``t_start``), one row per finished episode. The step at which an episode ended is the cumulative
sum of ``l``. The files ``0.monitor.csv``, ``1.monitor.csv``, ... of one folder are the
sub-environments of one vectorized run (``make_vec_env(monitor_dir=...)``, rl-zoo3): they step in
lockstep, so when sub-environment k has taken c steps the run has taken ``n_files * c``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.importers.records import Episodes, ImportProblem, RunRecord

VEC_MONITOR = re.compile(r"^\d+\.monitor\.csv$")


def is_monitor(path: Path) -> bool:
    """A file whose first line is SB3's ``#{...}`` JSON header."""
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"#{"
    except OSError:
        return False


def read_monitor_file(path: Path) -> tuple[dict, pd.DataFrame]:
    """Header dict and the ``r, l, t`` table of one monitor file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportProblem(path, f"expected a readable SB3 monitor CSV ({type(exc).__name__})") from None
    first, _, body = text.partition("\n")
    if not first.startswith("#"):
        raise ImportProblem(path, "expected SB3 Monitor's header line '#{\"t_start\": ..., \"env_id\": ...}'")
    try:
        header = json.loads(first[1:])
    except json.JSONDecodeError as exc:
        raise ImportProblem(path, f"header line: expected JSON after '#' ({exc.msg})") from None
    if not isinstance(header, dict):
        raise ImportProblem(path, "header line: expected a JSON object after '#'")
    try:
        df = pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ImportProblem(path, f"expected CSV columns r,l,t after the header ({' '.join(str(exc).split())})") from None
    missing = [c for c in ("r", "l", "t") if c not in df.columns]
    if missing:
        raise ImportProblem(path, f"expected columns r, l, t; missing {missing}")
    out = {}
    for c in ("r", "l", "t"):
        v = pd.to_numeric(df[c].str.strip(), errors="coerce")
        bad = v.isna() & ~df[c].str.strip().str.lower().isin(["nan"] if c == "r" else [])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ImportProblem(path, f"column {c!r} row {i + 3}: expected a number, found {df[c].iloc[i][:40]!r}")
        out[c] = v.to_numpy(float)
    if (out["l"] < 0).any() or not np.all(out["l"] == np.round(out["l"])):
        raise ImportProblem(path, "column 'l': expected non-negative whole episode lengths")
    return header, pd.DataFrame(out)


def monitor_episodes(paths: list[Path]) -> tuple[Episodes, dict]:
    """Training episodes of one run from its monitor file(s), ordered by the step they ended at."""
    parts, headers = [], []
    for p in paths:
        header, df = read_monitor_file(p)
        headers.append(header)
        steps = np.cumsum(df["l"].to_numpy(np.int64)) * len(paths)
        parts.append((steps, df["r"].to_numpy(float), df["l"].to_numpy(np.int64), df["t"].to_numpy(float)))
    step = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    ret = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    length = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
    wall = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0)
    order = np.lexsort((wall, step))
    return Episodes.of(step[order], ret[order], length[order]), headers[0] if headers else {}


def read_monitor(paths: list[Path], source: str) -> list[RunRecord]:
    """One run from one monitor file, or from the numbered monitor files of a vectorized run."""
    episodes, header = monitor_episodes(paths)
    env = header.get("env_id") if isinstance(header.get("env_id"), str) and header.get("env_id") else None
    return [RunRecord(source=source, episodes=episodes, env=env)]
