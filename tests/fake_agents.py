"""Agents for tests: cheap, deterministic, and able to fail on demand."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace

import numpy as np

from agents.common import hp


@dataclass(frozen=True)
class Config:
    mean: float = hp(1.0, low=-1e6, high=1e6, help="mean episodic return")
    fail_seed: int = hp(-1, help="raise when the run's seed equals this")
    fail_marker: str = hp("", help="raise while this file does not exist")
    sleep: float = hp(0.0, low=0.0, high=60.0, help="seconds to sleep per episode")
    episodes: int = hp(20, low=1, high=10_000, help="episodes to log")
    quadratic: bool = hp(False, help="mean return -(mean - 2)^2 instead of mean: best setting at mean = 2")
    noise: float = hp(1.0, low=0.0, high=100.0, help="std of the per-episode returns")
    tag: str = hp("", help="free text, ignored (report-escaping tests)")
    crash: str = hp("", choices=("", "segfault", "abort", "memory", "hang", "nan"),
                    help="how the run with seed == fail_seed dies")


def train(env_id, config, seed, steps, log, *, env_kwargs=None, evaluation=None):
    """Logs ``episodes`` synthetic episodes with returns drawn from N(mean, 1) seeded by ``seed``."""
    if seed == config.fail_seed:
        if config.crash == "segfault":
            import ctypes
            ctypes.string_at(0)  # a real SIGSEGV
        elif config.crash == "abort":
            os.abort()
        elif config.crash == "memory":
            blocks = [np.ones(2**27) for _ in range(64)]  # 64 GiB, far over any per-run limit
            del blocks
        elif config.crash == "hang":
            time.sleep(3600)
        elif config.crash != "nan":
            raise RuntimeError(f"planned failure on seed {seed}")
    if config.fail_marker and not os.path.exists(config.fail_marker):
        open(config.fail_marker, "w").close()
        raise RuntimeError("planned failure on the first attempt")
    rng = np.random.default_rng(seed)
    length = max(1, steps // config.episodes)
    for i in range(config.episodes):
        if config.sleep:
            time.sleep(config.sleep)
        center = -(config.mean - 2.0) ** 2 if config.quadratic else config.mean
        value = float(rng.normal(center, config.noise))
        if config.crash == "nan" and seed == config.fail_seed and i == config.episodes - 1:
            value = float("nan")
        log.episode((i + 1) * length, value, length)


def train_evaluated(env_id, config, seed, steps, log, *, env_kwargs=None, evaluation=None):
    """:func:`train`, then one greedy-evaluation round of 3 episodes at the last step (returns
    ``mean + 10``), except for the run with ``seed == fail_seed``, which ends before evaluating."""
    train(env_id, dataclass_replace(config, fail_seed=-1), seed, steps, log)
    if seed != config.fail_seed:
        rng = np.random.default_rng(seed + 1)
        log.evaluation(steps, [float(config.mean + 10 + rng.normal()) for _ in range(3)], [1, 1, 1])
