"""Our agents side by side with Stable-Baselines3 at the same hyperparameters (issue 21).

For every row, SB3 and our agent train with rl-zoo3's hyperparameters for that env on the same
env seeds (seed ``s``: the training env is reset with ``s``; with ``n_envs`` copies, every copy gets
the seed our agent gives it, see :func:`env_seeds`), then one greedy evaluation of 10 episodes on
env seeds ``EVAL_SEED + 10 s + i`` (the same episodes for both). Per side and row:

* final training return: mean return of the training episodes that end in the last 10% of the
  budget (evalkit's ``final:0.1``), IQM over seeds with a 95% percentile-bootstrap CI;
* last greedy evaluation: mean of the 10 episodes, IQM over seeds with its CI;
* env steps/s per process (one torch thread, ``--workers`` processes in parallel);
* the difference of IQMs (ours - SB3) with its 95% bootstrap CI (seeds of each side resampled
  independently), against ``-delta`` (5% of the env's return range, stated per row): a row passes
  when the CI's lower end is above ``-delta`` for both scores; otherwise the table says whether ours
  is worse or the CI is too wide to tell, and how many seeds would settle it (:func:`verdict`).

SB3 and rl-zoo3 are a ``bench`` extra, never a runtime dependency. Runs are CPU-bound; the issue's
full size is 20 seeds per side (``--seeds 20``, hours on 2 cores). Usage:

    python benchmarks/bench_vs_sb3.py --rows dqn-cartpole ppo-cartpole --seeds 5 --workers 2
    python benchmarks/bench_vs_sb3.py --list

``--out FILE.jsonl`` appends each finished run (row, side, seed, steps, scores, wall) as one line
the moment it ends; rerunning with the same file skips the runs already there, so a long
comparison survives being stopped, and ``--table-only`` prints the table from the file.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

EVAL_SEED = 1_000_000
EVAL_EPISODES = 10


@dataclass(frozen=True)
class Row:
    """One comparison: our ``agent`` with ``ours`` and SB3's ``algo`` with ``sb3`` (rl-zoo3's keys)."""

    name: str
    env_id: str
    steps: int
    agent: str
    ours: dict
    algo: str
    sb3: dict
    return_range: tuple[float, float]  # delta = 5% of it
    n_envs: int = 1
    wrappers: str = "none"  # rl-zoo3's normalization wrappers for this row (named in the table)
    notes: str = ""
    policy_kwargs: dict = field(default_factory=dict)

    @property
    def delta(self) -> float:
        return 0.05 * (self.return_range[1] - self.return_range[0])


ZOO_DQN_CARTPOLE = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
                        target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                        exploration_final_eps=0.04)
ZOO_DQN_MOUNTAINCAR = dict(learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000, gamma=0.98,
                           target_update_interval=600, train_freq=16, gradient_steps=8, exploration_fraction=0.2,
                           exploration_final_eps=0.07)
ZOO_DQN_ACROBOT = dict(learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0, gamma=0.99,
                       target_update_interval=250, train_freq=4, gradient_steps=-1, exploration_fraction=0.12,
                       exploration_final_eps=0.1)


def _dqn_ours(zoo: dict) -> dict:
    """rl-zoo3's DQN keys in our vocabulary (``train_freq`` -> ``train_frequency``; SB3's
    ``gradient_steps=-1`` means as many gradient steps as env steps collected, i.e. ``train_freq``)."""
    out = {k: v for k, v in zoo.items() if k not in ("train_freq", "gradient_steps")}
    out["train_frequency"] = zoo["train_freq"]
    out["gradient_steps"] = zoo["train_freq"] if zoo["gradient_steps"] == -1 else zoo["gradient_steps"]
    out["hidden"] = 256
    return out


ROWS = {r.name: r for r in [
    Row("dqn-cartpole", "CartPole-v1", 50_000, "dqn", _dqn_ours(ZOO_DQN_CARTPOLE), "DQN", ZOO_DQN_CARTPOLE,
        (0.0, 500.0), policy_kwargs=dict(net_arch=[256, 256])),
    Row("ppo-cartpole", "CartPole-v1", 100_000, "ppo",
        dict(n_envs=8, n_steps=32, n_minibatches=1, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
             learning_rate=1e-3, anneal_lr=True, clip_coef=0.2, clip_vloss=False),
        "PPO", dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                    learning_rate="lin_0.001", clip_range="lin_0.2"),
        (0.0, 500.0), n_envs=8,
        notes="rl-zoo3 anneals the clip range (lin_0.2); ours keeps clip_coef 0.2 constant"),
    Row("dqn-mountaincar", "MountainCar-v0", 120_000, "dqn", _dqn_ours(ZOO_DQN_MOUNTAINCAR), "DQN", ZOO_DQN_MOUNTAINCAR,
        (-200.0, 0.0), policy_kwargs=dict(net_arch=[256, 256])),
    Row("dqn-acrobot", "Acrobot-v1", 100_000, "dqn", _dqn_ours(ZOO_DQN_ACROBOT), "DQN", ZOO_DQN_ACROBOT,
        (-500.0, 0.0), policy_kwargs=dict(net_arch=[256, 256])),
    Row("a2c-cartpole", "CartPole-v1", 500_000, "a2c", dict(n_envs=8, ent_coef=0.0), "A2C", dict(ent_coef=0.0),
        (0.0, 500.0), n_envs=8),
]}


def env_seeds(seed: int, n_envs: int) -> list[int]:
    """The env copies' reset seeds of our vectorised agents (ppo/a2c ``train``): ``seed`` for copy
    0, then draws from ``default_rng(seed)``; SB3's copies are given the same seeds."""
    rng = np.random.default_rng(seed)
    return [seed] + [int(s) for s in rng.integers(0, 2**31 - 1, size=n_envs - 1)]


