"""``evalkit slurm`` (issue 23): the sbatch script, and the whole path run end to end with stub
``sbatch``/``srun``/``scontrol`` commands that start the job's "nodes" on this machine, each in
its own directory, every one on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit import store
from tests.local_cluster import REPO, free_port, node_env
from tests.test_cluster import serial_returns, write
from tests.test_runner import assert_identical, stored_returns

STUBS = {
    "scontrol": r"""#!/bin/bash
# scontrol show hostnames LIST: one host a line (the stub's node lists are comma-separated)
[ "$1 $2" = "show hostnames" ] || { echo "stub scontrol: unsupported: $*" >&2; exit 1; }
tr ',' '\n' <<< "$3"
""",
    "srun": r"""#!/bin/bash
# run the step on "node" -w NODE: here, in that node's own directory, as on another machine
node=""
while [ $# -gt 0 ]; do
  case "$1" in
    -w) node=$2; shift 2 ;;
    --nodes=*|--ntasks=*) shift ;;
    *) break ;;
  esac
done
mkdir -p "$STUB_NODES/$node" && cd "$STUB_NODES/$node"
echo "$node $1 $2 $3" >> "$STUB_NODES/srun.log"
exec "$@"
""",
    "sbatch": r"""#!/bin/bash
# allocate --nodes nodes named node1..nodeN and run the script now, here (real sbatch queues it)
script=$1
nodes=$(sed -n 's/^#SBATCH --nodes=//p' "$script")
cpus=$(sed -n 's/^#SBATCH --cpus-per-task=//p' "$script")
echo "Submitted batch job 4242"
SLURM_JOB_ID=4242 SLURM_JOB_NUM_NODES=$nodes SLURM_CPUS_PER_TASK=$cpus \
SLURM_JOB_NODELIST=$(seq -f "node%g" 1 "$nodes" | paste -sd, -) bash "$script" > "$STUB_NODES/job.out" 2>&1
echo "job exit status $?" >> "$STUB_NODES/job.out"
""",
    # Ray's own CLI, kept on 127.0.0.1, each node with ports and temp dir of its own (one machine)
    "ray": r"""#!/bin/bash
if [ "$1" = start ]; then
  port() { "$STUB_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  set -- "$@" --temp-dir="$STUB_TEMP" --node-manager-port="$(port)" --object-manager-port="$(port)" \
    --dashboard-agent-listen-port="$(port)" --min-worker-port=0 --max-worker-port=0
  case " $* " in *" --head "*) set -- "$@" --ray-client-server-port="$(port)" ;; esac
fi
exec "$STUB_PYTHON" -m tests.ray_loopback "$@"
""",
}


def cli(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalkit.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=400)


def stub_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    import secrets
    import tempfile
    env = node_env(secrets.token_hex(16))
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", STUB_NODES=str(tmp_path / "nodes"),
               STUB_TEMP=tempfile.mkdtemp(prefix="rk", dir="/tmp"), STUB_PYTHON=sys.executable,
               EVALKIT_RAY=str(bin_dir / "ray"), EVALKIT_HEAD_IP="127.0.0.1", EVALKIT_NODE_IP="127.0.0.1",
               EVALKIT_RAY_PORT=str(free_port()), EVALKIT_NODE_WAIT_S="150")
    env.pop("RAY_AUTH_TOKEN")  # the script makes its own per-job token
    (tmp_path / "nodes").mkdir()
    return env


def ray_processes(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (this test's Ray temp dir)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker.encode() in cmd and state != "Z":
                pids.append(int(entry))
    return pids


@pytest.mark.ray
def test_generated_script_runs_a_study_on_three_stub_slurm_nodes(tmp_path):
    study = write(tmp_path, "onslurm", runs=3, sleep=0.05)
    env = stub_env(tmp_path)
    script = tmp_path / "job.sbatch"
    try:
        proc = cli("slurm", str(study), "--nodes", "3", "--cpus-per-node", "1", "--time", "00:10:00",
                   "--root", str(tmp_path / "results"), "--out", str(script), "--submit", env=env)
        job_out = (tmp_path / "nodes" / "job.out").read_text() if (tmp_path / "nodes" / "job.out").exists() else ""
        assert proc.returncode == 0, proc.stderr + job_out[-3000:]
        assert "Submitted batch job 4242" in proc.stdout
        assert "job exit status 0" in job_out, job_out[-3000:]
        assert "3 Ray node(s) up at 127.0.0.1:" in job_out
        steps = (tmp_path / "nodes" / "srun.log").read_text().splitlines()
        assert steps[0].startswith("node1 ") and "--head" in steps[0]
        assert sorted(s.split()[0] for s in steps[1:]) == ["node2", "node3"]
        assert all(" start" in s for s in steps)
        metas = [sr.meta for sr in store.scan(tmp_path / "results" / "onslurm", repair=False).values()]
        assert len(metas) == 6
        assert len({m["node_id"] for m in metas}) >= 2  # three 1-CPU nodes shared the runs
        for node in ("node1", "node2", "node3"):  # worker processes wrote nothing where they ran
            assert list((tmp_path / "nodes" / node).iterdir()) == []
        assert_identical(serial_returns(study, tmp_path / "serial"), stored_returns(tmp_path / "results" / "onslurm"))
        assert ray_processes(env["STUB_TEMP"]) == []  # the script's exit trap stopped every node
    finally:
        import signal
        for pid in ray_processes(env["STUB_TEMP"]):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        import shutil
        shutil.rmtree(env["STUB_TEMP"], ignore_errors=True)


def test_script_follows_rays_slurm_layout_and_bad_arguments_are_one_line(tmp_path):
    study = write(tmp_path, "layout")
    script = tmp_path / "x.sbatch"
    proc = cli("slurm", str(study), "--nodes", "4", "--cpus-per-node", "16", "--time", "02:30:00", "--partition",
               "gpu", "--gpus-per-node", "2", "--out", str(script))
    assert proc.returncode == 0, proc.stderr
    text = script.read_text()
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=16",
                 "#SBATCH --time=02:30:00", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2"):
        assert line in text.splitlines()
    assert "--head" in text and "srun --nodes=1 --ntasks=1 -w \"$head_node\"" in text
    assert "evalkit.cli run" in text and "--address \"$address\"" in text and "RAY_AUTH_MODE=token" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    for args, needle in ((["--time", "2h"], "--time: expected HH:MM:SS"),
                         (["--time", "01:00:00", "--nodes", "0"], "--nodes: expected an integer >= 1"),
                         (["--time", "01:00:00", "--submit"], "--submit: expected SLURM's sbatch on PATH")):
        argv = ["slurm", str(study), "--nodes", "2", "--cpus-per-node", "4", "--out", str(tmp_path / "y.sbatch"), *args]
        env = dict(os.environ, PATH="/usr/bin:/bin")  # no sbatch here
        proc = cli(*argv, env=env)
        assert proc.returncode == 2, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert needle in line and "Traceback" not in proc.stderr
