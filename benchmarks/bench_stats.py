"""Speed of evalkit's stratified bootstrap against rliable 1.2.0 on every shape of data, in one run.

Shapes are algorithms x tasks x runs: 5x26x10 (Atari-100k-like), 7x26x100, 10x57x5 (Atari 57
games x 5 seeds), 3x5x300 and 2x1x1000 (sensitivity-study-like). Statistics, each timed for
evalkit and rliable at the same number of resamples:

* ``aggregates``: IQM, mean, median and optimality gap together (rliable: one function returning
  the four, through ``get_interval_estimates``);
* ``poi``: probability of improvement for every unordered pair of algorithms (rliable:
  ``get_interval_estimates`` with ``metrics.probability_of_improvement`` on each pair);
* ``profile``: performance profiles with percentile bands at ``--taus`` thresholds (rliable:
  ``create_performance_profile(..., reps=reps)``).

Beside evalkit's time the table prints the *index floor*: the time numpy takes only to draw as many
resample indices as evalkit uses (one (runs,) draw per task per resample per algorithm), with
``Generator.integers`` from the same stream in chunks of a few MB, as bytes up to 10 runs per task
and 16-bit integers above (``evalkit.stats.resample.draw``, the fastest bounded types numpy has for
those ranges), and evalkit's peak traced memory (``tracemalloc``: every array evalkit allocates,
the kernels' outputs included -- they are allocated in Python for that; the kernels' own scratch
buffers, a few of runs x tasks integers, are outside it). evalkit itself no longer calls numpy to draw: its
compiled kernels (``evalkit.stats.kernels.fill``) draw the same number of indices inside the kernel,
by Lemire's multiply-shift on 16-bit lanes of the bit generator's 64-bit words, which takes about
half of what ``Generator.integers`` takes per index; the floor stays numpy's drawing, as the issue
defines it. Times are CPU seconds of this process (wall seconds in brackets): on a shared machine
wall time also measures the neighbours.

rliable evaluates one Python call per resample, so its time is linear in the resamples; where
``--peer-reps`` (or ``--poi-peer-reps``) is below the table's resamples, rliable is timed on that
many and scaled, and the table says so. Agreement (a second table) is measured at ``--check-reps``:
the largest CI endpoint difference relative to rliable's CI width, three ways -- evalkit against
rliable (independent random streams); rliable against itself with a second seed (the Monte Carlo
noise floor of that criterion, for ``--noise-stats``); evalkit's kernels on rliable's own resamples
(rliable's global-generator draws replayed: any difference there is a difference of method) -- and
the largest point difference.
``--sensitivity`` adds hyperparameter_sensitivity on a 10,000-run table (2 algorithms x 50 settings x
10 envs x 10 seeds, 10,000 resamples) and the uncached tolerance_factor time.

    python benchmarks/bench_stats.py                      # everything, full resamples (slow: rliable)
    python benchmarks/bench_stats.py --reps 2000 --shapes 5x26x10 --check-reps 0
"""

from __future__ import annotations

import argparse
import itertools
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics as rlm

from evalkit import stats
from evalkit.stats import improvement, profiles, resample
from evalkit.stats.bootstrap import algorithm_rng

NAMES = ["iqm", "mean", "median", "optimality_gap"]
SHAPES = ["5x26x10", "7x26x100", "10x57x5", "3x5x300", "2x1x1000"]


def four(x: np.ndarray) -> np.ndarray:
    return np.array([rlm.aggregate_iqm(x), rlm.aggregate_mean(x), rlm.aggregate_median(x),
                     rlm.aggregate_optimality_gap(x)])


def data(shape: str) -> dict:
    algs, tasks, runs = map(int, shape.split("x"))
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 2.0, size=tasks)  # tasks differ in difficulty
    return {f"algo{i}": rng.gamma(2.0 + 0.4 * i, 0.3, size=(runs, tasks)) * scale for i in range(algs)}


def taus_for(scores: dict, k: int) -> np.ndarray:
    allv = np.concatenate([x.ravel() for x in scores.values()])
    return np.linspace(allv.min(), allv.max(), k)


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def ours(stat: str, scores: dict, reps: int, taus: np.ndarray, pairs: list, seed: int = 1):
    if stat == "aggregates":
        return stats.interval_estimates(scores, NAMES, reps=reps, seed=seed)
    if stat == "poi":
        return stats.improvement_pairs(scores, pairs, reps=reps, seed=seed)
    return {a: stats.performance_profile(x, taus, reps=reps, seed=seed + i) for i, (a, x) in enumerate(scores.items())}