def _schedule(v):
    """rl-zoo3's ``lin_X``: linear from X to 0 over the run (SB3 progress_remaining goes 1 -> 0)."""
    if isinstance(v, str) and v.startswith("lin_"):
        x = float(v[4:])
        return lambda progress: progress * x
    return v


def _final(steps_and_returns: list[tuple[int, float]], budget: int) -> float:
    """evalkit's ``final:0.1``: mean return of the training episodes ending after 90% of the budget."""
    last = [r for s, r in steps_and_returns if s > 0.9 * budget]
    return float(np.mean(last)) if last else float("nan")


def _eval_seed(seed: int) -> int:
    return EVAL_SEED + EVAL_EPISODES * seed


def run_ours(row: Row, seed: int, steps: int) -> dict:
    import torch

    from agents.common import Evaluation, ListLog
    torch.set_num_threads(1)
    mod = importlib.import_module(f"agents.{row.agent}")
    config = mod.Config(**row.ours)
    log = ListLog()
    t0 = time.perf_counter()
    mod.train(row.env_id, config, seed, steps, log,
              evaluation=Evaluation(every=steps, episodes=EVAL_EPISODES, seed=_eval_seed(seed)))
    wall = time.perf_counter() - t0
    train = [(r["step"], r["return"]) for r in log.rows if r["mode"] == "train"]
    evals = [r["return"] for r in log.rows if r["mode"] == "eval"]
    return {"final": _final(train, steps), "eval": float(np.mean(evals[-EVAL_EPISODES:])), "wall": wall}


def run_sb3(row: Row, seed: int, steps: int) -> dict:
    import gymnasium as gym
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    venv = make_vec_env(row.env_id, n_envs=row.n_envs, vec_env_cls=DummyVecEnv)
    kwargs = {k: _schedule(v) for k, v in row.sb3.items()}
    model = getattr(sb3, row.algo)("MlpPolicy", venv, seed=seed, policy_kwargs=row.policy_kwargs or None,
                                   device="cpu", verbose=0, **kwargs)
    venv._seeds = env_seeds(seed, row.n_envs)  # DummyVecEnv.seed gave seed + i; give ours (used at the first reset)
    episodes: list[tuple[int, float]] = []

    class Episodes(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    episodes.append((self.num_timesteps, float(info["episode"]["r"])))
            return True

    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Episodes())
    wall = time.perf_counter() - t0
    env = gym.make(row.env_id)
    rets = []
    for i in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=_eval_seed(seed) + i)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(int(action) if np.ndim(action) == 0 else action)
            total += float(r)
            done = term or trunc
        rets.append(total)
    env.close()
    return {"final": _final(episodes, steps), "eval": float(np.mean(rets)), "wall": wall}


