"""Fault injection: kills, crashing workers, corrupt files, concurrent runners, divergence (issue 8)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalkit import metrics, runner, seeding, spec, status, store
from tests.test_runner import REPO, assert_identical, stored_returns

STUDY = """
name = "rel"
seed = 9
runs = {runs}
[envs.CartPole-v1]
steps = 100
[algorithms.a]
agent = "tests.fake_agents:train"
config = {{ {config} }}
sweep = {{ mean = [1.0, 2.0] }}
"""


def cli(*args: str, root: Path) -> list[str]:
    return [sys.executable, "-m", "evalkit.cli", *args, "--root", str(root)]


def test_five_sigkills_at_random_moments_lose_and_duplicate_nothing(write_study, tmp_path):
    path = write_study(STUDY.format(runs=12, config="sleep = 0.01"))
    rng = np.random.default_rng(2026)
    root = tmp_path / "killed"
    runs_dir = root / "rel" / "runs"
    kills = 0
    for _ in range(5):
        proc = subprocess.Popen(cli("run", str(path), "--serial", "--no-progress", root=root), cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(0.8, 2.0)))  # import time ~0.7 s, then a run every ~0.2 s
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 4
    done = subprocess.run(cli("run", str(path), "--serial", "--no-progress", root=root), cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    files = sorted(runs_dir.glob("*/*/*.parquet"))
    assert len(files) == 24 and len({f.stem for f in files}) == 24
    assert not list(runs_dir.glob("*/*/.*.tmp"))
    clean = tmp_path / "clean"
    runner.run_study(spec.load_study(path), clean, runner.Options(backend="serial", progress=False))
    assert_identical(stored_returns(root / "rel"), stored_returns(clean / "rel"))


def _corrupt(study_dir: Path) -> tuple[Path, Path, Path]:
    files = sorted((study_dir / "runs").glob("*/*/*.parquet"))
    truncated, garbage, old = files[0], files[1], files[2]
    truncated.write_bytes(truncated.read_bytes()[:100])
    garbage.write_bytes(b"this is not parquet" * 10)
    table = pq.read_table(old)
    meta = dict(table.schema.metadata)
    meta[b"evalkit"] = meta[b"evalkit"].replace(b'"schema_version": 1', b'"schema_version": 0')
    pq.write_table(table.replace_schema_metadata(meta), old)
    return truncated, garbage, old


def test_corrupt_and_foreign_files_are_quarantined_and_redone(write_study, tmp_path):
    path = write_study(STUDY.format(runs=2, config="mean = 0.0"))
    study = spec.load_study(path)
    opts = runner.Options(backend="serial", progress=False)
    runner.run_study(study, tmp_path, opts)
    before = stored_returns(tmp_path / "rel")
    truncated, garbage, old = _corrupt(tmp_path / "rel")
    with pytest.warns(UserWarning, match="quarantine"):
        summary = runner.run_study(study, tmp_path, opts)
    assert summary.completed == 3
    qdir = tmp_path / "rel" / "quarantine"
    reasons = " ".join(p.read_text() for p in qdir.glob("*.reason.txt"))
    assert len(list(qdir.glob("*.parquet"))) == 3 and "schema version 0" in reasons
    assert_identical(before, stored_returns(tmp_path / "rel"))
    table = status.study_status(study, tmp_path / "rel")
    assert table.attrs["quarantined"] == 3 and int(table["done"].sum()) == 4


def test_two_concurrent_runners_do_not_duplicate_runs(write_study, tmp_path):
    path = write_study(STUDY.format(runs=6, config="sleep = 0.01"))
    cmd = cli("run", str(path), "--serial", "--no-progress", root=tmp_path)
    a = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    b = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=120), b.communicate(timeout=120)
    assert a.returncode == 0 and b.returncode == 0
    assert "waiting for it to finish" in err_b or "0 runs completed" in out_b
    completed = [int(o.split(": ")[1].split(" runs completed")[0]) for o in (out_a, out_b)]
    assert sum(completed) == 12
    files = list((tmp_path / "rel" / "runs").glob("*/*/*.parquet"))
    assert len(files) == 12


def test_diverged_runs_are_stored_flagged_and_counted(write_study, tmp_path):
    bad = seeding.run_seed(9, "CartPole-v1", "eval", 1)
    path = write_study(STUDY.format(runs=3, config=f'crash = "nan", fail_seed = {bad}'))
    study = spec.load_study(path)
    runner.run_study(study, tmp_path, runner.Options(backend="serial", progress=False))
    table = store.load(tmp_path / "rel")
    assert table["return"].isna().sum() == 2  # one NaN episode per setting, stored as is
    runs = metrics.run_scores(table)
    assert runs["diverged"].sum() == 2 and runs[runs["diverged"]]["score"].isna().all()
    st = status.study_status(study, tmp_path / "rel")
    assert st["diverged"].tolist() == [2]
    from evalkit import report
    text = report.text_report(study, tmp_path / "rel", reps=200)
    # one row per setting compared: its diverged run is counted as excluded, never averaged as NaN
    assert "n=2 of 3 planned (excluded: 1 diverged)" in text and "nan" not in text.lower()


def test_changed_study_runs_only_what_is_new_and_warns_about_orphans(write_study, tmp_path):
    opts = runner.Options(backend="serial", progress=False)
    first = spec.load_study(write_study(STUDY.format(runs=2, config="mean = 0.0"), "a.toml"))
    runner.run_study(first, tmp_path, opts)
    more_seeds = spec.load_study(write_study(STUDY.format(runs=3, config="mean = 0.0"), "b.toml"))
    s = runner.run_study(more_seeds, tmp_path, opts)
    assert (s.completed, s.skipped, s.orphans) == (2, 4, 0)
    new_budget = spec.load_study(write_study(STUDY.format(runs=3, config="mean = 0.0").replace("steps = 100", "steps = 200"), "c.toml"))
    s = runner.run_study(new_budget, tmp_path, opts)
    assert (s.completed, s.skipped, s.orphans) == (6, 0, 6)
    assert len(store.scan(tmp_path / "rel")) == 12  # nothing deleted


@pytest.mark.ray
@pytest.mark.parametrize("crash,cause", [("segfault", "worker died"), ("abort", "worker died"),
                                         ("memory", "memory"), ("hang", "timeout")])
def test_worker_death_is_a_failed_run_and_the_study_goes_on(ray_instance, write_study, tmp_path, crash, cause):
    bad = seeding.run_seed(9, "CartPole-v1", "eval", 0)
    text = STUDY.format(runs=2, config=f'crash = "{crash}", fail_seed = {bad}').replace("sweep = { mean = [1.0, 2.0] }", "")
    text += "\n[resources]\nmemory_mb = 1024\n" if crash == "memory" else ""
    study = spec.load_study(write_study(text))
    # only the hang needs a short timeout; elsewhere a generous one keeps a slow death notice (a
    # loaded machine) from being classified as a timeout
    timeout = 5 if crash == "hang" else 120
    summary = runner.run_study(study, tmp_path, runner.Options(backend="ray", retries=1, timeout_s=timeout,
                                                               progress=False))
    assert summary.completed == 1 and len(summary.failed) == 1
    (record,) = store.read_failures(tmp_path / "rel").values()
    assert record["cause"] == cause and record["attempts"] == 2


def test_extras_missing_on_evaluation_rows_or_before_learning_are_not_divergence():
    import pandas as pd
    base = {"run_id": "r", "algorithm": "a", "agent": "x", "env": "E", "phase": "eval", "seed_index": 0, "seed": 1,
            "setting": "default", "budget": 40, "length": 10}
    rows = [dict(base, mode="train", step=10, episode=0, **{"return": 1.0, "loss": float("nan")}),
            dict(base, mode="train", step=20, episode=1, **{"return": 2.0, "loss": 0.5}),
            dict(base, mode="eval", step=20, episode=0, **{"return": 3.0, "loss": float("nan")}),
            dict(base, mode="train", step=30, episode=2, **{"return": 2.0, "loss": 0.4})]
    assert not metrics.run_scores(pd.DataFrame(rows))["diverged"].item()
    rows.append(dict(base, mode="train", step=40, episode=3, **{"return": 2.0, "loss": float("nan")}))
    assert metrics.run_scores(pd.DataFrame(rows))["diverged"].item()


def test_ctrl_c_stops_cleanly_keeping_completed_runs(write_study, tmp_path):
    path = write_study(STUDY.format(runs=20, config="sleep = 0.02"))
    # SIGINT back to its default in the child: a test session started in the background by a
    # non-interactive shell ('cmd &') ignores SIGINT, and the child would inherit that
    proc = subprocess.Popen(cli("run", str(path), "--serial", "--no-progress", root=tmp_path), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    runs_dir = tmp_path / "rel" / "runs"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(runs_dir.glob("*/*/*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "run the same command again to resume" in err and "Traceback" not in err
    stored = len(store.scan(tmp_path / "rel", repair=False))
    assert 3 <= stored < 40 and not list(runs_dir.glob("*/*/.*.tmp"))


AGENT_SRC = '''
from dataclasses import dataclass
from agents.common import hp

@dataclass(frozen=True)
class Config:
    scale: float = hp(1.0, low=0, high=10)

def train(env_id, config, seed, steps, log, *, env_kwargs=None, evaluation=None):
    log.episode(steps, VALUE * config.scale, steps)
'''


def test_status_flags_runs_of_changed_agent_code_and_rerun_stale_redoes_them(write_study, tmp_path, monkeypatch):
    pkg = tmp_path / "code"
    pkg.mkdir()
    (pkg / "myagent.py").write_text("VALUE = 1.0\n" + AGENT_SRC)
    monkeypatch.syspath_prepend(str(pkg))
    text = "name = 'stale'\nruns = 2\n[envs.CartPole-v1]\nsteps = 10\n[algorithms.m]\nagent = 'myagent:train'\n"
    study = spec.load_study(write_study(text))
    opts = runner.Options(backend="serial", progress=False)
    runner.run_study(study, tmp_path, opts)
    assert status.study_status(study, tmp_path / "stale")["stale"].tolist() == [0]
    (pkg / "myagent.py").write_text("VALUE = 2.0\n" + AGENT_SRC)
    import importlib, sys
    sys.modules.pop("myagent", None)
    importlib.invalidate_caches()
    assert status.study_status(study, tmp_path / "stale")["stale"].tolist() == [2]
    assert runner.run_study(study, tmp_path, opts).completed == 0  # plain rerun keeps them
    summary = runner.run_study(study, tmp_path, runner.Options(backend="serial", progress=False, rerun_stale=True))
    assert summary.completed == 2
    assert set(store.load(tmp_path / "stale")["return"]) == {2.0}
    assert status.study_status(study, tmp_path / "stale")["stale"].tolist() == [0]


def test_agent_code_hash_covers_every_agents_module_it_imports():
    """A run is stale when any agent module behind it changes: the hash follows ``from agents
    import vector_envs`` (a submodule named in a from-import) as well as ``from agents.x import y``."""
    import agents
    from pathlib import Path

    from evalkit import registry
    root = Path(agents.__file__).parent
    for module, needed in (("agents.dqn", ["dqn.py", "dqn_batched.py", "vector_envs.py", "_stacked.py", "common.py"]),
                           ("agents.ppo", ["ppo.py", "vector_envs.py", "common.py"])):
        sources = registry._module_sources(module, set())
        for name in needed:
            src = (root / name).read_bytes()
            assert any(chunk.endswith(src) for chunk in sources), (module, name)
    # names that are not modules ("from agents.dqn import Config") are skipped, not errors
    assert registry._module_sources("agents.dqn.Config", set()) == []
