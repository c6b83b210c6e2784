"""Speed of ``evalkit import`` on CleanRL-shaped TensorBoard runs against the reader it uses, alone.

Writes ``--files`` runs (default 1,000) with ``torch.utils.tensorboard.SummaryWriter`` the way
CleanRL's dqn.py logs a ``--steps`` (default 100k) step CartPole run: its hyperparameter table,
``charts/episodic_return`` and ``charts/episodic_length`` at every finished episode, and
``losses/td_loss``, ``losses/q_values``, ``charts/SPS`` every 100 steps after learning starts
(4 learning rates x 250 seeds by default). Then times, on the same files:

* the peer: TensorBoard's ``LegacyEventFileLoader`` alone, one process, collecting
  ``charts/episodic_return`` (step, value) of every file -- the least any importer must do;
* ``evalkit import`` of the folder, with 1 reader process and with 2 (the default): discovery,
  content hashes, parsing, identity, one Parquet file per run, the manifest, the atomic rename.

Prints wall and CPU seconds (with the reader processes'), files/s and the ratios import / reader
(target <= 1.3). On a shared machine the CPU ratio is the steadier one: wall time also measures
the neighbours.

    python benchmarks/bench_import.py [--files 1000] [--steps 100000] [--data DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

LEARNING_RATES = (1e-4, 2.5e-4, 5e-4, 1e-3)


def write_run(folder: Path, index: int, steps: int) -> None:
    """One CleanRL dqn.py-shaped run (same tags, same hyperparameter table)."""
    from torch.utils.tensorboard import SummaryWriter
    rng = np.random.default_rng(index)
    seed, lr = index // len(LEARNING_RATES) + 1, LEARNING_RATES[index % len(LEARNING_RATES)]
    args = {"exp_name": "dqn", "seed": seed, "torch_deterministic": True, "cuda": False, "track": False,
            "env_id": "CartPole-v1", "total_timesteps": steps, "learning_rate": lr, "num_envs": 1,
            "buffer_size": 10000, "gamma": 0.99, "tau": 1.0, "target_network_frequency": 500, "batch_size": 128,
            "start_e": 1, "end_e": 0.05, "exploration_fraction": 0.5, "learning_starts": 10000, "train_frequency": 10}
    writer = SummaryWriter(str(folder / f"CartPole-v1__dqn__{seed}__{1700000000 + index}"))
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n%s" % ("\n".join([f"|{k}|{v}|" for k, v in args.items()])))
    end = 0
    next_end = int(rng.integers(10, 40))
    for step in range(100, steps + 1, 100):
        while next_end <= step:  # episodes that ended in these 100 steps, lengths growing as it learns
            mean = 20 + 300 * min(1.0, next_end / (0.6 * steps))
            length = int(np.clip(rng.normal(mean, 0.3 * mean), 8, 500))
            writer.add_scalar("charts/episodic_return", float(length), next_end)
            writer.add_scalar("charts/episodic_length", length, next_end)
            end, next_end = next_end, next_end + length
        if step > args["learning_starts"]:
            writer.add_scalar("losses/td_loss", float(rng.gamma(2.0, 0.5)), step)
            writer.add_scalar("losses/q_values", float(step) / steps * 100, step)
            writer.add_scalar("charts/SPS", 3000, step)
    writer.close()


def generate(folder: Path, files: int, steps: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with cf.ProcessPoolExecutor(2) as pool:
        list(pool.map(write_run, [folder] * files, range(files), [steps] * files, chunksize=8))


def reader_alone(files: list[Path]) -> int:
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    n = 0
    for f in files:
        steps, values = [], []
        for event in LegacyEventFileLoader(str(f)).Load():
            for v in event.summary.value:
                if v.tag == "charts/episodic_return":
                    steps.append(event.step)
                    values.append(v.simple_value)
        n += len(values)
    return n


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the reader processes of an import)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn):
    t0, c0 = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - t0, _cpu() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--data", help="folder for the generated runs (kept and reused; default: a temporary folder)")
    args = p.parse_args()
    from evalkit import importers
    tmp = Path(tempfile.mkdtemp(prefix="bench_import_"))
    data = Path(args.data) if args.data else tmp / "runs"
    files = sorted(data.glob("*/events.out.tfevents.*"))
    if len(files) != args.files:
        shutil.rmtree(data, ignore_errors=True)
        _, t_gen, _ = timed(lambda: generate(data, args.files, args.steps))
        files = sorted(data.glob("*/events.out.tfevents.*"))
        print(f"generated {len(files)} runs of {args.steps:,} steps with SummaryWriter in {t_gen:.1f} s")
    size = sum(f.stat().st_size for f in files)
    for f in files:  # warm the page cache: both sides read from memory
        f.read_bytes()
    # module imports and first-call costs outside the timings, for both sides
    reader_alone(files[:1])
    importers.import_path(files[0].parent, "warmup", tmp / "results", workers=1)
    rows = []
    episodes, t_r1, c_r1 = timed(lambda: reader_alone(files))
    for workers in (1, 2):
        s, t_i, c_i = timed(lambda: importers.import_path(data, f"bench{workers}", tmp / "results", workers=workers))
        assert s.added == len(files) and not s.problems, (s.added, s.problems[:3])
        rows.append((workers, t_i, c_i))
    _, t_r2, c_r2 = timed(lambda: reader_alone(files))
    t_reader, c_reader = (t_r1 + t_r2) / 2, (c_r1 + c_r2) / 2
    print(f"{len(files)} event files, {size / 2**20:.0f} MiB, {episodes:,} episodes, {args.steps:,} steps each")
    print("| what | wall | CPU | files/s (wall) | import / reader: wall (CPU) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| TensorBoard LegacyEventFileLoader alone, 1 process (mean of 2 passes: {t_r1:.1f} s, {t_r2:.1f} s) "
          f"| {t_reader:.1f} s | {c_reader:.1f} s | {len(files) / t_reader:.1f} | |")
    for workers, t_i, c_i in rows:
        print(f"| evalkit import, {workers} reader process{'es' if workers > 1 else ''} | {t_i:.1f} s | {c_i:.1f} s "
              f"| {len(files) / t_i:.1f} | {t_i / t_reader:.2f}x ({c_i / c_reader:.2f}x) |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
