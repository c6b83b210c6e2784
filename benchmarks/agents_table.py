"""The README's agent table from the stored runs of studies/agents_benchmark.toml.

IQM and mean of the final training return (episodes ending in the last 10% of steps) and of the
last evaluation round, over the study's seeds, with 95% stratified-bootstrap CIs; env steps per
second from each run's stored wall time (a seed-batched run stores its block's wall time divided by
the block's seeds, so for those this is the block's aggregate throughput); the public reference
beside it, keyed by agent and env id.

    evalkit run studies/agents_benchmark.toml && python benchmarks/agents_table.py
    evalkit run studies/lunarlander.toml && python benchmarks/agents_table.py studies/lunarlander.toml
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from evalkit import results, spec, stats, status

REFERENCES = {  # DESIGN.md section 8 / the targets
    ("dqn", "CartPole-v1"): "target >= 475 @100k; CleanRL 489 @500k; rl-zoo3 500 @50k (one model; SB3 at that setting, 5 seeds: final IQM 324, bench_vs_sb3.py)",
    ("dqn", "Acrobot-v1"): "target >= -100 @100k; rl-zoo3 -76.6 @100k",
    ("dqn", "MountainCar-v0"): "target eval >= -130 @200k; rl-zoo3 -100.8 @120k",
    ("ppo", "CartPole-v1"): "target >= 475 @200k; CleanRL 490 @500k",
    ("ppo", "Acrobot-v1"): "target >= -100 @200k; CleanRL -86.4 @500k",
    ("ppo", "Pendulum-v1"): "target eval >= -400 @200k",
    ("a2c", "CartPole-v1"): "target >= 400 @200k",
    ("reinforce", "CartPole-v1"): "target >= 400 @200k",
    ("dqn", "LunarLander-v3"): "target eval >= 200 within 1M (issue 21); rl-zoo3 154.4 @100k (one model, v2)",
    ("ppo", "LunarLander-v3"): "target eval >= 200 within 1M (issue 21); rl-zoo3 242.1 @1M (one model, v2)",
    ("sarsa", "MountainCar-v0"): "target >= -130 @100k (Sutton & Barto tile coding ~ -110..-130)",
}


def cell(g: pd.DataFrame, reps: int = 10_000) -> tuple[str, str]:
    """IQM and mean [95% CI] of the used runs of ``g`` (one row per planned run, from
    :meth:`evalkit.results.StudyResults.runs`); runs left out are counted with their reasons."""
    x = g.loc[g["used"], "score"].to_numpy(float)
    left = g.loc[~g["used"], "reason"].value_counts()
    note = "" if left.empty else " (" + ", ".join(f"{n} {why}" for why, n in left.items()) + " left out)"
    if len(x) < 2:
        return (f"n/a: {len(x)} of {len(g)} runs usable{note}",) * 2
    est = stats.interval_estimates({"a": x[:, None]}, ["iqm", "mean"], reps=reps, seed=0)["a"]
    fmt = lambda e: f"{e.point:.1f} [{e.low:.1f}, {e.high:.1f}]"
    return fmt(est["iqm"]) + note, fmt(est["mean"])


def main(path: str = "studies/agents_benchmark.toml", root: str = "results") -> None:
    study = spec.load_study(path)
    folder = spec.results_dir(study, root)
    res = results.load(study, folder)
    train = res.runs(metric="final:0.1", mode="train")  # one row per planned run, never dropped
    evals = res.runs(metric="final", mode="eval")
    cat = res.catalog.set_index("run_id")
    from evalkit import store
    wall = {sr.meta["run_id"]: sr.meta["wall_s"] for sr in store.scan(folder, repair=False).values()}
    batch = {r.run_id: r.batch for r in status.current_runs(study, folder)}
    print("| algorithm | env | steps | runs used / planned | final train IQM [95% CI] | final train mean "
          "| last eval IQM | last eval mean | env steps/s per process (seeds per process) | reference |")
    print("|---|---|---:|---:|---|---|---|---|---:|---|")
    for (alg, env), g in train.groupby(["algorithm", "env"]):
        env_id = study.env(env).id
        agent = study.algorithm(alg).agent
        per_process = max(batch.get(r, 1) for r in g["run_id"])
        e = evals[(evals["algorithm"] == alg) & (evals["env"] == env)]
        timed = [cat.at[r, "budget"] / wall[r] for r in g["run_id"] if wall.get(r)]
        sps = f"{np.mean(timed):,.0f}" if timed else "n/a"
        ti, tm = cell(g)
        ei, em = cell(e)
        print(f"| {alg} | {env_id} | {study.env(env).steps:,} | {int(g['used'].sum())} / {len(g)} | {ti} | {tm} "
              f"| {ei} | {em} | {sps} ({per_process}) | {REFERENCES.get((agent, env_id), '')} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
