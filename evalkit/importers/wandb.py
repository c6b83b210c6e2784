"""Weights & Biases: the UI's chart CSV export and a run folder's ``files/config.yaml``.

Chart export ("Download CSV" on a line plot): a column ``Step`` (or the chart's x axis, e.g.
``global_step``), and per run ``<run name> - <metric>`` plus ``<run name> - <metric>__MIN`` /
``__MAX`` (the range W&B draws when it buckets long histories; not used: the value column is what
the chart shows). A cell is empty where the run logged nothing at that step. Each non-empty value
of the return metric becomes one row; ``<run> - charts/episodic_length`` (or ``rollout/ep_len_mean``)
gives lengths when exported too. W&B may sample long histories for charts: export the full history
(or the TensorBoard files) when every episode matters.

Run folder (``wandb/run-<date>-<id>/files/config.yaml``): ``{name: {value: ..., desc: ...}}``; the
``_wandb`` entry and ``wandb_version`` are W&B's own and skipped. Its ``exp_name``/``algo``,
``env_id``/``env`` and ``seed`` identify the run it belongs to; the rest are hyperparameters.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from evalkit.importers.records import Episodes, ImportProblem, RunRecord, flatten
from evalkit.importers.safe_yaml import load_yaml

STEP_COLUMNS = ("Step", "global_step", "_step", "step")
RETURN_METRICS = ("charts/episodic_return", "rollout/ep_rew_mean", "episodic_return", "episode_reward",
                  "eval/mean_reward")
LENGTH_OF = {"charts/episodic_return": "charts/episodic_length", "rollout/ep_rew_mean": "rollout/ep_len_mean",
             "episodic_return": "episodic_length", "eval/mean_reward": "eval/mean_ep_length"}
IDENTITY_KEYS = {"algorithm": ("exp_name", "algo", "algorithm"), "env": ("env_id", "env", "env_name"),
                 "seed": ("seed",)}
NOT_HYPERPARAMETERS = {"_wandb", "wandb_version", "torch_deterministic", "cuda", "track", "wandb_project_name",
                       "wandb_entity", "capture_video", "save_model", "upload_model", "hf_entity"}


def is_chart_export(header: list[str]) -> bool:
    return bool(header) and header[0] in STEP_COLUMNS and any(" - " in c for c in header[1:])


def read_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def read_chart_export(path: Path, source: str, tag: str | None = None) -> list[RunRecord]:
    """One run per ``<run> - <metric>`` column of the return metric."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ImportProblem(path, f"expected a W&B chart CSV export ({type(exc).__name__}: {exc})") from None
    header = rows[0] if rows else []
    if not is_chart_export(header):
        raise ImportProblem(path, f"expected a W&B chart export: a first column {' or '.join(STEP_COLUMNS)} and "
                            f"'<run> - <metric>' columns")
    columns: dict[tuple[str, str], int] = {}
    for j, c in enumerate(header[1:], start=1):
        if c.endswith("__MIN") or c.endswith("__MAX") or " - " not in c:
            continue
        run, _, metric = c.rpartition(" - ")
        columns[(run, metric)] = j
    metrics = sorted({m for _, m in columns})
    metric = tag or (metrics[0] if len(metrics) == 1 else next((m for m in RETURN_METRICS if m in metrics), None))
    if metric is None or metric not in metrics:
        raise ImportProblem(path, f"{'--tag ' + repr(tag) + ' not found' if tag else 'which metric is the return?'}"
                            f"; metrics here: {', '.join(metrics)}; name one with --tag")
    body = rows[1:]
    steps = _numbers(path, [r[0] if r else "" for r in body], header[0], allow_empty=False)
    out = []
    for (run, m), j in columns.items():
        if m != metric:
            continue
        values = _numbers(path, [r[j] if j < len(r) else "" for r in body], header[j])
        keep = ~np.isnan(values) | np.array([(r[j] if j < len(r) else "").strip().lower() == "nan" for r in body], bool)
        length = None
        lj = columns.get((run, LENGTH_OF.get(metric, "")))
        if lj is not None:
            lv = _numbers(path, [r[lj] if lj < len(r) else "" for r in body], header[lj])
            if not np.isnan(lv[keep]).any():
                length = np.rint(lv[keep]).astype(np.int64)
        episodes = Episodes.of(steps[keep].astype(np.int64), values[keep], length)
        notes = ("W&B chart exports hold what the chart shows: W&B may sample long histories; export the full "
                 "history when every episode matters",)
        out.append(RunRecord(source=f"{source}#{run}", episodes=episodes, name=run, notes=notes))
    return out


def _numbers(path: Path, cells: list[str], column: str, allow_empty: bool = True) -> np.ndarray:
    out = np.full(len(cells), np.nan)
    for i, c in enumerate(cells):
        c = c.strip()
        if c == "" and allow_empty:
            continue
        try:
            out[i] = float(c)
        except ValueError:
            raise ImportProblem(path, f"column {column!r} row {i + 2}: expected a number, found {c[:40]!r}") from None
    return out


def read_config(path: Path) -> tuple[dict, dict]:
    """``(identity, hyperparameters)`` of a W&B run's ``files/config.yaml``."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ImportProblem(path, "expected a W&B config: a mapping of names to {value: ...}")
    values = {}
    for k, v in data.items():
        if k in NOT_HYPERPARAMETERS:
            continue
        values[str(k)] = v.get("value") if isinstance(v, dict) and "value" in v else v
    identity = {}
    for what, keys in IDENTITY_KEYS.items():
        for k in keys:
            if values.get(k) is not None:
                identity[what] = values[k]
                break
    if isinstance(identity.get("seed"), bool) or not isinstance(identity.get("seed", 0), int):
        identity.pop("seed", None)
    hp = flatten({k: v for k, v in values.items() if not any(k in keys for keys in IDENTITY_KEYS.values())})
    return identity, hp
