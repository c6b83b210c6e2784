"""Seeds and hashes. Every seed evalkit uses is derived from the study seed, never from global state.

DESIGN.md section 3: a run's seed depends on (study seed, env, phase, seed index) only, so every
algorithm and setting sees the same seeds (common random numbers), and tuning and evaluation
phases never share one.
"""

from __future__ import annotations

import hashlib

import numpy as np


def short_hash(text: str, digits: int = 16) -> str:
    """The first ``digits`` hex digits of sha256(text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:digits]


def _word(part: object) -> int:
    """A stable 32-bit word for one component of a seed path (ints as themselves, text hashed)."""
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool) and 0 <= int(part) < 2**32:
        return int(part)
    return int(hashlib.sha256(repr(part).encode("utf-8")).hexdigest()[:8], 16)


def derive(root: int, *path: object) -> np.random.SeedSequence:
    """A ``SeedSequence`` for a named path below the root seed, e.g. ``derive(seed, "sweep", "dqn")``."""
    return np.random.SeedSequence([int(root) % 2**63, *[_word(p) for p in path]])


def run_seed(study_seed: int, env: str, phase: str, seed_index: int) -> int:
    """The seed of run ``seed_index`` of ``phase`` in ``env``: a 63-bit int from ``SeedSequence``."""
    state = derive(study_seed, "run", env, phase, seed_index).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))