def _job(args: tuple) -> tuple:
    side, name, seed, steps = args
    row = ROWS[name]
    out = (run_ours if side == "ours" else run_sb3)(row, seed, steps)
    return side, name, seed, out


def iqm_ci(x: np.ndarray, reps: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """IQM of ``x`` and its 95% percentile-bootstrap CI (evalkit's stratified bootstrap, one task).
    NaN when a run has no score (no training episode ended in the last 10%): runs are never
    dropped; the table says how many lack one."""
    if not np.isfinite(x).all() or x.size < 2:
        return (float("nan"),) * 3
    from evalkit import stats
    e = stats.interval_estimates({"a": x[:, None]}, "iqm", reps=reps, seed=seed)["a"]
    return e.point, e.low, e.high


def diff_ci(a: np.ndarray, b: np.ndarray, reps: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """IQM(a) - IQM(b) and the 95% percentile interval of IQM(a*) - IQM(b*), runs of each side
    resampled independently (Colas et al. 2019's bootstrap, with the IQM as the statistic)."""
    from evalkit.stats import aggregates
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or min(a.size, b.size) < 2:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, (reps, a.size))
    ib = rng.integers(0, b.size, (reps, b.size))
    boot = np.array([aggregates.iqm(a[i]) - aggregates.iqm(b[j]) for i, j in zip(ia, ib)])
    return aggregates.iqm(a) - aggregates.iqm(b), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def load_results(path: str) -> dict:
    """Runs recorded in a ``--out`` file: ``{(row, side, seed, steps): {"final", "eval", "wall"}}``."""
    out: dict = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    out[(r["row"], r["side"], r["seed"], r["steps"])] = {k: r[k] for k in ("final", "eval", "wall")}
    return out


def verdict(d: tuple[float, float, float], delta: float, n: int) -> str:
    """Non-inferiority of ours against SB3 from the difference's CI ``(point, low, high)``:
    ``yes`` when ``low > -delta``; ``no: worse`` when even ``high < -delta``; ``not shown`` when
    the point estimate itself is below ``-delta`` (saying whether the CI still includes 0: no
    difference shown either); otherwise inconclusive, with the seeds per side that would make the
    CI narrow enough if the point estimate held (the half-width shrinks as 1/sqrt(n))."""
    point, low, high = d
    if not np.isfinite(point):
        return "NO (runs without a score)"
    if low > -delta:
        return "yes"
    if high < -delta:
        return "no: worse by more than delta"
    if point + delta <= 0:
        return "not shown: point estimate below -delta" + ("; CI includes 0" if low < 0 < high else "")
    need = int(np.ceil(n * ((point - low) / (point + delta)) ** 2))
    return f"inconclusive (~{need} seeds per side)"


def fmt(t: tuple[float, float, float], x: np.ndarray | None = None) -> str:
    if not np.isfinite(t[0]):
        missing = "" if x is None else f": {int(np.sum(~np.isfinite(x)))} of {x.size} runs without a score"
        return f"n/a{missing}"
    return f"{t[0]:.1f} [{t[1]:.1f}, {t[2]:.1f}]"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--seeds", type=int, default=20, help="seeds per side (the issue: 20)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="override every row's budget (default: rl-zoo3's)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--list", action="store_true", help="print the rows' settings and exit")
    p.add_argument("--out", default=None, help="JSON-lines file: finished runs are appended, rerun skips them")
    p.add_argument("--table-only", action="store_true", help="print the table from --out without running")
    a = p.parse_args(argv)
    if a.list:
        for r in ROWS.values():
            print(f"{r.name}: {r.env_id} {r.steps:,} steps, n_envs {r.n_envs}, wrappers {r.wrappers}, delta {r.delta:g}"
                  f"\n  ours {r.agent} {r.ours}\n  sb3 {r.algo} {r.sb3} {r.policy_kwargs}" + (f"\n  note: {r.notes}" if r.notes else ""))
        return
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    jobs = [(side, name, s, a.steps or ROWS[name].steps) for name in a.rows for s in seeds for side in ("ours", "sb3")]
    results = load_results(a.out) if a.out else {}
    todo = [j for j in jobs if (j[1], j[0], j[2], j[3]) not in results]
    t0 = time.perf_counter()
    if todo and not a.table_only:
        print(f"# {len(jobs) - len(todo)} of {len(jobs)} runs already in {a.out}; running {len(todo)}",
              file=sys.stderr, flush=True)
        with cf.ProcessPoolExecutor(a.workers) as pool:
            for fut in cf.as_completed([pool.submit(_job, j) for j in todo]):
                side, name, s, out = fut.result()
                steps = a.steps or ROWS[name].steps
                results[(name, side, s, steps)] = out
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps({"row": name, "side": side, "seed": s, "steps": steps, **out}) + "\n")
                print(f"# {name} {side} seed {s}: final {out['final']:.1f} eval {out['eval']:.1f} "
                      f"wall {out['wall']:.1f}s", file=sys.stderr, flush=True)
    missing = [j for j in jobs if (j[1], j[0], j[2], j[3]) not in results]
    if missing:
        print(f"# {len(missing)} of {len(jobs)} runs not done yet; rows with all runs only", file=sys.stderr)
    done_rows = [n for n in a.rows if not any(j[1] == n for j in missing)]
    print(f"\n{a.seeds} seeds per side, seeds {seeds.start}..{seeds.stop - 1}, {a.workers} worker processes, "
          f"one torch thread each; wall of this invocation {time.perf_counter() - t0:.0f} s; torch {__import__('torch').__version__}, "
          f"stable-baselines3 {__import__('stable_baselines3').__version__}, {os.cpu_count()} CPUs\n")
    print("| row | env | steps | n_envs / wrappers | side | final train IQM [95% CI] | last eval IQM [95% CI] "
          "| steps/s | final diff ours-SB3 [95% CI] | eval diff ours-SB3 [95% CI] | delta | pass |")
    print("|---|---|---:|---|---|---|---|---:|---|---|---:|---|")
    for name in done_rows:
        row, steps = ROWS[name], a.steps or ROWS[name].steps
        per = {side: {s: results[(name, side, s, steps)] for s in seeds} for side in ("ours", "sb3")}
        arr = {side: {k: np.array([per[side][s][k] for s in seeds]) for k in ("final", "eval")} for side in per}
        sps = {side: np.mean([steps / per[side][s]["wall"] for s in seeds]) for side in per}
        df, de = diff_ci(arr["ours"]["final"], arr["sb3"]["final"]), diff_ci(arr["ours"]["eval"], arr["sb3"]["eval"])
        vf, ve = verdict(df, row.delta, len(seeds)), verdict(de, row.delta, len(seeds))
        ok = "yes" if vf == ve == "yes" else f"final: {vf}; eval: {ve}"
        for side in ("ours", "sb3"):
            last = side == "sb3"
            print(f"| {name} | {row.env_id} | {steps:,} | {row.n_envs} / {row.wrappers} | {side} "
                  f"| {fmt(iqm_ci(arr[side]['final']), arr[side]['final'])} "
                  f"| {fmt(iqm_ci(arr[side]['eval']), arr[side]['eval'])} | {sps[side]:,.0f} "
                  f"| {fmt(df) if last else ''} | {fmt(de) if last else ''} | {row.delta:g} "
                  f"| {ok if last else ''} |")
    for name in done_rows:
        if ROWS[name].notes:
            print(f"\n{name}: {ROWS[name].notes}")


if __name__ == "__main__":
    main()
