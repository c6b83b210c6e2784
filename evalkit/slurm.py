"""Run a study on a SLURM allocation: an sbatch script that starts one Ray cluster over the job's
nodes and runs the study's driver against it.

The script follows Ray's documented SLURM deployment (docs.ray.io, "Deploying on Slurm"): the
first node of the allocation hosts the Ray head, every other node runs one Ray worker node through
``srun``, each with the CPUs (and GPUs) the job gave it, and the batch script itself (which SLURM
runs on the first node) then runs ``evalkit run STUDY --address HEAD:PORT``. The driver writes
every run file, so only the submit host's results folder needs to be writable; rerunning the same
job resumes, as ``evalkit run`` always does.

Security: Ray's ports accept work from anyone who can reach them. The script turns on Ray's token
authentication with a fresh random token per job (``RAY_AUTH_MODE=token``), and Ray's ports must
still only be reachable on the cluster's private network.

Overridable at submit time (the environment reaches the script): ``EVALKIT_HEAD_IP`` (the head
address, default: what ``hostname --ip-address`` says on the head node), ``EVALKIT_NODE_IP`` (the
address worker nodes register; default: Ray's own detection), ``EVALKIT_RAY_PORT`` (6379),
``EVALKIT_RAY`` (the ``ray`` command), ``EVALKIT_NODE_WAIT_S`` (how long to wait for every node to
join, 300 s).
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import EvalkitError


@dataclass(frozen=True)
class Job:
    """What the sbatch script asks SLURM for and what it runs."""

    study: Path  # absolute
    root: Path  # absolute results root
    nodes: int
    cpus_per_node: int
    time: str  # HH:MM:SS (or D-HH:MM:SS)
    partition: str | None = None
    gpus_per_node: int = 0
    retries: int = 1
    job_name: str = "evalkit"
    workdir: Path = Path(".")  # the study's working directory: nodes import user agents from it


TIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")


def validate(job: Job) -> None:
    """One-line errors for arguments SLURM would reject later (or run wrongly)."""
    if job.nodes < 1:
        raise EvalkitError(f"--nodes: expected an integer >= 1, found {job.nodes}")
    if job.cpus_per_node < 1:
        raise EvalkitError(f"--cpus-per-node: expected an integer >= 1, found {job.cpus_per_node}")
    if job.gpus_per_node < 0:
        raise EvalkitError(f"--gpus-per-node: expected an integer >= 0, found {job.gpus_per_node}")
    if job.retries < 0:
        raise EvalkitError(f"--retries: expected an integer >= 0, found {job.retries}")
    if not TIME.match(job.time):
        raise EvalkitError(f"--time: expected HH:MM:SS (or D-HH:MM:SS), found {job.time!r}")
    if job.partition is not None and not re.fullmatch(r"[A-Za-z0-9_.,-]+", job.partition):
        raise EvalkitError(f"--partition: expected a SLURM partition name, found {job.partition!r}")


def sbatch_script(job: Job, python: str = sys.executable) -> str:
    """The sbatch script's text (bash). Every path and name is shell-quoted."""
    validate(job)
    q = shlex.quote
    ray_default = str(Path(python).parent / "ray")
    directives = [f"--job-name={job.job_name}", f"--nodes={job.nodes}", "--ntasks-per-node=1",
                  f"--cpus-per-task={job.cpus_per_node}", f"--time={job.time}",
                  f"--output={job.job_name}-%j.out"]
    if job.partition:
        directives.append(f"--partition={job.partition}")
    if job.gpus_per_node:
        directives.append(f"--gpus-per-node={job.gpus_per_node}")
    head = "\n".join(f"#SBATCH {d}" for d in directives)
    return f"""#!/bin/bash
{head}
#
# Written by `evalkit slurm` for {job.study.name}: a Ray cluster over this job's {job.nodes} node(s)
# (Ray's SLURM deployment: the head on the first node, one worker node per other node via srun),
# then the study's driver on the first node. Submitting it again resumes the study.
# Ray's ports must only be reachable on the cluster's private network; the job's Ray cluster also
# requires a token that only this job knows (RAY_AUTH_MODE=token).
set -euo pipefail

PYTHON={q(python)}
RAY=${{EVALKIT_RAY:-{q(ray_default)}}}
STUDY={q(str(job.study))}
ROOT={q(str(job.root))}
PORT=${{EVALKIT_RAY_PORT:-6379}}
CPUS=${{SLURM_CPUS_PER_TASK:-{job.cpus_per_node}}}
GPUS={job.gpus_per_node}

export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN="${{RAY_AUTH_TOKEN:-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(32))')}}"
# Ray workers import the study's agents the way the driver does: from the study's directory
export PYTHONPATH={q(str(job.workdir))}"${{PYTHONPATH:+:$PYTHONPATH}}"
cd {q(str(job.workdir))}

nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
head_node=${{nodes[0]}}
head_ip=${{EVALKIT_HEAD_IP:-$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address)}}
head_ip=${{head_ip%% *}}  # the first address when the host has several
address="$head_ip:$PORT"
echo "evalkit: Ray head on $head_node at $address; ${{#nodes[@]}} node(s)"

# stop every Ray node this job started when the script ends, however it ends
trap 'kill $(jobs -p) 2>/dev/null || true; wait || true' EXIT

srun --nodes=1 --ntasks=1 -w "$head_node" \\
    $RAY start --head --block --node-ip-address="$head_ip" --port="$PORT" \\
    --num-cpus="$CPUS" --num-gpus="$GPUS" --include-dashboard=false --disable-usage-stats &
"$PYTHON" -m evalkit.slurm wait-nodes "$address" 1 --timeout "${{EVALKIT_NODE_WAIT_S:-300}}"

# one worker node at a time, each waited for (Ray's script sleeps between them): two nodes
# starting on one host at once can race for a port
for ((i = 1; i < ${{#nodes[@]}}; i++)); do
    srun --nodes=1 --ntasks=1 -w "${{nodes[$i]}}" \\
        $RAY start --block --address="$address" ${{EVALKIT_NODE_IP:+--node-ip-address="$EVALKIT_NODE_IP"}} \\
        --num-cpus="$CPUS" --num-gpus="$GPUS" --disable-usage-stats &
    "$PYTHON" -m evalkit.slurm wait-nodes "$address" $((i + 1)) --timeout "${{EVALKIT_NODE_WAIT_S:-300}}"
done

"$PYTHON" -m evalkit.cli run "$STUDY" --root "$ROOT" --address "$address" --retries {job.retries} --no-progress
"""


