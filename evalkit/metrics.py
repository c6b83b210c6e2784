"""Per-run scalars from the episode table (DESIGN.md section 5).

* ``auc``: mean of all episodic returns of the run (Adkins et al. 2024).
* ``auc_steps``: step-weighted mean return, i.e. the area under the learning curve per step
  (Patterson et al. 2024): each episode's return weighted by its length.
* ``final``: mean return of the episodes ending in the last ``fraction`` of the step budget;
  when none ends there, the last finished episode (``fallback`` is then true for that run).

For evaluation rows (``mode="eval"``), ``final`` is the mean of the last evaluation round.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from evalkit.errors import EvalkitError

RUN_KEYS = ["run_id", "algorithm", "agent", "env", "phase", "seed_index", "seed", "setting"]


def _score_one(returns: np.ndarray, lengths: np.ndarray, steps: np.ndarray, budget: int, metric: str,
               fraction: float, mode: str) -> tuple[float, bool]:
    if len(returns) == 0:
        return math.nan, False
    if metric == "auc":
        return float(np.mean(returns)), False
    if metric == "auc_steps":
        return float(np.sum(returns * lengths) / max(1, np.sum(lengths))), False
    if mode == "eval":
        last = steps == steps.max()
        return float(np.mean(returns[last])), False
    tail = steps > budget * (1.0 - fraction)
    if tail.any():
        return float(np.mean(returns[tail])), False
    return float(returns[np.argmax(steps)]), True


def run_scores(table: pd.DataFrame, metric: str = "auc", mode: str = "train") -> pd.DataFrame:
    """One row per run: identity columns, ``hp.*``, ``score``, ``diverged``, ``n_episodes``, ``fallback``.

    ``metric`` is ``auc``, ``auc_steps``, ``final`` or ``final:<fraction>``; ``mode`` picks training
    or evaluation episodes. A run is ``diverged`` when any of its returns or logged extras (loss...)
    is NaN or infinite; its score is then NaN. Runs without an episode of that mode score NaN.
    """
    name, _, frac = metric.partition(":")
    if name not in ("auc", "auc_steps", "final") or (frac and name != "final"):
        raise EvalkitError(f"metric: expected auc, auc_steps, final or final:<fraction>, found {metric!r}")
    fraction = float(frac) if frac else 0.1
    if mode not in ("train", "eval"):
        raise EvalkitError(f"mode: expected 'train' or 'eval', found {mode!r}")
    hp_cols = [c for c in table.columns if c.startswith("hp.")]
    extra_cols = [c for c in table.columns if c not in RUN_KEYS + hp_cols + ["budget", "mode", "step", "episode",
                                                                             "return", "length", "label"]]
    rows = []
    for run_id, g in table.groupby("run_id", sort=True):
        first = g.iloc[0]
        diverged = _diverged(g, extra_cols)
        sel = g[g["mode"] == mode]
        score, fallback = _score_one(sel["return"].to_numpy(float), sel["length"].to_numpy(float),
                                     sel["step"].to_numpy(float), int(first.get("budget", 0) or 0), name,
                                     fraction, mode)
        if diverged:
            score = math.nan
        row = {k: first[k] for k in RUN_KEYS if k in g.columns}
        row.update({c: first[c] for c in hp_cols})
        row.update(score=score, diverged=diverged, n_episodes=len(sel), fallback=fallback)
        rows.append(row)
    out = pd.DataFrame(rows, columns=RUN_KEYS + hp_cols + ["score", "diverged", "n_episodes", "fallback"])
    out["label"] = labels(out)
    return out


def _diverged(run: pd.DataFrame, extra_cols: list[str]) -> bool:
    """NaN/inf in any return, inf in any logged extra, or NaN in an extra after it had been finite.

    An extra that is missing (NaN) before its first value (e.g. a loss before learning starts)
    is not divergence; a loss that turns NaN is.
    """
    if not np.isfinite(run["return"].to_numpy(float)).all():
        return True
    train = run[run["mode"] == "train"].sort_values(["step", "episode"], kind="stable")  # extras: training rows
    for c in extra_cols:
        v = pd.to_numeric(train[c], errors="coerce").to_numpy(float)
        if np.isinf(v).any():
            return True
        finite = np.isfinite(v)
        if finite.any() and not finite[int(np.argmax(finite)):].all():
            return True
    return False


def labels(runs: pd.DataFrame) -> pd.Series:
    """Display label per run: the algorithm name, plus the values of the hyperparameters it sweeps
    (``dqn[lr=0.001, eps=0.2]``) when it has several settings in one env and phase
    (:func:`evalkit.labels.run_labels`)."""
    from evalkit.labels import run_labels
    return run_labels(runs)


def labels_by_run(table: pd.DataFrame) -> pd.Series:
    """``run_id -> label`` for the runs of a long episode table: its ``label`` column when it has one
    (e.g. a comparison's ``sarsa [best per env]``), else :func:`labels` of one row per run."""
    if "label" in table.columns:
        first = table.drop_duplicates("run_id")
        return pd.Series(first["label"].astype(str).to_numpy(), index=first["run_id"].to_numpy())
    cols = [c for c in ["run_id", "algorithm", "phase", "env", "setting"] if c in table.columns]
    runs = table.drop_duplicates("run_id")[cols + [c for c in table.columns if c.startswith("hp.")]]
    return pd.Series(labels(runs.reset_index(drop=True)).to_numpy(), index=runs["run_id"].to_numpy())


def score_matrices(runs: pd.DataFrame, by: str = "label", drop_diverged: bool = False
                   ) -> tuple[dict[str, np.ndarray], list[str]]:
    """rliable-shaped ``{algorithm: (runs, tasks)}`` score matrices and the task (env) order.

    Rows of a matrix are seed indices (common random numbers: row i is seed i in every env).
    Raises when an algorithm lacks an env or envs have unequal run counts.
    """
    if runs.empty:
        raise EvalkitError("no completed runs to score")
    envs = sorted(runs["env"].unique())
    out = {}
    for name, g in runs.groupby(by, sort=True):
        if drop_diverged:
            g = g[~g["diverged"]]
        pivot = g.pivot_table(index="seed_index", columns="env", values="score", aggfunc="first", dropna=False)
        missing = [e for e in envs if e not in pivot.columns]
        if missing:
            raise EvalkitError(f"{name}: no completed runs in env(s) {', '.join(missing)}")
        pivot = pivot[envs]
        if pivot.isna().any().any() and not drop_diverged:
            counts = g.groupby("env").size()
            if counts.nunique() > 1:
                raise EvalkitError(f"{name}: unequal numbers of runs per env ({dict(counts)}); "
                                   f"finish the study or compare per env")
        out[str(name)] = pivot.to_numpy(dtype=float)
    return out, envs


CURVE_COLUMNS = ["run_id", "algorithm", "label", "env", "phase", "seed_index", "step", "value", "fresh"]


def learning_curves(table: pd.DataFrame, points: int = 50, mode: str = "train") -> pd.DataFrame:
    """Per-run learning curves on a common step grid (DESIGN.md section 5), one row per run and grid point.

    The rule, as in openrlbenchmark and rliable's sample-efficiency curves (Agarwal et al. 2021):
    put every run on one step grid first, aggregate over runs second, so that every grid point keeps
    every run. Per env the grid splits ``[0, largest budget]`` into ``points`` equal windows; grid
    point ``step`` is a window's right edge, in env steps. A run's ``value`` there is

    * the mean return of the run's episodes ending in that window (``fresh`` is True);
    * where no episode of the run ends in the window, the run's last window value carried forward
      (its last finished episodes; ``fresh`` False): agents stepping vector envs in lockstep end
      episodes in bursts, and a long episode can span several windows, and neither may break a
      curve or shrink its n;
    * NaN before the run's first finished episode (the run enters the curve then);
    * NaN at grid points past the run's own budget (never extrapolated).

    So the number of runs with a value is constant from the point where every run has finished its
    first episode (until a shorter run's budget ends). Statistics of change over time (reliability
    metrics) must use the ``fresh`` points only. Runs without an episode of ``mode`` do not appear
    (they are ``no-episode`` runs; see :func:`missing_episode_runs`). Evaluation rows (``mode="eval"``)
    are gridded the same way.

    ``table``: the long episode table (run_id, algorithm, env, phase, seed_index, mode, step,
    return, optional budget, setting and hp.*). Returns columns run_id, algorithm, label, env,
    phase, seed_index, step (float, env steps), value (float), fresh (bool), sorted by run and step.
    """
    if points < 1:
        raise EvalkitError(f"points: expected an integer >= 1, found {points}")
    sel = table[table["mode"] == mode]
    if sel.empty:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("step", "value") else bool if c == "fresh"
                                          else object) for c in CURVE_COLUMNS})
    names = labels_by_run(table)
    frames = []
    for env, g in sel.groupby("env", sort=True):
        budget_of = (g.groupby("run_id")["budget"].max() if "budget" in g else g.groupby("run_id")["step"].max())
        budget_of = budget_of.astype(float)
        edges = np.linspace(0.0, float(budget_of.max()), points + 1)
        # an episode ending exactly on an edge belongs to the window that edge closes
        window = np.clip(np.searchsorted(edges, g["step"].to_numpy(float), side="left") - 1, 0, points - 1)
        means = (g.assign(window=window).groupby(["run_id", "window"])["return"].mean()
                 .unstack("window").reindex(columns=range(points)))
        fresh = means.notna().to_numpy()
        values = means.ffill(axis=1).to_numpy(float)
        beyond = edges[1:][None, :] > budget_of.reindex(means.index).to_numpy(float)[:, None] + 1e-9
        values[beyond] = np.nan
        fresh &= ~beyond
        ident = g.drop_duplicates("run_id").set_index("run_id").loc[means.index]
        n_runs = len(means.index)
        frames.append(pd.DataFrame({
            "run_id": np.repeat(means.index.to_numpy(), points),
            "algorithm": np.repeat(ident["algorithm"].to_numpy(), points),
            "label": np.repeat(names.reindex(means.index).to_numpy(), points),
            "env": env,
            "phase": np.repeat(ident["phase"].to_numpy(), points),
            "seed_index": np.repeat(ident["seed_index"].to_numpy(), points),
            "step": np.tile(edges[1:], n_runs),
            "value": values.ravel(),
            "fresh": fresh.ravel(),
        }))
    return pd.concat(frames, ignore_index=True)[CURVE_COLUMNS]


def missing_episode_runs(table: pd.DataFrame, mode: str = "train", catalog: pd.DataFrame | None = None) -> list[str]:
    """Run ids with no episode of ``mode``: the ``no-episode`` runs a curve of that mode leaves out.

    Without ``catalog`` only runs with some row in ``table`` (e.g. evaluation rows but no training
    episode) can be seen; with the run catalog (one row per planned run, ``status`` column) every
    stored (done) run without such an episode is found.
    """
    have = set(table.loc[table["mode"] == mode, "run_id"]) if len(table) else set()
    if catalog is not None and len(catalog):
        done = catalog[catalog["status"] == "done"] if "status" in catalog else catalog
        known = set(done["run_id"])
    else:
        known = set(table["run_id"]) if len(table) else set()
    return sorted(known - have)
