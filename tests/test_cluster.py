"""A real multi-node Ray cluster on this machine (issue 23): runs spread over nodes, only the
driver writes, a lost worker node's runs are retried elsewhere, a lost head is one line and a new
cluster resumes, resource requests reach Ray's scheduler. Every node is on 127.0.0.1.

Each node is a separate ``ray start`` process with its own working directory (tests/local_cluster.py);
the study is run by the evalkit command line in a third directory, as a user would run it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkit import runner, spec, store
from tests.local_cluster import LocalCluster
from tests.test_runner import assert_identical, stored_returns

pytestmark = pytest.mark.ray

STUDY = """
name = "{name}"
seed = 5
runs = {runs}
[envs.CartPole-v1]
steps = 100
[algorithms.a]
agent = "tests.fake_agents:train"
config = {{ sleep = {sleep}, episodes = 10 }}
[algorithms.b]
agent = "tests.fake_agents:train"
config = {{ mean = 5.0, sleep = {sleep}, episodes = 10 }}
{extra}
"""


@pytest.fixture(scope="module")
def cluster():
    """A 0-CPU head (runs can only go to worker nodes) and two 1-CPU worker nodes, the second
    declaring one GPU."""
    with LocalCluster(worker_cpus=(1, 1), worker_gpus=(0, 1)) as c:
        yield c


def write(tmp_path: Path, name: str, runs: int = 4, sleep: float = 0.0, extra: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(name=name, runs=runs, sleep=sleep, extra=extra))
    return path


def evalkit_run(cluster: LocalCluster, study: Path, cwd: Path, *extra: str, wait: bool = True):
    """``evalkit run STUDY --address ... --root results`` from ``cwd`` (a relative results root)."""
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "evalkit.cli", "run", str(study), "--address", cluster.address,
           "--root", "results", "--no-progress", *extra]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(cmd, cwd=cwd, env=cluster.env(), capture_output=True, text=True, timeout=300)


def metas(study_dir: Path) -> list[dict]:
    return [sr.meta for sr in store.scan(study_dir, repair=False).values()]


def serial_returns(study: Path, root: Path) -> dict:
    s = spec.load_study(study)
    runner.run_study(s, root, runner.Options(backend="serial", progress=False))
    return stored_returns(root / s.name)


def test_an_address_where_no_cluster_answers_is_one_line(tmp_path):
    from tests.local_cluster import free_port
    proc = subprocess.run([sys.executable, "-m", "evalkit.cli", "run", str(write(tmp_path, "none")), "--address",
                           f"127.0.0.1:{free_port()}", "--root", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "expected a running Ray cluster's head" in line


def test_every_node_is_on_loopback(cluster):
    for node in cluster.nodes:
        args = node.raylet_args()
        assert args["node_ip_address"] == "127.0.0.1"
        assert args["gcs-address"].startswith("127.0.0.1:")


def test_runs_spread_over_worker_nodes_and_only_the_driver_writes(cluster, tmp_path):
    study = write(tmp_path, "spread", runs=4, sleep=0.05)
    driver = tmp_path / "driver"
    proc = evalkit_run(cluster, study, driver)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study_dir = driver / "results" / "spread"
    meta = metas(study_dir)
    assert len(meta) == 8
    workers = {n.node_id for n in cluster.workers}
    used = {m["node_id"] for m in meta}
    assert used <= workers and len(used) == 2, (used, workers)  # the 0-CPU head ran nothing
    assert {m["hostname"] for m in meta} == {socket.gethostname()}
    assert all(m["attempts"] == 1 and m["failed_attempts"] == [] for m in meta)
    # worker processes ran in their nodes' own directories and wrote nothing there
    for node in cluster.nodes:
        assert node.cwd != driver and list(node.cwd.iterdir()) == []
    assert_identical(serial_returns(study, tmp_path / "serial"), stored_returns(study_dir))


def test_gpu_runs_go_only_where_a_gpu_is_and_impossible_requests_are_refused(cluster, tmp_path):
    study = write(tmp_path, "gpu", runs=2, extra="[resources]\ngpus = 1\n")
    proc = evalkit_run(cluster, study, tmp_path / "driver")
    assert proc.returncode == 0, proc.stderr[-3000:]
    gpu_node = cluster.workers[1].node_id
    assert {m["node_id"] for m in metas(tmp_path / "driver" / "results" / "gpu")} == {gpu_node}

    too_big = write(tmp_path, "big", runs=2, extra="[algorithms.b.resources]\ncpus = 4\n")
    proc = evalkit_run(cluster, too_big, tmp_path / "driver2")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "algorithms.b.resources" in line and "cpus = 4" in line and "the cluster has" in line
    assert "1 CPUs, 1 GPUs" in line  # what the GPU node has, said in the refusal
    assert not (tmp_path / "driver2" / "results" / "big" / "runs").exists()  # nothing ran


def test_losing_a_worker_node_mid_study_retries_its_runs_on_the_others(cluster, tmp_path):
    doomed = cluster.add_worker(1, name="doomed")
    doomed_id = doomed.node_id
    study = write(tmp_path, "lose", runs=6, sleep=0.2)  # 12 runs of about 2 s on 3 CPUs
    driver = tmp_path / "driver"
    proc = evalkit_run(cluster, study, driver, "--retries", "1", wait=False)
    deadline = time.time() + 180
    while time.time() < deadline and not doomed.running():  # a run is executing there, right now
        time.sleep(0.05)
    cluster.kill_raylet(doomed)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    meta = metas(driver / "results" / "lose")
    assert len(meta) == 12 and len({m["run_id"] for m in meta}) == 12
    retried = [m for m in meta if m["failed_attempts"]]
    assert retried, "the lost node had no run in flight"
    for m in retried:
        (lost,) = m["failed_attempts"]
        assert lost["cause"] == "node lost" and lost["node_id"] == doomed_id
        assert lost["hostname"] == socket.gethostname()
        assert m["attempts"] == 2 and m["node_id"] != doomed_id
    assert store.read_failures(driver / "results" / "lose") == {}
    assert_identical(serial_returns(study, tmp_path / "serial"), stored_returns(driver / "results" / "lose"))


def test_losing_the_head_is_one_line_and_a_new_cluster_resumes(tmp_path):
    study = write(tmp_path, "head", runs=5, sleep=0.1)
    driver = tmp_path / "driver"
    runs_dir = driver / "results" / "head" / "runs"
    with LocalCluster(worker_cpus=(1,)) as first:
        proc = evalkit_run(first, study, driver, wait=False)
        deadline = time.time() + 180
        while time.time() < deadline and len(list(runs_dir.glob("*/*/*.parquet"))) < 2:
            time.sleep(0.1)
        os.killpg(first.head.proc.pid, signal.SIGKILL)  # the head machine is gone: GCS, raylet, all
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err[-3000:]
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[-1].startswith("evalkit: error: lost the Ray cluster's head") and "rerun" in lines[-1]
    partial = len(list(runs_dir.glob("*/*/*.parquet")))
    assert 2 <= partial < 10
    with LocalCluster(worker_cpus=(), head_cpus=2) as second:
        proc = evalkit_run(second, study, driver)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{10 - partial} runs completed, {partial} already stored" in proc.stdout
    meta = metas(driver / "results" / "head")
    assert len(meta) == 10 and len({m["run_id"] for m in meta}) == 10
    assert_identical(serial_returns(study, tmp_path / "serial"), stored_returns(driver / "results" / "head"))
