"""Aggregate env steps/s of seed-batched DQN vs the unbatched agent through evalkit's runner (issue 9).

Usage (about 15 minutes on 2 cores at the defaults)::

    nice -n 10 python benchmarks/bench_batched.py [--steps 5000] [--batch-sizes 1 8 32 128]
        [--hiddens 256 64] [--runner-runs 8] [--device cpu]

For every hidden width (256 = rl-zoo3's CartPole setting; 128 = DQN's CartPole-v1 default since
issue 21; 64 = a smaller network where per-call overhead, not arithmetic, dominates) it measures,
on CartPole-v1 and with otherwise the hyperparameters a study gets there by default
(:func:`cartpole_config`; before issue 21 that was rl-zoo3's setting, 128 gradient steps every 256
env steps; since, 2 every 4):

* **batched**: ``agents.dqn_batched.train_batch`` with B seeds for ``--steps`` env steps each,
  in this process on one torch thread; aggregate steps/s = B * steps / wall time;
* **runner, 2 blocks**: the batched agent the way ``evalkit run`` uses it on this machine: a study
  of 2B seeds in blocks of B (``batch_seeds = B``), two blocks at once on 2 Ray workers, each one
  process with one torch thread; aggregate steps/s = 2B * steps / wall time of ``run_study``;
* **runner**: the unbatched agent run the usual way, ``evalkit.runner.run_study`` on a study of
  ``--runner-runs`` seeds with ``batch_seeds = 1``, backend ``ray`` and 2 workers; aggregate
  steps/s = runs * steps / wall time of ``run_study`` (Ray is started before the clock starts;
  the study is written to a temporary directory);
* **ceiling**: :func:`ceiling_sps`, what 2 processes would reach if an update cost only its four
  ``hidden x hidden`` batched products (measured here with ``torch.bmm``): an upper bound for
  any implementation of the same fp32 math on this machine, printed next to the measured rows.

Every run has the same budget (``--steps`` per seed; the first 1000 are before learning starts,
as in a real run). Prints a Markdown table with the speed-up over the runner. ``--device cuda``
runs the batched part on the GPU (the runner column is then skipped with ``--runner-runs 0``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch  # noqa: E402

from agents.common import ListLog  # noqa: E402


def cartpole_config(hidden: int):
    """DQN's config on CartPole-v1 when a study sets only ``hidden``: Config defaults <- the agent's
    CartPole-v1 defaults (``dqn.ENV_DEFAULTS``, issue 21) <- ``hidden``, as the runner resolves it."""
    from agents import dqn
    return dqn.Config(**{**dqn.ENV_DEFAULTS.get("CartPole-v1", {}), "hidden": hidden})


def batched_sps(batch: int, steps: int, hidden: int, device: str) -> float:
    from agents import dqn_batched
    logs = [ListLog() for _ in range(batch)]
    t0 = time.perf_counter()
    dqn_batched.train_batch("CartPole-v1", cartpole_config(hidden), list(range(batch)), steps, logs,
                            device=device)
    wall = time.perf_counter() - t0
    assert all(log.rows for log in logs)
    return batch * steps / wall


def ceiling_sps(batch: int, steps: int, hidden: int, device: str, processes: int = 2) -> float:
    """An upper bound measured on this machine: the aggregate steps/s of ``processes`` processes
    whose updates did nothing but their four hidden-layer products (online and target forward,
    weight gradient and input gradient of the ``hidden x hidden`` layer: ``bmm`` of ``(B, batch,
    hidden) x (B, hidden, hidden)``), with env steps, acting, the other layers, clipping and Adam
    free. No implementation of the same fp32 math with this GEMM can beat it."""
    from torch.utils.benchmark import Timer

    cfg = cartpole_config(hidden)
    h = torch.rand(batch, cfg.batch_size, hidden, device=device)
    w = torch.rand(batch, hidden, hidden, device=device)
    one = Timer("torch.bmm(h, w)", globals={"torch": torch, "h": h, "w": w}).blocked_autorange(min_run_time=0.5).median
    phases = sum(1 for t in range(cfg.learning_starts + 1, steps + 1) if t % cfg.train_frequency == 0)
    updates = phases * cfg.gradient_steps
    return processes * batch * steps / (updates * 4 * one)


def runner_sps(runs: int, steps: int, hidden: int, batch_seeds: int = 1) -> float:
    """Aggregate steps/s of ``evalkit.runner.run_study`` (Ray, 2 workers) on a study of ``runs``
    seeds in blocks of ``batch_seeds`` (1: the unbatched agent)."""
    from evalkit import runner, spec
    raw = {"name": f"bench_batched_h{hidden}_b{batch_seeds}", "seed": 7, "runs": runs, "metric": "auc",
           "batch_seeds": batch_seeds,
           "envs": {"CartPole-v1": {"steps": steps}},
           "algorithms": {"dqn": {"agent": "dqn", "config": {"hidden": hidden}}}}
    study = spec.parse_study(raw)
    options = runner.Options(backend="ray", workers=2, progress=False)
    runner.init_ray(options)
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        summary = runner.run_study(study, root, options)
        wall = time.perf_counter() - t0
    if not summary.ok or summary.completed != runs:
        raise RuntimeError(f"runner study failed: {summary}")
    return runs * steps / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5000, help="env steps per seed")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--hiddens", type=int, nargs="+", default=[256, 64])
    ap.add_argument("--runner-runs", type=int, default=8, help="seeds of the unbatched runner study (0: skip)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # Ray workers import agents.*
    results = {}
    for hidden in args.hiddens:
        base = runner_sps(args.runner_runs, args.steps, hidden) if args.runner_runs else float("nan")
        print(f"hidden {hidden}: unbatched runner (2 workers, {args.runner_runs} seeds): {base:,.0f} steps/s",
              flush=True)
        rows, two = [], []
        for b in args.batch_sizes:
            sps = batched_sps(b, args.steps, hidden, args.device)
            rows.append((b, sps))
            print(f"hidden {hidden}: batched B={b}: {sps:,.0f} steps/s", flush=True)
        if args.runner_runs and args.device == "cpu":
            for b in args.batch_sizes:
                sps = runner_sps(2 * b, args.steps, hidden, batch_seeds=b)
                two.append((b, sps))
                print(f"hidden {hidden}: runner, 2 workers, 2 blocks of B={b}: {sps:,.0f} steps/s", flush=True)
        ceil = []
        if args.device == "cpu":
            for b in args.batch_sizes:
                sps = ceiling_sps(b, args.steps, hidden, args.device)
                ceil.append((b, sps))
                print(f"hidden {hidden}: ceiling (2 processes, hidden-layer products only) B={b}: {sps:,.0f} steps/s",
                      flush=True)
        results[hidden] = (base, rows, two, ceil)
    if args.runner_runs:
        import ray
        ray.shutdown()
    cpu = "one process, one torch thread" if args.device == "cpu" else f"device {args.device}"
    print(f"\nDQN on CartPole-v1, {args.steps} env steps per seed; aggregate env steps/s ({cpu})\n")
    print("| hidden | unbatched runner, 2 workers | batched how | " + " | ".join(f"B={b}" for b in args.batch_sizes) + " |")
    print("|---|---|---|" + "---|" * len(args.batch_sizes))
    for hidden, (base, rows, two, ceil) in results.items():
        for label, cells_of in (("one process, one thread", rows), ("runner, 2 workers, 2 blocks", two),
                                ("ceiling: 2 processes, hidden-layer products only", ceil)):
            if not cells_of:
                continue
            cells = " | ".join(f"{sps:,.0f} ({sps / base:.1f}x)" if base == base else f"{sps:,.0f}"
                               for _, sps in cells_of)
            print(f"| {hidden} | {base:,.0f} | {label} | {cells} |")


if __name__ == "__main__":
    main()