def write_script(job: Job, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(sbatch_script(job))
    out.chmod(0o755)
    return out


def submit(script: Path) -> str:
    """``sbatch SCRIPT``; returns what sbatch printed (the job id)."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise EvalkitError(f"--submit: expected SLURM's sbatch on PATH, found none (the script is written: "
                           f"submit it with 'sbatch {script}' on a login node)")
    proc = subprocess.run([sbatch, str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        msg = " ".join((proc.stderr or proc.stdout).split())[:400]
        raise EvalkitError(f"sbatch {script}: exit status {proc.returncode}: {msg}")
    return proc.stdout.strip()


# ------------------------------------------------------------------ inside the job


def wait_nodes(address: str, count: int, timeout_s: float) -> int:
    """Wait until the Ray cluster at ``address`` has ``count`` live nodes (the head answers first).

    The driver sizes its work to the cluster it finds, so it must start once every node joined.
    """
    host, _, port = address.rpartition(":")
    deadline = time.time() + timeout_s
    while True:  # the head's GCS port accepts connections before ray.init can join
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
            break
        except OSError:
            if time.time() > deadline:
                raise EvalkitError(f"no Ray head answered at {address} within {timeout_s:g} s") from None
            time.sleep(1)
    import ray
    from evalkit import runner
    runner.init_ray(runner.Options(address=address))
    try:
        while True:
            alive = sum(1 for n in ray.nodes() if n.get("Alive"))
            if alive >= count:
                print(f"evalkit: {alive} Ray node(s) up at {address}", flush=True)
                return alive
            if time.time() > deadline:
                raise EvalkitError(f"{alive} of {count} Ray nodes joined {address} within {timeout_s:g} s "
                                   f"(see the job's output for the nodes' errors)")
            time.sleep(1)
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    """``python -m evalkit.slurm wait-nodes ADDRESS N [--timeout S]`` (used by the sbatch script)."""
    parser = argparse.ArgumentParser(prog="python -m evalkit.slurm")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("wait-nodes", help="wait until a Ray cluster has N live nodes")
    p.add_argument("address")
    p.add_argument("count", type=int)
    p.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    try:
        wait_nodes(args.address, args.count, args.timeout)
    except EvalkitError as exc:
        print(f"evalkit: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
