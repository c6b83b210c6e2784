"""Throughput across nodes (issue 23): the same study on one Ray node with 2 CPUs and on two Ray
nodes with 1 CPU each (the same CPUs in total), through ``evalkit.runner.run_study`` joined with
``--address``, as ``evalkit run --address`` does.

Usage (about 6 minutes on 2 loaded cores at the defaults)::

    python benchmarks/bench_cluster.py [--runs 16] [--steps 20000] [--reps 3]

Both clusters are real: separate ``ray start`` processes on 127.0.0.1 (tests/local_cluster.py).
One node: a head with 2 CPUs. Two nodes: a head with 1 CPU and a worker node with 1 CPU, so half
the runs execute on a node the driver is not attached to and come back over Ray's object transfer.
The study: the ``random`` agent on CartPole-v1 (env stepping, CPU-bound), ``--runs`` seeds of
``--steps`` env steps. Each repetition starts fresh clusters, runs a 2-run warm-up study (worker
processes start), then times ``run_study`` on the study into an empty folder; clusters alternate
(1 node, 2 nodes, 1 node, ...) so a change in machine load hits both. Prints runs/s per repetition,
the median, and the ratio two nodes / one node (target: >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# this driver joins the clusters below with their token, read by Ray when it is first imported
TOKEN = secrets.token_hex(32)
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)

from evalkit import runner, spec  # noqa: E402
from tests.local_cluster import LocalCluster  # noqa: E402

STUDY = """
name = "{name}"
seed = 7
runs = {runs}
[envs.CartPole-v1]
steps = {steps}
[algorithms.random]
agent = "random"
"""


def study(folder: Path, name: str, runs: int, steps: int) -> spec.Study:
    path = folder / f"{name}.toml"
    path.write_text(STUDY.format(name=name, runs=runs, steps=steps))
    return spec.load_study(path)


def runs_per_second(cluster: LocalCluster, runs: int, steps: int) -> float:
    """Join ``cluster`` in this process, warm it up, and time one study; returns runs/s."""
    import ray
    os.environ["PYTHONPATH"] = cluster.env()["PYTHONPATH"]
    options = runner.Options(address=cluster.address, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        runner.init_ray(options)
        try:
            runner.run_study(study(Path(tmp), "warmup", 2, 500), Path(tmp) / "results", options)
            timed = study(Path(tmp), "timed", runs, steps)
            t0 = time.perf_counter()
            summary = runner.run_study(timed, Path(tmp) / "results", options)
            wall = time.perf_counter() - t0
            assert summary.ok and summary.completed == runs, summary
        finally:
            ray.shutdown()
    return runs / wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    layouts = {"1 node x 2 CPUs": dict(head_cpus=2, worker_cpus=()),
               "2 nodes x 1 CPU": dict(head_cpus=1, worker_cpus=(1,))}
    results: dict[str, list[float]] = {k: [] for k in layouts}
    for rep in range(args.reps):
        for name, layout in layouts.items():
            with LocalCluster(token=TOKEN, **layout) as cluster:
                rate = runs_per_second(cluster, args.runs, args.steps)
            results[name].append(rate)
            print(f"rep {rep + 1}: {name}: {rate:.3f} runs/s", flush=True)
    one, two = (statistics.median(results[k]) for k in layouts)
    print(f"\nrandom agent, CartPole-v1, {args.runs} runs x {args.steps} steps, median of {args.reps}")
    print("| cluster | runs/s |\n|---|---|")
    for name in layouts:
        print(f"| {name} | {statistics.median(results[name]):.3f} |")
    ratio = two / one
    print(f"\ntwo nodes / one node: {ratio:.2f}x (target >= 0.8): {'met' if ratio >= 0.8 else 'NOT met'}")
    return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
