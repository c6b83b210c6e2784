"""Equivalence of batched and unbatched agents: TOST on final returns (issue 9).

Usage (about 10-15 minutes on 2 cores)::

    nice -n 10 python benchmarks/tost_batched.py [--steps 50000] [--runs 10] [--margin 25] [--agent dqn]
    nice -n 10 python benchmarks/tost_batched.py --agent ppo --env Acrobot-v1 --steps 200000 --margin 5

Runs ``--runs`` seeds of the unbatched agent (``agents.dqn.train``, one after another, one thread)
and ``--runs`` *different* seeds of the batched agent (``agents.dqn_batched.train_batch``, all
in one batch), so the two samples are independent runs, not the same seeds twice. The final
return of a run is the mean return of its training episodes ending in the last 10% of the
budget (the agents benchmark study's ``final:0.1``). Welch's two one-sided tests then ask
whether the mean difference (batched - unbatched) lies within ``±margin``; equivalence is
declared when both one-sided p-values are below ``--alpha`` (i.e. the 90% CI of the difference
lies inside the margin). Prints the per-seed finals, means, the CI and both p-values, and writes
them to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from agents.common import ListLog  # noqa: E402


def final_return(log: ListLog, steps: int, frac: float = 0.1) -> float:
    rows = [r for r in log.rows if r["mode"] == "train" and r["step"] > (1 - frac) * steps]
    return float(np.mean([r["return"] for r in rows])) if rows else float("nan")


def welch_tost(a: np.ndarray, b: np.ndarray, margin: float, alpha: float) -> dict:
    """TOST for mean(a) - mean(b) within (-margin, margin), Welch's t with Satterthwaite df."""
    diff = a.mean() - b.mean()
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else np.inf
    if se == 0:
        p_low = p_high = 0.0 if abs(diff) < margin else 1.0
    else:
        p_low = float(stats.t.sf((diff + margin) / se, df))  # H0: diff <= -margin
        p_high = float(stats.t.cdf((diff - margin) / se, df))  # H0: diff >= +margin
    t = stats.t.ppf(1 - alpha, df) if se > 0 else 0.0
    return {"diff": float(diff), "se": float(se), "df": float(df), "ci90": [float(diff - t * se), float(diff + t * se)],
            "p_lower": p_low, "p_upper": p_high, "p_tost": max(p_low, p_high), "margin": margin, "alpha": alpha,
            "equivalent": bool(max(p_low, p_high) < alpha)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--margin", type=float, default=25.0)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--agent", default="dqn", choices=("dqn", "ppo"))
    ap.add_argument("--config", default="{}", help="JSON hyperparameters for the agent's Config")
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--out", default="results/tost_batched.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import importlib
    unbatched = importlib.import_module(f"agents.{args.agent}")
    batched = importlib.import_module(f"agents.{args.agent}_batched")
    config = unbatched.Config(**json.loads(args.config))
    unbatched_seeds = list(range(1000, 1000 + args.runs))
    batched_seeds = list(range(2000, 2000 + args.runs))

    t0 = time.perf_counter()
    unb = []
    for s in unbatched_seeds:
        log = ListLog()
        unbatched.train(args.env, config, s, args.steps, log)
        unb.append(final_return(log, args.steps))
        print(f"unbatched seed {s}: final {unb[-1]:.1f}", flush=True)
    t_unb = time.perf_counter() - t0
    t0 = time.perf_counter()
    logs = [ListLog() for _ in batched_seeds]
    batched.train_batch(args.env, config, batched_seeds, args.steps, logs)
    bat = [final_return(log, args.steps) for log in logs]
    t_bat = time.perf_counter() - t0
    for s, f in zip(batched_seeds, bat):
        print(f"batched seed {s}: final {f:.1f}")
    a, b = np.array(bat), np.array(unb)
    res = welch_tost(a, b, args.margin, args.alpha)
    res.update({"agent": args.agent, "config": json.loads(args.config), "env": args.env, "steps": args.steps, "runs": args.runs, "batched": bat, "unbatched": unb,
                "batched_mean": float(a.mean()), "unbatched_mean": float(b.mean()),
                "batched_sd": float(a.std(ddof=1)), "unbatched_sd": float(b.std(ddof=1)),
                "wall_unbatched_s": t_unb, "wall_batched_s": t_bat})
    print(f"\n{args.env}, {args.steps} steps, {args.runs} + {args.runs} independent seeds, final = mean return "
          f"of training episodes in the last 10%")
    print(f"| | mean | sd |\n|---|---|---|\n| batched | {a.mean():.1f} | {a.std(ddof=1):.1f} |\n"
          f"| unbatched | {b.mean():.1f} | {b.std(ddof=1):.1f} |")
    print(f"difference {res['diff']:+.1f}, 90% CI [{res['ci90'][0]:+.1f}, {res['ci90'][1]:+.1f}], margin ±{args.margin}, "
          f"TOST p = {res['p_tost']:.4f} (lower {res['p_lower']:.4f}, upper {res['p_upper']:.4f}): "
          f"{'EQUIVALENT' if res['equivalent'] else 'not shown equivalent'} at alpha {args.alpha}")
    print(f"wall: unbatched {t_unb:.0f} s (sequential), batched {t_bat:.0f} s")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
