"""``evalkit run`` with the automatic seed blocks vs ``--batch-seeds 1``, end to end (issue 21, item 3).

The target: through ``evalkit run`` with 2 workers, the default (``batch_seeds = "auto"``, the
block from ``AUTO_BLOCKS``) is never slower than ``--batch-seeds 1`` for DQN and PPO at their
CartPole-v1 defaults (no config) with 8, 32 and 128 seeds, and at least 3x where batching helps
(DQN width 64, 32+ seeds). Each case is a fresh study in a temporary directory (no evaluation,
``--steps`` env steps per seed) run twice by the real CLI in a subprocess -- once as the study
says (auto), once with ``--batch-seeds 1`` -- each into its own empty results folder, so the wall
time includes what a user waits for (imports, Ray start, scheduling, writing every run). The order
of the pair alternates from case to case so a load drift does not always favour the same side;
``--reps`` repeats every pair (in the opposite order the second time) and the median is reported.
The load average (1 min) is read before every run and printed. Where the automatic choice is
1 (no batching) the two commands are the same runs, so the case is run once and reported as 1.00x.

    nice -n 5 python benchmarks/bench_batching_default.py [--steps 5000] [--reps 1]
        [--cases dqn:0:8 dqn:64:32 dqn:0:32:16 ...]

A case is ``agent:width:seeds`` (width 0 = the agent's default) with an optional ``:block`` that
replaces the automatic block by ``--batch-seeds block`` (to measure a candidate for the table).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CLI = "import sys; from evalkit.cli import main; sys.exit(main())"
DEFAULT_CASES = ["dqn:0:8", "dqn:0:32", "dqn:0:128", "ppo:0:8", "ppo:0:32", "ppo:0:128", "dqn:64:32", "dqn:64:128"]


def study_text(agent: str, width: int, seeds: int, steps: int) -> str:
    config = f"\nconfig = {{ hidden = {width} }}" if width else ""
    return (f'name = "batching_{agent}_{width or "default"}_{seeds}"\nseed = 20261202\nruns = {seeds}\n'
            f"[envs.CartPole-v1]\nsteps = {steps}\n[algorithms.{agent}]\nagent = \"{agent}\"{config}\n")


def evalkit(args: list[str], cwd: str) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT), RAY_USAGE_STATS_ENABLED="0")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CLI, *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"evalkit {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return wall, p.stdout + p.stderr


def load1() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000, help="env steps per seed (DQN learns from step 1000)")
    ap.add_argument("--reps", type=int, default=1, help="pairs per case (median reported)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="agent:width:seeds (width 0 = default)")
    a = ap.parse_args()
    rows = []
    flip = False
    for case in a.cases:
        agent, width, seeds, *force = case.split(":")
        width, seeds = int(width), int(seeds)
        with tempfile.TemporaryDirectory(prefix="bench_batching_") as tmp:
            path = os.path.join(tmp, "study.toml")
            with open(path, "w") as f:
                f.write(study_text(agent, width, seeds, a.steps))
            _, dry = evalkit(["run", path, "--dry-run", "--root", os.path.join(tmp, "dry")], tmp)
            m = re.search(r"seed blocks: .*?: (\d+) seeds? per process \((.*)\)", dry)
            block, reason = (int(m.group(1)), m.group(2)) if m else (1, "?")
            if force:  # a candidate block size for the table instead of the automatic one
                block, reason = int(force[0]), "forced with --batch-seeds"
            times: dict[str, list[float]] = {"auto": [], "one": []}
            loads = []
            for rep in range(a.reps):
                order = ["one", "auto"] if flip else ["auto", "one"]
                if block == 1:  # auto chose no batching: the same runs as --batch-seeds 1, run once
                    order = ["one"]
                flip = not flip
                for side in order:
                    loads.append(load1())
                    extra = ["--batch-seeds", "1"] if side == "one" else ["--batch-seeds", str(block)] if force else []
                    root = os.path.join(tmp, f"{side}{rep}")
                    wall, _ = evalkit(["run", path, "--root", root, "--workers", str(a.workers), "--no-progress",
                                       *extra], tmp)
                    times[side].append(wall)
                    print(f"  {agent} width {width or 'default'} {seeds} seeds {side:>4}: {wall:6.1f} s "
                          f"(load {loads[-1]:.2f})", flush=True)
        one = statistics.median(times["one"])
        auto = statistics.median(times["auto"]) if times["auto"] else one
        rows.append((agent, width or "default", seeds, block, auto, one, one / auto, min(loads), max(loads), reason))
    print(f"\n{a.steps} env steps per seed, {a.workers} workers, median of {a.reps} pair(s)\n")
    print("| agent | width | seeds | auto block | auto (s) | --batch-seeds 1 (s) | speed-up | load (1 min) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for agent, width, seeds, block, auto, one, ratio, lo, hi, _ in rows:
        print(f"| {agent} | {width} | {seeds} | {block} | {auto:.1f} | {one:.1f} | {ratio:.2f}x | {lo:.1f}-{hi:.1f} |")


if __name__ == "__main__":
    main()
