"""What every reader returns: one :class:`RunRecord` per run, identity plus episodes as arrays.

Readers fill in what their files record (algorithm, env, seed, hyperparameters); the path
pattern fills the gaps (``identity.py``); ``writer.py`` turns complete records into run files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from evalkit.errors import EvalkitError

IDENTITY = ("algorithm", "env", "seed")


class ImportProblem(EvalkitError):
    """One source that cannot be imported: ``<path>: <what is wrong>`` (one line)."""

    def __init__(self, path: object, what: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {what}")


@dataclass(frozen=True)
class Episodes:
    """Episode rows as parallel arrays, all of shape ``(n,)``.

    ``mode``: "train" | "eval"; ``step``: env steps when the episode ended (int64);
    ``ret``: episodic return (float64, NaN/inf kept: diverged); ``length``: env steps (int64, 0 = unknown).
    """

    mode: np.ndarray
    step: np.ndarray
    ret: np.ndarray
    length: np.ndarray

    @staticmethod
    def of(step: Any, ret: Any, length: Any | None = None, mode: str = "train") -> "Episodes":
        step = np.asarray(step, dtype=np.int64).reshape(-1)
        ret = np.asarray(ret, dtype=np.float64).reshape(-1)
        n = len(step)
        length = np.zeros(n, np.int64) if length is None else np.asarray(length, dtype=np.int64).reshape(-1)
        if len(ret) != n or len(length) != n:
            raise ValueError(f"episode arrays of unequal length: step {n}, return {len(ret)}, length {len(length)}")
        return Episodes(np.full(n, mode, dtype=object), step, ret, length)

    @staticmethod
    def concat(parts: list["Episodes"]) -> "Episodes":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Episodes.of([], [])
        return Episodes(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("mode", "step", "ret", "length")))

    def __len__(self) -> int:
        return len(self.step)

    def sorted(self) -> "Episodes":
        """Training rows before evaluation rows, each by step (stable: logging order kept within a step)."""
        order = np.lexsort((self.step, self.mode != "train"))
        return Episodes(self.mode[order], self.step[order], self.ret[order], self.length[order])

    def rows(self) -> list[dict[str, Any]]:
        """The rows :func:`evalkit.store.write_run` takes, numbered per mode from 0."""
        out, counters = [], {"train": 0, "eval": 0}
        for m, s, r, n in zip(self.mode.tolist(), self.step.tolist(), self.ret.tolist(), self.length.tolist()):
            out.append({"mode": m, "step": s, "episode": counters[m], "return": r, "length": n})
            counters[m] += 1
        return out


@dataclass(frozen=True)
class RunRecord:
    """One imported run before it is written.

    ``seed``: the seed the source recorded (or the pattern gave); ``run``: the run index used to
    pair runs across envs (``seed_index``; the seed itself when nothing else is known).
    ``config``: hyperparameters (plain JSON values) -> ``hp.<name>`` columns. ``budget``: the run's
    step budget (recorded total timesteps, else its last step). ``notes``: caveats said once per import.
    """

    source: str
    episodes: Episodes
    algorithm: str | None = None
    env: str | None = None
    seed: int | None = None
    run: int | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    budget: int | None = None
    name: str | None = None  # a name the source gives the run (W&B run name, folder name)
    phase: str | None = None  # "tune" | "eval" when the source says; else --phase
    notes: tuple[str, ...] = ()

    def with_(self, **changes: Any) -> "RunRecord":
        return replace(self, **changes)

    def missing(self) -> list[str]:
        return [k for k in IDENTITY if getattr(self, k) is None]


def plain_value(v: Any) -> Any:
    """A hyperparameter value as plain JSON: numbers, bools, strings; lists/dicts kept (stored as JSON text)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [plain_value(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): plain_value(x) for k, x in v.items()}
    return str(v)


def text_value(text: str) -> Any:
    """A value logged as text (CleanRL's hyperparameter table): bool, int, float or the text itself."""
    t = text.strip()
    if t in ("True", "true"):
        return True
    if t in ("False", "false"):
        return False
    if t in ("None", "null", ""):
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        f = float(t)
        return f if math.isfinite(f) else t
    except ValueError:
        return t


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted names (``policy_kwargs.net_arch``); ``None`` values are dropped."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        elif v is not None:
            out[key] = plain_value(v)
    return out
