"""Studies at scale (issue 18): build a 100,000-run study and time every command on it, with peers.

    PYTHONPATH=. python benchmarks/bench_scale.py                 # the full benchmark (~15-30 min)
    PYTHONPATH=. python benchmarks/bench_scale.py --seeds 10 --runner-seeds 10   # a quick look

1. A long table of 2 algorithms x 50 settings x 10 envs x ``--seeds`` seeds, 10 episodes per run
   (100 seeds: 100,000 runs, 1,000,000 episodes), written as one CSV; ``evalkit import`` builds the
   study from it. Then ``evalkit status``, ``store.load`` (next to ``pandas.read_csv`` of the same
   CSV and a bare ``pyarrow.dataset(..., partitioning="hive")`` read of the same store),
   ``evalkit sensitivity`` (10,000 resamples) and ``evalkit report``.
2. The runner: 500-step tabular Q-learning on CliffWorld, a 10 x 10 sweep x ``--runner-seeds``
   seeds (100: 10,000 runs) on 2 workers; peer: the same runs' agent compute alone (in-process,
   measured on a sample and scaled), i.e. the floor any runner on 2 workers has to stay above.

Every command runs in its own process; times are wall clock, memory is the process's peak RSS
(``wait4``). Targets (issue 18): import <= 60 s, status <= 3 s, load <= 3x read_csv, report <= 120 s
and <= 4 GB, sensitivity <= 60 s, runner 10,000 runs <= 60 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
ALGORITHMS = ("alpha_learner", "beta_learner")
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 0.5, 1.0)
EPSILONS = (0.01, 0.03, 0.1, 0.2, 0.3)
EPISODES = 10


def long_table(seeds: int, envs: int = 10, seed: int = 0) -> pd.DataFrame:
    """2 algorithms x 50 settings x ``envs`` envs x ``seeds`` runs x 10 episodes, one row per episode.
    Returns depend on env (scale), setting (a smooth optimum in lr, a penalty in epsilon) and run."""
    rng = np.random.default_rng(seed)
    grid = np.array([(a, lr, eps) for a in range(len(ALGORITHMS)) for lr in LRS for eps in EPSILONS])
    n_cfg, n = len(grid), len(grid) * envs * seeds
    cfg = np.repeat(np.arange(n_cfg), envs * seeds)
    env = np.tile(np.repeat(np.arange(envs), seeds), n_cfg)
    run = np.tile(np.arange(seeds), n_cfg * envs)
    alg, lr, eps = grid[cfg, 0].astype(int), grid[cfg, 1], grid[cfg, 2]
    quality = -(np.log10(lr) + 2 + 0.5 * alg) ** 2 - 2 * eps + rng.normal(0, 0.3, n)
    scale = 10.0 ** (env % 3)
    per_ep = np.repeat(np.arange(1, EPISODES + 1), n)
    k = np.repeat(np.arange(n)[None, :], EPISODES, axis=0).T.ravel()
    ep = np.tile(np.arange(1, EPISODES + 1), n)
    ret = scale[k] * (quality[k] + 0.1 * ep + rng.normal(0, 0.5, n * EPISODES))
    del per_ep
    return pd.DataFrame({
        "algorithm": np.asarray(ALGORITHMS)[alg[k]], "env": np.char.add("Env", env[k].astype(str)),
        "run": run[k], "step": ep * 1000, "return": np.round(ret, 4), "length": 1000,
        "hp.lr": lr[k], "hp.epsilon": eps[k]})


_WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
         "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "print('MAXRSS_KB', u.ru_maxrss, u.ru_utime + u.ru_stime, flush=True); "
         "sys.exit(r.returncode)")


CPU: dict[str, float] = {}  # command line -> CPU seconds (user + sys) of its last run


def timed(cmd: list[str], timeout: float, env: dict | None = None,
          cwd: Path = REPO) -> tuple[float, float, str, int]:
    """(wall seconds, peak RSS in GB, last output line, exit status) of a command in its own process
    (peak RSS and CPU time of that process and the children it waited for, via a wrapper's
    RUSAGE_CHILDREN; the CPU time goes to :data:`CPU`). On a machine shared with other jobs the
    wall time stretches, the CPU time much less: both are printed."""
    t0 = time.perf_counter()
    # its own process group, so a timeout stops the command and everything it started
    popen = subprocess.Popen([sys.executable, "-c", _WRAP, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
    try:
        stdout, stderr = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.communicate()
        return float("inf"), float("nan"), f"timed out after {timeout:g} s", -9
    proc = subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr)
    wall = time.perf_counter() - t0
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    usage = next((ln.split() for ln in lines if ln.startswith("MAXRSS_KB")), None)
    rss = int(usage[1]) / 2**20 if usage else float("nan")
    CPU["last"] = float(usage[2]) if usage else float("nan")
    out = [ln for ln in proc.stdout.splitlines() if ln.strip() and not ln.startswith("MAXRSS_KB")]
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    last = (out[-1] if out else "") if proc.returncode == 0 else (err[-1] if err else "")
    return wall, rss, last, proc.returncode


def python_timed(code: str, timeout: float) -> tuple[float, float, str, int]:
    """Run a Python snippet in its own process; it prints its own measured seconds last."""
    return timed([sys.executable, "-c", code], timeout)


def evalkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "evalkit.cli", *args]


def _row(rows: list, what: str, wall: float, rss: float, peer: str, target: str, note: str = "",
         cpu: float | None = None) -> None:
    cpu = CPU.pop("last", float("nan")) if cpu is None else cpu
    rows.append({"what": what, "seconds": wall, "cpu": cpu, "peak GB": rss, "peer": peer, "target": target,
                 "note": note})
    print(f"  {what:44s} {wall:9.2f} s (CPU {cpu:8.2f} s) {rss:6.2f} GB   {peer:38s} target {target}  {note}",
          flush=True)


def study_benchmarks(work: Path, seeds: int, rows: list, report_timeout: float) -> None:
    n_runs = len(ALGORITHMS) * len(LRS) * len(EPSILONS) * 10 * seeds
    print(f"\n== imported study: {n_runs:,} runs, {n_runs * EPISODES:,} episodes", flush=True)
    csv = work / "long.csv"
    t0 = time.perf_counter()
    long_table(seeds).to_csv(csv, index=False)
    print(f"  (generated {csv.stat().st_size / 2**20:.0f} MB of CSV in {time.perf_counter() - t0:.1f} s)", flush=True)
    root = work / "results"
    wall, rss, last, code = timed(evalkit("import", str(csv), "--name", "scale", "--root", str(root)), 900)
    _row(rows, "evalkit import", wall, rss, "", "<= 60 s", last[:60] if code else "")
    study = root / "scale"
    wall, rss, last, code = timed(evalkit("status", str(study)), 300)
    _row(rows, "evalkit status", wall, rss, "", "<= 3 s", "" if code == 0 else last[:60])
    # loads: each in a fresh process, timing only the read (imports excluded): wall and CPU seconds
    def read(setup: str, stmt: str) -> tuple[float, float, float]:
        code = (f"import time; {setup}; t = time.perf_counter(); c = time.process_time(); {stmt}; "
                f"print(time.perf_counter() - t, time.process_time() - c)")
        wall, rss, last, status = python_timed(code, 600)
        CPU.pop("last", None)
        w, c = (float(x) for x in last.split()) if status == 0 else (float("nan"),) * 2
        return w, c, rss

    p = read("import pandas as pd", f"pd.read_csv({str(csv)!r})")
    o = read("from evalkit import store", f"store.load({str(study)!r})")
    a = read("import pyarrow.dataset as ds",
             f"ds.dataset({str(study / 'runs')!r}, format='parquet', partitioning='hive').to_table().to_pandas()")
    f = read("from evalkit import results, spec",
             f"results.load(spec.study_from_store({str(study)!r}), {str(study)!r})")
    _row(rows, "pandas.read_csv (the same data as one CSV)", p[0], p[2], "peer", "", cpu=p[1])
    _row(rows, "pyarrow.dataset(hive).to_table().to_pandas()", a[0], a[2], "peer", "", cpu=a[1])
    _row(rows, "store.load", o[0], o[2], f"{o[0] / p[0]:.2f}x read_csv (CPU {o[1] / p[1]:.2f}x), "
         f"{o[0] / a[0]:.2f}x pyarrow", "<= 3x read_csv", cpu=o[1])
    _row(rows, "results.load (catalog + episodes)", f[0], f[2], f"{f[0] / p[0]:.2f}x read_csv", "", cpu=f[1])
    wall, rss, last, code = timed(evalkit("sensitivity", str(study), "--reps", "10000"), report_timeout)
    _row(rows, "evalkit sensitivity (10,000 resamples)", wall, rss, "", "<= 60 s", "" if code == 0 else last[:60])
    wall, rss, last, code = timed(evalkit("report", str(study), "--no-figures"), report_timeout)
    _row(rows, "evalkit report --no-figures", wall, rss, "", "", "" if code == 0 else last[:60])
    wall, rss, last, code = timed(evalkit("report", str(study)), report_timeout)
    _row(rows, "evalkit report (with figures)", wall, rss, "", "<= 120 s, <= 4 GB", "" if code == 0 else last[:60])


CLIFF = """
name = "cliff_scale"
seed = 1
runs = {seeds}
[envs.CliffWorld-v0]
steps = 500
[algorithms.q]
agent = "tabular_q_learning"
sweep = {{ alpha = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5], epsilon = [0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5] }}
"""


def runner_benchmark(work: Path, seeds: int, rows: list, baseline: str | None) -> None:
    n = 100 * seeds
    print(f"\n== runner: {n:,} runs of 500-step tabular Q-learning on CliffWorld, 2 workers", flush=True)
    path = work / "cliff.toml"
    path.write_text(CLIFF.format(seeds=seeds))
    floor = python_timed(
        "import time; from evalkit import spec, worker; s = spec.load_study(%r); runs = spec.expand(s); "
        "worker.execute(runs[0], True); sample = runs[1::max(1, len(runs) // 200)][:200]; "
        "t = time.perf_counter(); [worker.execute(r, True) for r in sample]; "
        "print((time.perf_counter() - t) / len(sample) * len(runs) / 2)" % str(path), 900)
    fl = float(floor[2]) if floor[3] == 0 else float("nan")
    wall, rss, last, code = timed(evalkit("run", str(path), "--root", str(work / "runs"), "--workers", "2",
                                          "--no-progress"), 1800)
    _row(rows, f"evalkit run ({n:,} runs, 2 workers)", wall, rss,
         f"agent compute alone / 2 workers: {fl:.1f} s", "<= 60 s (10,000 runs)", "" if code == 0 else last[:60])
    if baseline:
        wall_b, rss_b, last_b, code_b = timed(evalkit("run", str(path), "--root", str(work / "runs_base"),
                                                      "--workers", "2", "--no-progress"), 3600,
                                              env={"PYTHONPATH": baseline}, cwd=Path(baseline))
        _row(rows, f"evalkit run, the evalkit in {baseline}", wall_b, rss_b, "peer", "", "" if code_b == 0 else last_b[:60])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=100, help="seeds of the imported study (100: 100,000 runs)")
    ap.add_argument("--runner-seeds", type=int, default=100, help="seeds of the runner study (100: 10,000 runs)")
    ap.add_argument("--skip-study", action="store_true")
    ap.add_argument("--skip-runner", action="store_true")
    ap.add_argument("--report-timeout", type=float, default=900, help="seconds allowed to sensitivity and report")
    ap.add_argument("--baseline", help="PYTHONPATH of an older evalkit checkout to run the runner study with too")
    ap.add_argument("--workdir", help="keep the generated files here (default: a temporary folder)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"bench_scale: {os.cpu_count()} CPUs, load average {load:.1f} at start"
          + (" (a loaded machine: compare ratios to the peers, not absolute times)" if load > 2.5 else ""))
    rows: list = []
    with tempfile.TemporaryDirectory(prefix="evalkit-scale-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not args.skip_study:
            study_benchmarks(work, args.seeds, rows, args.report_timeout)
        if not args.skip_runner:
            runner_benchmark(work, args.runner_seeds, rows, args.baseline)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}\n")
    print("| what | wall s | CPU s | peak GB | peer | target | note |\n|---|---:|---:|---:|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['seconds']:.2f} | {r['cpu']:.2f} | {r['peak GB']:.2f} | {r['peer']} | "
              f"{r['target']} | {r['note']} |")


if __name__ == "__main__":
    main()
