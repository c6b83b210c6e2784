"""Runner: determinism across backends and workers, failures and retries, resume after SIGKILL, Ray."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evalkit import runner, seeding, spec, store, worker

REPO = Path(__file__).resolve().parents[1]

CARTPOLE = """
name = "det"
seed = 11
runs = 3
[envs.CartPole-v1]
steps = 1500
[algorithms.random]
agent = "random"
[evaluation]
every = 500
episodes = 2
"""

FAKE = """
name = "fake"
seed = 3
runs = 4
[envs.CartPole-v1]
steps = 100
[algorithms.a]
agent = "tests.fake_agents:train"
config = {{ {config} }}
[algorithms.b]
agent = "tests.fake_agents:train"
config = {{ mean = 5.0 }}
"""


def stored_returns(study_dir: Path) -> dict[str, np.ndarray]:
    table = store.load(study_dir).sort_values(["run_id", "mode", "step", "episode"])
    return {rid: g[["step", "return", "length"]].to_numpy() for rid, g in table.groupby("run_id")}


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        assert a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), k


def serial(study, root, **kw):
    return runner.run_study(study, root, runner.Options(backend="serial", progress=False, **kw))


def test_serial_run_stores_every_run_with_metadata(write_study, tmp_path):
    study = spec.load_study(write_study(CARTPOLE))
    summary = serial(study, tmp_path)
    assert summary.ok and summary.completed == 3
    stored = store.scan(tmp_path / "det")
    assert len(stored) == 3
    meta = next(iter(stored.values())).meta
    for key in ("config", "seed", "wall_s", "versions", "agent_hash", "git_commit", "schema_version", "steps"):
        assert key in meta
    # the CPU kind: torch's kernels (and so the last bits of the returns) depend on its SIMD level
    import torch
    assert meta["cpu"] == f"{worker._cpu_model()}; torch {torch.backends.cpu.get_cpu_capability()}"
    assert meta["cpu"].split(";")[0].strip()
    table = store.load(tmp_path / "det")
    assert set(table["mode"]) == {"train", "eval"}
    assert (table[table["mode"] == "eval"].groupby("run_id")["step"].nunique() == 3).all()
    # rerunning skips everything
    again = serial(study, tmp_path)
    assert again.completed == 0 and again.skipped == 3


def test_two_runs_in_one_process_do_not_leak_rng_state(write_study):
    study = spec.load_study(write_study(CARTPOLE))
    a, b = spec.expand(study)[:2]
    alone = worker.execute(b, in_process=True)
    worker.execute(a, in_process=True)
    np.random.rand(5)  # global state the agent must not read
    after = worker.execute(b, in_process=True)
    assert alone.ok and after.ok
    assert [r["return"] for r in alone.rows] == [r["return"] for r in after.rows]


def test_failing_run_is_recorded_retried_and_the_rest_go_on(write_study, tmp_path):
    bad_seed = seeding.run_seed(3, "CartPole-v1", "eval", 1)
    study = spec.load_study(write_study(FAKE.format(config=f"fail_seed = {bad_seed}")))
    summary = serial(study, tmp_path, retries=2)
    assert len(summary.failed) == 1 and summary.completed == 7
    failures = store.read_failures(tmp_path / "fake")
    (record,) = failures.values()
    assert record["attempts"] == 3 and record["final"] and "planned failure" in record["error"]
    assert record["seed"] == bad_seed


def test_retry_succeeds_and_removes_the_failure_record(write_study, tmp_path):
    marker = tmp_path / "marker"
    study = spec.load_study(write_study(FAKE.format(config=f'fail_marker = "{marker}"')))
    summary = serial(study, tmp_path, retries=1)
    assert summary.ok and summary.completed == 8
    assert store.read_failures(tmp_path / "fake") == {}


def test_cli_exit_status_is_nonzero_when_a_run_finally_fails(write_study, tmp_path):
    bad_seed = seeding.run_seed(3, "CartPole-v1", "eval", 0)
    path = write_study(FAKE.format(config=f"fail_seed = {bad_seed}"))
    proc = subprocess.run([sys.executable, "-m", "evalkit.cli", "run", str(path), "--serial", "--retries", "0",
                           "--root", str(tmp_path), "--no-progress"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    assert "1 runs failed" in proc.stderr


def test_resume_after_sigkill_gives_each_run_once_and_identical_returns(write_study, tmp_path):
    path = write_study(FAKE.format(config="sleep = 0.02").replace("runs = 4", "runs = 10"))
    cmd = [sys.executable, "-m", "evalkit.cli", "run", str(path), "--serial", "--no-progress"]
    killed_root = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--root", str(killed_root)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    runs_dir = killed_root / "fake" / "runs"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(runs_dir.glob("*/*/*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(runs_dir.glob("*/*/*.parquet")))
    assert 3 <= partial < 20
    subprocess.run(cmd + ["--root", str(killed_root)], cwd=REPO, check=True, capture_output=True)
    clean_root = tmp_path / "clean"
    subprocess.run(cmd + ["--root", str(clean_root)], cwd=REPO, check=True, capture_output=True)
    files = list(runs_dir.glob("*/*/*.parquet"))
    assert len(files) == 20 and len({f.stem for f in files}) == 20
    assert not list(runs_dir.glob("*/*/.*.tmp"))
    assert_identical(stored_returns(killed_root / "fake"), stored_returns(clean_root / "fake"))


@pytest.mark.ray
def test_ray_results_equal_serial_with_one_and_two_workers(ray_instance, write_study, tmp_path):
    study = spec.load_study(write_study(CARTPOLE))
    serial(study, tmp_path / "serial")
    for workers in (1, 2):
        summary = runner.run_study(study, tmp_path / f"ray{workers}",
                                   runner.Options(backend="ray", workers=workers, progress=False))
        assert summary.ok and summary.completed == 3
        assert_identical(stored_returns(tmp_path / "serial" / "det"), stored_returns(tmp_path / f"ray{workers}" / "det"))


@pytest.mark.ray
def test_ray_records_a_failing_task_and_finishes_the_others(ray_instance, write_study, tmp_path):
    bad_seed = seeding.run_seed(3, "CartPole-v1", "eval", 2)
    study = spec.load_study(write_study(FAKE.format(config=f"fail_seed = {bad_seed}")))
    summary = runner.run_study(study, tmp_path, runner.Options(backend="ray", retries=1, progress=False))
    assert len(summary.failed) == 1 and summary.completed == 7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ray
def test_run_against_a_separately_started_ray_head(write_study, tmp_path):
    ray_bin = Path(sys.executable).parent / "ray"
    port = _free_port()
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", "--node-ip-address=127.0.0.1", "--disable-usage-stats"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        path = write_study(FAKE.format(config="mean = 1.0"))
        deadline = time.time() + 60
        proc = None
        while time.time() < deadline:
            proc = subprocess.run([sys.executable, "-m", "evalkit.cli", "run", str(path), "--address",
                                   f"127.0.0.1:{port}", "--root", str(tmp_path), "--no-progress"],
                                  cwd=REPO, capture_output=True, text=True, timeout=120)
            if proc.returncode == 0:
                break
            time.sleep(1)
        assert proc is not None and proc.returncode == 0, proc.stderr[-2000:]
        assert len(store.scan(tmp_path / "fake")) == 8
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