def theirs(stat: str, scores: dict, reps: int, taus: np.ndarray, pairs: list, seed: int = 1):
    """rliable's estimates. Its stratified bootstraps draw their indices from numpy's *global*
    generator (``np.random.choice`` in ``update_indices``; the ``random_state`` they are given only
    seeds arch's own generator, unused here), so ``seed`` seeds that."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(seed)
        if stat == "aggregates":
            return rly.get_interval_estimates(scores, four, reps=reps, random_state=np.random.RandomState(seed))
        if stat == "poi":
            pair_dict = {f"{x},{y}": (scores[x], scores[y]) for x, y in pairs}
            return rly.get_interval_estimates(pair_dict, rlm.probability_of_improvement, reps=reps,
                                              random_state=np.random.RandomState(seed))
        return rly.create_performance_profile(scores, taus, reps=reps)


def rliable_draws(shapes: list, reps: int, seed: int = 1) -> list:
    """The run indices rliable draws (see :func:`theirs`), replayed: for each input in turn (an
    algorithm, or both sides of a PoI pair per resample), ``reps`` draws of
    ``np.random.choice(runs, (runs, tasks))``; returned as (reps, tasks, runs) arrays, evalkit's layout.
    ``shapes``: a list of groups of (runs, tasks) shapes resampled together (one group per
    ``get_interval_estimates`` key)."""
    np.random.seed(seed)
    out = []
    for group in shapes:
        draws = [[] for _ in group]
        for _ in range(reps):
            for i, (runs, tasks) in enumerate(group):
                draws[i].append(np.random.choice(runs, (runs, tasks), replace=True).T)
        out.append([np.array(d) for d in draws])
    return out


def same_draws(stat: str, scores: dict, reps: int, taus: np.ndarray, pairs: list, confidence: float = 0.95):
    """evalkit's compiled kernels on rliable's own resamples (:func:`rliable_draws`): the intervals
    (in the layout of :func:`theirs`'s) that differ from rliable's only if the method does."""
    q = [50 * (1 - confidence), 50 * (1 + confidence)]
    if stat == "aggregates":
        draws = rliable_draws([[x.shape] for x in scores.values()], reps)
        return {a: np.percentile(resample.FusedAggregates(x, tuple(NAMES)).given(d[0]), q, axis=1)
                for (a, x), d in zip(scores.items(), draws)}
    if stat == "poi":
        draws = rliable_draws([[scores[x].shape, scores[y].shape] for x, y in pairs], reps)
        return {f"{x},{y}": np.percentile(improvement.fused_replicates([scores[x], scores[y]], [(0, 1)], reps,
                                                                      idx=d)[0], q)
                for (x, y), d in zip(pairs, draws)}
    draws = rliable_draws([[x.shape] for x in scores.values()], reps)
    return {a: np.percentile(profiles.Profile(x, taus).given(d[0]), q, axis=0)
            for (a, x), d in zip(scores.items(), draws)}


def floor(stat: str, scores: dict, reps: int) -> float:
    """CPU seconds to draw the indices evalkit draws (same chunks, same integer type), nothing else."""
    c = time.process_time()
    for a, x in scores.items():
        runs, tasks = x.shape
        rng = algorithm_rng(1, a)
        step = max(1, min(10_000, resample.DRAW_BUDGET // x.size)) if stat == "aggregates" else \
            max(1, resample.CHUNK_COUNTS // x.size)
        done = 0
        while done < reps:
            n = min(step, reps - done)
            resample.draw(rng, runs, tasks, n)
            done += n
    return time.process_time() - c


def differences(stat: str, scores: dict, mine: dict, cis: dict, pairs: list) -> tuple[float, float]:
    """(max CI endpoint difference / rliable's CI width, the same in steps of 1/(runs x tasks)).

    ``mine``: intervals in :func:`theirs`'s layout. Profiles: over thresholds where rliable's band
    has a width; the steps say how far apart the endpoints are on the grid a profile lives on."""
    worst, steps = 0.0, 0.0
    for key, band in cis.items():
        band, other = np.asarray(band), np.asarray(mine[key])
        if stat == "poi":
            band, other = band.reshape(2), other.reshape(2)
        width = band[1] - band[0]
        ok = width > 0
        diff = np.abs(other - band)
        worst = max(worst, float(np.max(diff[:, ok] / width[ok])) if band.ndim == 2 else float(np.max(diff) / width))
        if stat == "profile":
            steps = max(steps, float(np.max(diff)) * scores[key].size)
    return worst, steps


def as_bands(stat: str, ours_out: dict, scores: dict, pairs: list) -> dict:
    """evalkit's intervals in rliable's layout: {key: (2, ...)}."""
    if stat == "aggregates":
        return {a: np.array([[ours_out[a][n].low for n in NAMES], [ours_out[a][n].high for n in NAMES]])
                for a in scores}
    if stat == "poi":
        return {f"{x},{y}": np.array([ours_out[x, y].low, ours_out[x, y].high]) for x, y in pairs}
    return {a: np.array([ours_out[a]["low"].to_numpy(), ours_out[a]["high"].to_numpy()]) for a in scores}


def agreement(stat: str, scores: dict, reps: int, taus: np.ndarray, pairs: list, noise: bool) -> dict:
    """CI endpoint differences relative to rliable's width at ``reps`` resamples, three ways:
    evalkit vs rliable (independent streams); rliable vs itself with another seed (the criterion's
    Monte Carlo noise floor; only if ``noise``); evalkit's kernels on rliable's own resamples (zero
    up to rounding if the method is the same). Plus the largest point difference. PoI: intervals
    of the first pair (rliable takes 5-60 ms per pair and resample), points of every pair.

    A profile is a fraction of runs x tasks scores, so its band endpoints move in steps of
    1 / (runs x tasks); the largest differences are also given in such steps.
    """
    used = pairs[:1] if stat == "poi" else pairs
    pts, cis = theirs(stat, scores, reps, taus, used, seed=1)
    row = {"ours": differences(stat, scores, as_bands(stat, ours(stat, scores, reps, taus, used), scores, used),
                               cis, used)}
    if noise:
        row["noise"] = differences(stat, scores, theirs(stat, scores, reps, taus, used, seed=2)[1], cis, used)
    row["same"] = differences(stat, scores, same_draws(stat, scores, reps, taus, used), cis, used)
    point = 0.0
    if stat == "aggregates":
        for a in scores:
            for i, name in enumerate(NAMES):
                point = max(point, abs(stats.interval_estimates({a: scores[a]}, name, reps=10)[a].point - pts[a][i]))
    elif stat == "poi":
        for x, y in pairs:  # points for every pair (cheap), intervals for the first
            point = max(point, abs(stats.probability_of_improvement(scores[x], scores[y], reps=10).point
                                   - rlm.probability_of_improvement(scores[x], scores[y])))
    else:
        for a in scores:
            point = max(point, float(np.max(np.abs(profiles.profile(scores[a], taus) - pts[a]))))
    row["point"] = point
    return row


def sensitivity_row() -> str:
    from evalkit.sensitivity import hyperparameter_sensitivity
    from evalkit.stats.tolerance import tolerance_factor
    rng = np.random.default_rng(0)
    rows = [dict(algorithm=f"alg{a}", env=f"env{e}", seed_index=s, **{"hp.lr": 10.0 ** -lr, "hp.batch": 2 ** bs},
                 score=rng.normal(0.1 * lr + 0.05 * bs + a * 0.2 + e, 1.0))
            for a in range(2) for lr in range(10) for bs in range(5) for e in range(10) for s in range(10)]
    table = pd.DataFrame(rows)
    _, cpu, wall = timed(lambda: hyperparameter_sensitivity(table, reps=10_000, seed=1))
    cases = [(n, p, g) for n in range(3, 23) for p in (0.9, 0.95) for g in (0.9, 0.95)]
    _, tcpu, _ = timed(lambda: [tolerance_factor.__wrapped__(n, p, g, 2) for n, p, g in cases])
    _, ocpu, _ = timed(lambda: [tolerance_factor.__wrapped__(n, p, g, 1) for n, p, g in cases])
    return (f"hyperparameter_sensitivity, {len(table):,} runs (2 alg x 50 settings x 10 envs x 10 seeds), 10,000 "
            f"resamples: {cpu:.2f} s CPU ({wall:.2f} s wall), target <= 10 s\n"
            f"tolerance_factor uncached: two-sided {tcpu / len(cases) * 1e3:.2f} ms, one-sided "
            f"{ocpu / len(cases) * 1e3:.3f} ms per call (mean of {len(cases)} distinct cells), target <= 1 ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", default="2000,50000", help="comma-separated resample counts")
    p.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated AxTxR shapes")
    p.add_argument("--stats", default="aggregates,poi,profile")
    p.add_argument("--peer-reps", type=int, default=0, help="time rliable on at most this many resamples and "
                   "scale (0: as many as the table)")
    p.add_argument("--poi-peer-reps", type=int, default=50, help="the same for rliable's PoI (seconds per resample)")
    p.add_argument("--check-reps", type=int, default=5000, help="resamples of the agreement check (0: skip)")
    p.add_argument("--noise-stats", default="aggregates,poi,profile", help="statistics whose agreement check also "
                   "runs rliable with a second seed (its noise floor)")
    p.add_argument("--taus", type=int, default=51)
    p.add_argument("--sensitivity", action="store_true")
    args = p.parse_args()
    reps_list = [int(r) for r in args.reps.split(",")]
    stat_list = args.stats.split(",")
    print("| shape (alg x tasks x runs) | statistic | resamples | rliable 1.2.0 CPU s (wall) | evalkit CPU s (wall) "
          "| speed-up CPU (wall) | index floor CPU s | evalkit / floor | evalkit peak memory |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    checks, peer_times = [], {}
    for shape in args.shapes.split(","):
        scores = data(shape)
        taus = taus_for(scores, args.taus)
        pairs = list(itertools.combinations(sorted(scores), 2))
        for stat in stat_list:
            theirs(stat, scores, 2, taus, pairs[:1])  # warm both up: imports, first-call set-ups
            ours(stat, scores, 20, taus, pairs)
            for reps in reps_list:
                cap = args.poi_peer_reps if stat == "poi" else args.peer_reps
                peer = min(reps, cap) if cap else reps
                if (shape, stat, peer) not in peer_times:  # a scaled row reuses a measurement at its size
                    peer_times[shape, stat, peer] = timed(lambda: theirs(stat, scores, peer, taus, pairs))[1:]
                rc, rw = (t * reps / peer for t in peer_times[shape, stat, peer])
                _, oc, ow = timed(lambda: ours(stat, scores, reps, taus, pairs))
                fl = floor(stat, scores, reps)
                mem = peak_mib(lambda: ours(stat, scores, reps, taus, pairs))
                note = "" if peer == reps else f" (timed on {peer:,}, scaled)"
                label = f"{stat} ({len(pairs)} pairs)" if stat == "poi" else \
                    f"profile ({args.taus} taus)" if stat == "profile" else "4 aggregates"
                print(f"| {shape} | {label} | {reps:,} | {rc:.2f} ({rw:.2f}){note} | {oc:.3f} ({ow:.3f}) | "
                      f"{rc / oc:.0f}x ({rw / ow:.0f}x) | {fl:.3f} | {oc / fl:.1f}x | {mem:.0f} MiB |", flush=True)
            if args.check_reps:
                checks.append((shape, stat, agreement(stat, scores, args.check_reps, taus, pairs,
                                                      stat in args.noise_stats.split(","))))
    if checks:
        print(f"\nAgreement with rliable at {args.check_reps:,} resamples: largest CI endpoint difference over "
              "every algorithm, aggregate, pair and threshold, relative to rliable's CI width (profiles: also in "
              "steps of 1/(runs x tasks)). PoI interval: first pair; points: all pairs.\n")
        print("| shape | statistic | evalkit vs rliable, independent streams | rliable vs rliable, seeds 1 and 2 "
              "(noise floor) | evalkit on rliable's resamples | max point difference |")
        print("|---|---|---:|---:|---:|---:|")
        cell = lambda stat, d, f=".3f": "" if d is None else (f"{d[0]:{f}} ({d[1]:.2f} steps)" if stat == "profile"
                                                              else f"{d[0]:{f}}")
        for shape, stat, row in checks:
            print(f"| {shape} | {stat} | {cell(stat, row['ours'])} | {cell(stat, row.get('noise'))} | "
                  f"{cell(stat, row['same'], '.1e')} | {row['point']:.1e} |")
    if args.sensitivity:
        print()
        print(sensitivity_row())


if __name__ == "__main__":
    main()
