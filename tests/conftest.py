"""Shared fixtures: one Ray instance for the whole session (ray.init costs seconds), study writers."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_instance():
    """The embedded Ray instance, started once (2 CPUs, 127.0.0.1, no dashboard)."""
    import ray
    from evalkit import runner
    os.chdir(REPO)  # workers import tests.* agents from the repository root
    runner.init_ray(runner.Options(workers=2))
    yield ray
    ray.shutdown()


@pytest.fixture
def write_study(tmp_path):
    """Write a study file from TOML text (dedented) and return its path."""
    def write(text: str, name: str = "study.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write
