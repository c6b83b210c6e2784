"""Paper figures from the long table (DESIGN.md section 7): each a function returning a matplotlib Figure.

Every figure is built on :class:`matplotlib.figure.Figure` directly (no pyplot, no global state),
in a small paper style (8 pt fonts, single column 3.5 in or double column 7 in wide), with one
colour per algorithm label for the whole study (:func:`palette`, seaborn's colour-blind-safe
"colorblind" palette). The data drawn is attached to the figure as ``fig.evalkit_data`` (a
DataFrame or dict) so tests and users can check what a figure shows; the number of runs behind
every line, band and interval is in its legend or axis label.

* :func:`learning_curves` -- return against env steps, mean or IQM over runs with a bootstrap band.
* :func:`normalized_curves` -- IQM of normalized scores across envs against the fraction of budget.
* :func:`aggregate_intervals` -- median, IQM, mean and optimality gap with stratified-bootstrap CIs
  (Agarwal et al. 2021).
* :func:`improvement` -- probability of improvement P(X > Y) per pair with CIs.
* :func:`performance_profiles` -- fraction of runs above tau, with bootstrap bands.
* :func:`score_distributions` -- per-env run scores with the 95% CI of the mean and a (0.9, 0.95)
  tolerance interval side by side, and the +-1 standard error bar that is neither.
* :func:`sensitivity_curves`, :func:`sensitivity_plane` -- Adkins et al. (2024).
* :func:`expected_max` -- expected maximum performance against tuning budget (Dodge et al. 2019).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, MaxNLocator

from scipy import stats as sps

from evalkit import labels as labels_mod
from evalkit import metrics, stats

WIDTHS = {"single": 3.5, "double": 7.0}  # inches: one column / full width of a two-column paper
DPI = 300            # PNG resolution
MAX_HEIGHT = 12.5    # inches: with margins and tight bounding boxes no side passes 4,000 px at 300 dpi
MAX_PAIRS = 24       # more pairs than this: probability of improvement of the best against each other
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
         "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
         "grid.alpha": 0.3, "grid.linewidth": 0.5, "lines.linewidth": 1.2, "pdf.fonttype": 42,
         "svg.fonttype": "none", "savefig.bbox": "tight", "savefig.pad_inches": 0.02, "figure.dpi": 100}
AGGREGATE_TITLES = {"median": "Median", "iqm": "IQM", "mean": "Mean", "optimality_gap": "Optimality gap"}


@contextlib.contextmanager
def style():
    """The paper style, applied while a figure is built (rc parameters are read at artist creation)."""
    with mpl.rc_context(STYLE):
        yield


def algorithm_of(label: str) -> str:
    """The algorithm part of a label (``dqn[lr=0.001]`` -> ``dqn``)."""
    return str(label).partition("[")[0].strip()


def palette(labels: Iterable[str]) -> dict[str, tuple]:
    """One colour per algorithm, stable across every figure of a study: seaborn's colour-blind
    palette over the sorted algorithm names (10 colours; beyond that colours repeat and line styles
    tell them apart). Labels of one algorithm's settings (``dqn[lr=0.001]``) share its colour."""
    names = sorted(set(map(str, labels)))
    algs = sorted({algorithm_of(n) for n in names})
    colors = sns.color_palette("colorblind", 10)
    return {name: colors[algs.index(algorithm_of(name)) % 10] for name in names}


def linestyle(i: int) -> str:
    return ("-", "--", ":", "-.")[(i // 10) % 4]


def style_of(label: str, labels: Iterable[str]) -> str:
    """Line style of ``label`` among ``labels``: settings of one algorithm (same colour) and
    algorithms past the tenth colour are told apart by dashes."""
    names = labels_mod.ordered(labels)
    algs = sorted({algorithm_of(n) for n in names})
    same = [n for n in names if algorithm_of(n) == algorithm_of(label)]
    k = same.index(str(label)) + algs.index(algorithm_of(label)) // 10
    return ("-", "--", ":", "-.")[k % 4]


def _colors(labels: Iterable[str], colors: Mapping[str, tuple] | None) -> dict[str, tuple]:
    labels = sorted(set(map(str, labels)))
    if colors is None:
        return palette(labels)
    out = dict(colors)
    by_alg = {algorithm_of(k): v for k, v in colors.items() if "[" not in str(k)}
    missing = [name for name in labels if name not in out and algorithm_of(name) not in by_alg]
    extra = palette(list(colors) + missing) if missing else {}
    for name in labels:
        if name not in out:
            out[name] = by_alg.get(algorithm_of(name)) or extra[name]
    return out


def _grid(n_panels: int, size: str, panel_height: float = 2.0, max_cols: int | None = None
          ) -> tuple[Figure, np.ndarray]:
    if size not in WIDTHS:
        raise ValueError(f"size: expected one of {sorted(WIDTHS)}, found {size!r}")
    cols = max(1, min(n_panels, max_cols or (2 if size == "single" else 3)))
    rows = int(np.ceil(n_panels / cols))
    panel_height = min(panel_height, (MAX_HEIGHT - 0.3) / rows)  # bounded, however many panels or bars
    fig = Figure(figsize=(WIDTHS[size], panel_height * rows + 0.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _line_band(ax, x, g: pd.DataFrame, color, label: str, **line) -> None:
    """A line through ``g["point"]`` and a translucent band from ``g["low"]`` to ``g["high"]``."""
    ax.plot(x, g["point"], color=color, label=label, **line)
    ax.fill_between(x, g["low"], g["high"], color=color, alpha=0.2, lw=0)


def _legend(fig: Figure, names: Sequence[str], cmap: Mapping[str, tuple], marker: str | None = None) -> None:
    """One legend below all panels (the same algorithms in every panel; per-panel counts go in the
    panel titles), instead of a legend repeated in, and covering, every panel."""
    handles = [Line2D([], [], color=cmap[n], ls=style_of(n, names), marker=marker, ms=2.5, label=n) for n in names]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(names), 4), frameon=False)


def _n_text(ns: Sequence[int]) -> str:
    lo, hi = int(min(ns)), int(max(ns))
    return f"n={hi}" if lo == hi else f"n={lo}-{hi}"


# ---------------------------------------------------------------------------------------------
# learning curves
# ---------------------------------------------------------------------------------------------

def _grid_band(x: np.ndarray, aggregate: str, reps: int, confidence: float, rng: np.random.Generator,
               chunk: int = 20_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point, low, high per column of ``x`` (runs, grid points; NaN where a run has no value yet):
    the ``aggregate`` over the column's runs and its percentile bootstrap interval over runs.

    Columns where every run has a value share one resample of runs (the runs are redrawn as whole
    curves, as rliable's sample-efficiency curves do); columns where runs are still missing (before
    every run's first episode, or past a shorter run's budget) are bootstrapped over their own runs.
    """
    fn = (lambda v, axis: sps.trim_mean(v, 0.25, axis=axis)) if aggregate == "iqm" else np.mean
    alpha = 100 * (1 - confidence) / 2
    points = x.shape[1]
    point, low, high = (np.full(points, np.nan) for _ in range(3))
    finite = np.isfinite(x)
    groups: dict[bytes, list[int]] = {}
    for j in range(points):
        if finite[:, j].any():
            groups.setdefault(finite[:, j].tobytes(), []).append(j)
    for cols in groups.values():
        v = x[finite[:, cols[0]]][:, cols]  # (runs present, columns)
        n = v.shape[0]
        point[cols] = fn(v, axis=0)
        if n < 2:
            low[cols] = high[cols] = point[cols]
            continue
        boot = []
        step = max(1, chunk // max(1, n * len(cols)))
        for done in range(0, reps, step):
            idx = rng.integers(0, n, size=(min(step, reps - done), n))
            boot.append(fn(v[idx], axis=1))  # (resamples, columns)
        boot = np.concatenate(boot)
        low[cols], high[cols] = np.percentile(boot, [alpha, 100 - alpha], axis=0)
    return point, low, high


def curve_table(table: pd.DataFrame, mode: str = "train", aggregate: str = "mean", points: int = 50,
                reps: int = 2_000, confidence: float = 0.95, min_runs: int = 3, seed: int = 0,
                catalog: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (label, env, step): ``n`` runs with a value, ``fresh`` runs with an episode ending in the
    window, the ``aggregate`` ("mean" or "iqm") over runs and its percentile bootstrap interval.

    Runs are first put on the common step grid of :func:`evalkit.metrics.learning_curves` (window
    mean, carried forward from the run's last finished episode, never past its budget), then
    aggregated over runs. A point is drawn (``drawn``) where at least ``min(min_runs, runs of the
    label in the env)`` runs have a value, so a curve starts once enough runs finished an episode
    and has no holes after. ``runs`` is the label's runs in the env; ``no_episode`` the runs left
    out because they finished no episode of ``mode`` (counted from ``catalog`` when given).
    Returns columns label, env, step, n, fresh, runs, no_episode, point, low, high, drawn.
    """
    if aggregate not in ("mean", "iqm"):
        raise ValueError(f"aggregate: expected 'mean' or 'iqm', found {aggregate!r}")
    curves = metrics.learning_curves(table, points=points, mode=mode)
    missing = _no_episode_counts(table, mode, catalog)
    rows = []
    keys = curves[["label", "env"]].drop_duplicates()
    streams = iter(np.random.SeedSequence(seed).spawn(max(1, len(keys))))
    for (label, env), g in curves.groupby(["label", "env"], sort=False):
        wide = g.pivot(index="run_id", columns="step", values="value")
        fresh = g.pivot(index="run_id", columns="step", values="fresh").sum(axis=0).to_numpy(int)
        x = wide.to_numpy(float)
        point, low, high = _grid_band(x, aggregate, reps, confidence, np.random.default_rng(next(streams)))
        n = np.isfinite(x).sum(axis=0)
        need = max(1, min(min_runs, x.shape[0]))
        rows.append(pd.DataFrame({"label": label, "env": env, "step": wide.columns.to_numpy(float), "n": n,
                                  "fresh": fresh, "runs": x.shape[0], "no_episode": missing.get((label, env), 0),
                                  "point": point, "low": low, "high": high, "drawn": n >= need}))
    columns = ["label", "env", "step", "n", "fresh", "runs", "no_episode", "point", "low", "high", "drawn"]
    if not rows:
        return pd.DataFrame(columns=columns)
    out = pd.concat(rows, ignore_index=True)[columns]
    order = {lab: i for i, lab in enumerate(labels_mod.ordered(out["label"]))}
    return out.sort_values(["env", "label", "step"], key=lambda s: s.map(order) if s.name == "label" else s,
                           kind="stable").reset_index(drop=True)


def _no_episode_counts(table: pd.DataFrame, mode: str, catalog: pd.DataFrame | None) -> dict:
    """``{(label, env): runs without an episode of mode}`` (see :func:`evalkit.metrics.missing_episode_runs`)."""
    ids = metrics.missing_episode_runs(table, mode, catalog)
    if not ids:
        return {}
    source = catalog if catalog is not None and len(catalog) else table
    runs = source[source["run_id"].isin(ids)].drop_duplicates("run_id")
    if "label" not in runs.columns:
        runs = runs.assign(label=metrics.labels(runs.reset_index(drop=True)).to_numpy())
    return runs.groupby(["label", "env"]).size().to_dict()


def _n_label(g: pd.DataFrame) -> str:
    """``n=5`` when every drawn point has all runs; else ``n=2-5, all 5 from 12k steps`` (runs enter at
    their first finished episode), plus the no-episode runs left out."""
    d = g[g["drawn"]]
    total = int(g["runs"].iloc[0])
    text = _n_text(d["n"]) if len(d) else "n=0"
    if len(d) and d["n"].min() < total and (d["n"] == total).any():
        first = float(d.loc[d["n"] == total, "step"].iloc[0])
        text += f", all {total} from {EngFormatter(sep='')(first)} steps"
    if int(g["no_episode"].iloc[0]):
        text += f"; {int(g['no_episode'].iloc[0])} no-episode excluded"
    return text


def _panel_n(d: pd.DataFrame) -> str | None:
    """One count line for a panel whose curves all have the same runs: ``n=10 per curve``, or ``n=10
    per curve from 1.2k steps`` when runs enter at their first episodes (fewer before), plus the
    no-episode runs excluded; None when the curves differ (each legend entry then says its own)."""
    per = d.groupby("label").agg(total=("runs", "first"), none=("no_episode", "first"))
    if per["total"].nunique() > 1 or per["none"].nunique() > 1:
        return None
    total, none = int(per["total"].iloc[0]), int(per["none"].iloc[0])
    drawn = d[d["drawn"]]
    text = f"n={total} per curve"
    if (drawn["n"] < total).any():
        full = drawn[drawn["n"] == total].groupby("label")["step"].min()
        later = drawn.merge(full.rename("first"), left_on="label", right_index=True, how="left")
        if len(full) < per.shape[0] or (later["step"] >= later["first"]).ne(later["n"] == total).any():
            return None  # runs also leave (a shorter budget): the legend gives each curve's range
        text += f" from {EngFormatter(sep='')(float(full.max()))} steps"
    return text + (f"; {none} no-episode run{'s' if none > 1 else ''} excluded each" if none else "")


def learning_curves(table: pd.DataFrame, mode: str = "train", aggregate: str = "mean", points: int = 50,
                    reps: int = 2_000, confidence: float = 0.95, min_runs: int = 3, seed: int = 0,
                    colors: Mapping[str, tuple] | None = None, size: str = "double",
                    catalog: pd.DataFrame | None = None) -> Figure:
    """Learning curves, one panel per env: ``aggregate`` over runs of each run's value on the common
    step grid (:func:`curve_table`), with a ``confidence`` percentile bootstrap band over runs.

    ``mode``: "train" (training episodes) or "eval" (evaluation rounds). The legend gives the runs
    per curve (and where runs enter, the step from which all are in) and the runs excluded as
    ``no-episode``; the caption states the grid rule. ``fig.evalkit_data`` is the :func:`curve_table`.
    """
    data = curve_table(table, mode, aggregate, points, reps, confidence, min_runs, seed, catalog)
    if data.empty:
        raise ValueError(f"learning_curves: no {mode} episodes in the table")
    excluded = data.drop_duplicates(["label", "env"])
    excluded = excluded[excluded["no_episode"] > 0]
    if len(excluded):
        where = ", ".join(f"{r.no_episode} of {r.label} in {r.env}" for r in excluded.itertuples())
        warnings.warn(f"learning curves exclude runs without a {mode} episode (no-episode): {where}", stacklevel=2)
    envs = sorted(data["env"].unique())
    cmap = _colors(data["label"], colors)
    order = labels_mod.ordered(cmap)
    what = "IQM" if aggregate == "iqm" else "mean"
    with style():
        fig, axes = _grid(len(envs), size)
        for ax, env in zip(axes, envs):
            d = data[data["env"] == env]
            for label in labels_mod.ordered(d["label"]):
                g = d[d["label"] == label]
                shown = g[g["drawn"]]
                _line_band(ax, shown["step"], shown, cmap[label], f"{label} ({_n_label(g)})",
                           ls=style_of(label, order), marker="o" if len(shown) <= 15 else None, ms=2.5)
            counts = _panel_n(d) if len(envs) > 1 else None
            ax.set_title(f"{env}\n{counts}" if counts else env)
            ax.set_xlabel("environment steps")
            ax.set_ylabel(f"{what} {'evaluation' if mode == 'eval' else 'training'} return")
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 10k, 1M: env steps
            if counts is None:
                ax.legend(frameon=False, loc="best", fontsize=6)
        if len(envs) > 1:
            _legend(fig, labels_mod.ordered(data["label"]), cmap)
        fig.suptitle(f"{what} {mode} return over runs, {confidence:.0%} bootstrap bands; runs on a common step grid",
                     fontsize=8)
    fig.evalkit_data = data
    return fig


def normalized_curve_table(table: pd.DataFrame, references: Mapping[str, tuple[float, float]], mode: str = "train",
                           points: int = 50, reps: int = 2_000, confidence: float = 0.95, seed: int = 0
                           ) -> pd.DataFrame:
    """IQM across runs and envs of min-max normalized curve values, per label and grid point.

    ``references[env] = (low, high)``: score 0 and 1 of each env. The grid is the fraction of each
    env's budget (envs may have different budgets); at each point the (runs, envs) matrix of
    normalized values gets a stratified-bootstrap interval of the IQM (Agarwal et al. 2021); a seed
    without a value in some env at that point is left out of it, and ``n`` is the number of seeds
    the interval actually used (never more).
    """
    curves = metrics.learning_curves(table, points=points, mode=mode)
    missing = sorted(set(curves["env"]) - set(references))
    if missing:
        raise ValueError(f"references: no (low, high) for env(s) {', '.join(missing)}")
    curves = curves.copy()
    low = curves["env"].map(lambda e: references[e][0]).astype(float)
    high = curves["env"].map(lambda e: references[e][1]).astype(float)
    curves["norm"] = (curves["value"] - low) / (high - low)
    curves["fraction"] = curves.groupby("env")["step"].rank(method="dense") / points
    rows = []
    for i, ((label, frac), g) in enumerate(curves.groupby(["label", "fraction"], sort=True)):
        wide = g.pivot_table(index="seed_index", columns="env", values="norm", aggfunc="first", dropna=False)
        full = wide.shape[1] == curves["env"].nunique()
        m = wide.to_numpy(float)
        complete = np.isfinite(m).all(axis=1)  # the (runs, envs) rows the bootstrap uses
        row = {"label": label, "fraction": float(frac), "n": int(complete.sum()) if full else 0,
               "envs": int(wide.shape[1]), "point": np.nan, "low": np.nan, "high": np.nan}
        if row["n"] >= 2:
            m = m[complete]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = stats.interval_estimates({"a": m}, "iqm", reps=reps, confidence=confidence, seed=seed + i,
                                               nan_policy="omit")["a"]
            row.update(point=est.point, low=est.low, high=est.high)
        rows.append(row)
    return pd.DataFrame(rows, columns=["label", "fraction", "n", "envs", "point", "low", "high"])


def normalized_curves(table: pd.DataFrame, references: Mapping[str, tuple[float, float]], mode: str = "train",
                      points: int = 50, reps: int = 2_000, confidence: float = 0.95, seed: int = 0,
                      colors: Mapping[str, tuple] | None = None, size: str = "single") -> Figure:
    """Aggregate sample-efficiency curves: IQM of normalized scores across envs and runs against the
    fraction of the budget, with stratified-bootstrap bands (``fig.evalkit_data``: the table)."""
    data = normalized_curve_table(table, references, mode, points, reps, confidence, seed)
    cmap = _colors(data["label"], colors)
    with style():
        fig, (ax,) = _grid(1, size, panel_height=2.4, max_cols=1)
        for label in labels_mod.ordered(data["label"]):
            g = data[data["label"] == label]
            # as the per-env curves: drawn once min(3, all) runs in every env have finished an episode
            g = g[g["n"] >= max(1, min(3, int(g["n"].max())))]
            full = g.loc[g["n"] == g["n"].max(), "fraction"]
            entry = f", all from {100 * full.min():.0f}%" if len(full) and g["n"].min() < g["n"].max() else ""
            _line_band(ax, 100 * g["fraction"], g, cmap[label],
                       f"{label} ({_n_text(g['n'])} runs x {int(g['envs'].max())} env"
                       f"{'s' if g['envs'].max() > 1 else ''}{entry})",
                       ls=style_of(label, cmap))
        ax.set_xlabel("% of the step budget")
        ax.set_ylabel("IQM normalized score")
        ax.set_title(f"IQM of min-max normalized returns, {confidence:.0%} CIs")
        ax.legend(frameon=False, loc="best")
    fig.evalkit_data = data
    return fig


# ---------------------------------------------------------------------------------------------
# aggregates across envs (rliable style)
# ---------------------------------------------------------------------------------------------

def aggregate_intervals(scores: Mapping[str, np.ndarray],
                        aggregates: Sequence[str] = ("median", "iqm", "mean", "optimality_gap"),
                        reps: int = 2_000, confidence: float = 0.95, seed: int = 0,
                        colors: Mapping[str, tuple] | None = None, xlabel: str = "normalized score",
                        size: str = "double") -> Figure:
    """Point estimates and stratified-bootstrap CIs of each aggregate, one panel per aggregate.

    ``scores``: ``{label: (runs, envs)}`` normalized scores. ``fig.evalkit_data``: long table
    label, aggregate, point, low, high, n, envs.
    """
    est = stats.interval_estimates(scores, list(aggregates), reps=reps, confidence=confidence, seed=seed)
    labels = sorted(est)
    data = pd.DataFrame([{"label": lab, "aggregate": a, "point": e.point, "low": e.low, "high": e.high,
                          "n": e.n, "envs": np.asarray(scores[lab]).shape[1]}
                         for lab in labels for a, e in est[lab].items()])
    cmap = _colors(labels, colors)
    with style():
        fig, axes = _grid(len(aggregates), size, panel_height=0.35 * len(labels) + 0.8, max_cols=len(aggregates))
        for ax, a in zip(axes, aggregates):
            d = data[data["aggregate"] == a].set_index("label").loc[labels]
            for y, (label, r) in enumerate(d.iterrows()):
                ax.barh(y, r["high"] - r["low"], left=r["low"], height=0.6, color=cmap[label], alpha=0.75)
                ax.vlines(r["point"], y - 0.3, y + 0.3, color="k", lw=1.2)
            ax.set_yticks(range(len(labels)), [f"{lab} (n={int(d.loc[lab, 'n'])})" for lab in labels]
                          if a == aggregates[0] else [])
            ax.set_title(AGGREGATE_TITLES.get(a, a))
            ax.set_xlabel(xlabel)
            ax.grid(axis="y", visible=False)
            ax.invert_yaxis()
        n_envs = int(data["envs"].max())
        fig.suptitle(f"{confidence:.0%} stratified-bootstrap CIs over runs and {n_envs} env{'s' if n_envs > 1 else ''} "
                     f"({reps} resamples)", fontsize=8)
    fig.evalkit_data = data
    return fig


def improvement(scores: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]] | None = None,
                reps: int = 2_000, confidence: float = 0.95, seed: int = 0,
                colors: Mapping[str, tuple] | None = None, size: str = "single") -> Figure:
    """Probability of improvement P(X > Y) per pair, averaged over envs, with stratified-bootstrap CIs.

    ``pairs`` defaults to every ordered pair (X, Y) with X before Y in sorted order.
    """
    labels = sorted(scores)
    if pairs is None:  # better (higher mean score) first, so bars read as "how sure is the lead"
        ranked = sorted(labels, key=lambda k: -float(np.nanmean(np.asarray(scores[k], float))))
        pairs = [(x, y) for i, x in enumerate(ranked) for y in ranked[i + 1:]]
        if len(pairs) > MAX_PAIRS:  # the figure stays readable: the leader against every other label
            warnings.warn(f"probability of improvement: {len(pairs)} pairs of {len(labels)} labels; the figure "
                          f"shows P({ranked[0]} > Y) for {min(len(ranked) - 1, MAX_PAIRS)} others (the leader by "
                          f"mean score)",
                          stacklevel=2)
            pairs = [(ranked[0], y) for y in ranked[1:]][:MAX_PAIRS]
    if not pairs:
        raise ValueError("improvement: needs at least two algorithms")
    rows = []
    for k, (x, y) in enumerate(pairs):
        e = stats.probability_of_improvement(scores[x], scores[y], reps=reps, confidence=confidence, seed=seed + k)
        rows.append({"x": x, "y": y, "point": e.point, "low": e.low, "high": e.high, "n": e.n})
    data = pd.DataFrame(rows)
    cmap = _colors(labels, colors)
    with style():
        fig, (ax,) = _grid(1, size, panel_height=0.3 * len(pairs) + 0.9, max_cols=1)
        for i, r in data.iterrows():
            ax.barh(i, max(r["high"] - r["low"], 0.004), left=min(r["low"], 0.996), height=0.6, color=cmap[r["x"]],
                    alpha=0.75)
            ax.plot([r["point"]], [i], marker="|", ms=10, mew=1.5, color="k")
        ax.axvline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_yticks(range(len(data)), [f"P({r.x} > {r.y})" for r in data.itertuples()])
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(f"probability of improvement ({confidence:.0%} CIs, n={_n_text(data['n'])[2:]} runs)")
    fig.evalkit_data = data
    return fig


def performance_profiles(scores: Mapping[str, np.ndarray], taus: Sequence[float] | None = None, reps: int = 2_000,
                         confidence: float = 0.95, seed: int = 0, colors: Mapping[str, tuple] | None = None,
                         xlabel: str = "normalized score tau", size: str = "single") -> Figure:
    """Performance profiles (fraction of runs with score > tau, over runs and envs) with bootstrap bands."""
    labels = sorted(scores)
    if taus is None:
        allv = np.concatenate([np.asarray(v, float).ravel() for v in scores.values()])
        allv = allv[np.isfinite(allv)]
        taus = np.linspace(min(0.0, allv.min()), max(1.0, allv.max()), 81)
    frames = []
    for k, lab in enumerate(labels):
        p = stats.performance_profile(scores[lab], taus, reps=reps, confidence=confidence, seed=seed + k)
        frames.append(p.assign(label=lab, n=np.asarray(scores[lab]).shape[0]))
    data = pd.concat(frames, ignore_index=True)
    cmap = _colors(labels, colors)
    with style():
        fig, (ax,) = _grid(1, size, panel_height=2.4, max_cols=1)
        for lab in labels:
            d = data[data["label"] == lab]
            _line_band(ax, d["tau"], d, cmap[lab], f"{lab} (n={int(d['n'].iloc[0])})",
                       ls=style_of(lab, cmap))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of runs with score > tau")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"performance profiles, {confidence:.0%} bootstrap bands")
        ax.legend(frameon=False, loc="best")
    fig.evalkit_data = data
    return fig


# ---------------------------------------------------------------------------------------------
# per-env score distributions: confidence vs tolerance intervals
# ---------------------------------------------------------------------------------------------

def distribution_table(runs: pd.DataFrame, coverage: float = 0.9, confidence: float = 0.95, reps: int = 10_000,
                       seed: int = 0) -> pd.DataFrame:
    """Per (label, env): n, mean, 95% percentile bootstrap CI of the mean, the normal-theory
    (``coverage``, ``confidence``) tolerance interval, and the standard error (not an interval)."""
    rows = []
    for k, ((label, env), g) in enumerate(runs.groupby(["label", "env"], sort=True)):
        x = g["score"].to_numpy(float)
        x = x[np.isfinite(x)]
        row = {"label": label, "env": env, "n": len(x), "mean": x.mean() if len(x) else np.nan,
               "ci_low": np.nan, "ci_high": np.nan, "tol_low": np.nan, "tol_high": np.nan, "se": np.nan}
        if len(x) >= 2:
            ci = stats.bootstrap_interval(x, np.mean, reps=reps, seed=seed + k) if np.ptp(x) > 0 else None
            tol = stats.tolerance_interval(x, coverage, confidence, "normal")
            row.update(ci_low=ci.low if ci else x[0], ci_high=ci.high if ci else x[0], tol_low=tol.low,
                       tol_high=tol.high, se=x.std(ddof=1) / np.sqrt(len(x)))
        rows.append(row)
    return pd.DataFrame(rows)


def _jitter(n: int, width: float = 0.16) -> np.ndarray:
    """Deterministic, evenly spread horizontal offsets (no random state)."""
    return np.zeros(n) if n <= 1 else np.linspace(-width, width, n)[np.argsort(np.argsort(np.arange(n) * 7919 % n))]


def score_distributions(runs: pd.DataFrame, coverage: float = 0.9, confidence: float = 0.95, reps: int = 10_000,
                        seed: int = 0, colors: Mapping[str, tuple] | None = None, ylabel: str = "run score",
                        size: str = "double") -> Figure:
    """Per env: every run's score (dots), and beside them the 95% CI of the mean (thick bar), the
    (coverage, confidence) tolerance interval (thin bar) and +-1 standard error (grey, short):
    the CI says where the mean is, the tolerance interval where most runs land, the standard
    error neither (Patterson et al. 2023). ``runs``: per-run table (label, env, score)."""
    data = distribution_table(runs, coverage, confidence, reps, seed)
    envs = sorted(data["env"].unique())
    cmap = _colors(data["label"], colors)
    labels = sorted(cmap)
    with style():
        fig, axes = _grid(len(envs), size, panel_height=2.2)
        for ax, env in zip(axes, envs):
            d = data[data["env"] == env].set_index("label")
            present = [lab for lab in labels if lab in d.index]
            for i, lab in enumerate(present):
                x = runs[(runs["label"] == lab) & (runs["env"] == env)]["score"].to_numpy(float)
                x = np.sort(x[np.isfinite(x)])
                ax.scatter(i - 0.22 + _jitter(len(x), 0.12), x, s=7, color=cmap[lab], alpha=0.8, lw=0)
                r = d.loc[lab]
                ax.vlines(i + 0.08, r["mean"] - r["se"], r["mean"] + r["se"], color="0.55", lw=3)
                ax.vlines(i + 0.2, r["ci_low"], r["ci_high"], color=cmap[lab], lw=3.5)
                ax.vlines(i + 0.32, r["tol_low"], r["tol_high"], color=cmap[lab], lw=1.2)
                ax.plot([i + 0.2], [r["mean"]], marker="_", color="k", ms=7)
            # long neighbouring names would overlap side by side
            tilt = len(present) > 3 or any(len(a) + len(b) > 18 for a, b in zip(present, present[1:]))
            ax.set_xticks(range(len(present)), [f"{lab}\n(n={int(d.loc[lab, 'n'])})" for lab in present],
                          rotation=30 if tilt else 0, ha="right" if tilt else "center")
            ax.set_xlim(-0.6, len(present) - 0.4)
            ax.set_title(env)
            ax.set_ylabel(ylabel)
            ax.grid(axis="x", visible=False)
        handles = [Line2D([], [], marker="o", ls="", color="0.3", ms=3, label="runs"),
                   Line2D([], [], color="0.55", lw=3, label="mean +-1 s.e. (not an interval)"),
                   Line2D([], [], color="0.2", lw=3.5, label=f"{confidence:.0%} CI of the mean (bootstrap)"),
                   Line2D([], [], color="0.2", lw=1.2,
                          label=f"tolerance: {coverage:.0%} of runs, {confidence:.0%} conf. (normal)")]
        fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    fig.evalkit_data = data
    return fig


# ---------------------------------------------------------------------------------------------
# hyperparameters: sensitivity and tuning budget
# ---------------------------------------------------------------------------------------------

def _log_scale(values: pd.Series) -> bool:
    v = pd.to_numeric(values, errors="coerce").to_numpy(float)
    return bool(np.isfinite(v).all() and (v > 0).all() and v.max() / v.min() >= 20)


def sensitivity_curves(curves: pd.DataFrame, colors: Mapping[str, tuple] | None = None,
                       size: str = "double") -> Figure:
    """Performance against one hyperparameter's value, per env, from
    :func:`evalkit.sensitivity.sensitivity_curves` (point and band per value)."""
    if curves.empty:
        raise ValueError("sensitivity_curves: empty curve table")
    envs = sorted(curves["env"].unique())
    hp = str(curves["hyperparameter"].iloc[0])
    cmap = _colors(curves["algorithm"], colors)
    numeric = pd.to_numeric(curves["value"], errors="coerce").notna().all()
    with style():
        fig, axes = _grid(len(envs), size)
        for ax, env in zip(axes, envs):
            d = curves[curves["env"] == env]
            for alg, g in d.groupby("algorithm", sort=True):
                g = g.assign(x=pd.to_numeric(g["value"]) if numeric else g["value"].astype(str))
                g = g.sort_values("x")
                _line_band(ax, g["x"], g, cmap[alg], alg, marker="o", ms=3)
            if numeric and _log_scale(d["value"]):
                ax.set_xscale("log")
            ax.set_title(env)
            ax.set_xlabel(hp)
            ax.set_ylabel(f"{curves['mode'].iloc[0]} normalized score" if "mode" in curves else "score")
        if len(envs) == 1:
            axes[0].legend(frameon=False, loc="best")
        else:
            _legend(fig, labels_mod.ordered(curves["algorithm"]), cmap, marker="o")
        conf = curves["confidence"].iloc[0] if "confidence" in curves else 0.95
        fig.suptitle(f"sensitivity to {hp} ({conf:.0%} bootstrap CIs)", fontsize=8)
    fig.evalkit_data = curves
    return fig


def sensitivity_plane(result, colors: Mapping[str, tuple] | None = None, size: str = "single") -> Figure:
    """The performance-sensitivity plane of Adkins et al. (2024): per algorithm, sensitivity Phi
    (x) against per-env tuned performance (y), both with bootstrap CIs. ``result``: a
    :class:`evalkit.sensitivity.SensitivityResult`. Lower right is best (good and insensitive)."""
    data = result.table()
    cmap = _colors(data["algorithm"], colors)
    with style():
        fig, (ax,) = _grid(1, size, panel_height=2.6, max_cols=1)
        for r in data.itertuples():
            ax.errorbar(r.sensitivity, r.per_env_tuned,
                        xerr=[[r.sensitivity - r.sensitivity_low], [r.sensitivity_high - r.sensitivity]],
                        yerr=[[r.per_env_tuned - r.per_env_tuned_low], [r.per_env_tuned_high - r.per_env_tuned]],
                        fmt="o", ms=4, color=cmap[r.algorithm], capsize=2, lw=1,
                        label=f"{r.algorithm} ({r.n_settings} settings, {r.n_runs} runs)")
        ax.set_xlabel("sensitivity Phi (per-env tuned - cross-env tuned)")
        ax.set_ylabel("per-env tuned normalized score")
        ax.set_title(f"performance-sensitivity plane ({result.confidence:.0%} CIs)")
        ax.legend(frameon=False, loc="best")
    fig.evalkit_data = data
    return fig


def expected_max(curves: pd.DataFrame, colors: Mapping[str, tuple] | None = None, ylabel: str = "score",
                 size: str = "single") -> Figure:
    """Expected maximum performance against the number of hyperparameter settings tried (Dodge et
    al. 2019), with the bootstrap band; ``curves``: long table algorithm, budget, point, low, high
    (and ``n`` settings), with an ``env`` column one panel per env (scores of different envs are
    never pooled)."""
    if curves.empty:
        raise ValueError("expected_max: empty curve table")
    cmap = _colors(curves["algorithm"], colors)
    # one panel per env: raw returns of different envs are never pooled (Dodge et al. work per task)
    envs = sorted(curves["env"].unique()) if "env" in curves.columns else [None]
    with style():
        fig, axes = _grid(len(envs), size, panel_height=2.4 if len(envs) == 1 else 2.0,
                          max_cols=1 if len(envs) == 1 else None)
        for ax, env in zip(axes, envs):
            d = curves if env is None else curves[curves["env"] == env]
            for alg, g in d.groupby("algorithm", sort=True):
                _line_band(ax, g["budget"], g, cmap[alg],
                           f"{alg} ({int(g['n'].iloc[0]) if 'n' in g else len(g)} settings)", marker="o", ms=2.5)
            ax.set_xlabel("hyperparameter settings tried (tuning budget)" if len(envs) == 1 else "settings tried")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(f"expected max {ylabel}")
            if env is not None:
                ax.set_title(env)
        if len(envs) == 1:
            axes[0].legend(frameon=False, loc="best")
        else:
            n_of = curves.groupby("algorithm")["n"].agg(lambda n: _n_text(n)[2:]) if "n" in curves else {}
            cmap = {**cmap, **{f"{a} ({n_of[a]} settings)": cmap[a] for a in n_of.index}} if len(n_of) else cmap
            _legend(fig, [f"{a} ({n_of[a]} settings)" if len(n_of) else a
                                for a in labels_mod.ordered(curves["algorithm"])], cmap, marker="o")
        conf = curves["confidence"].iloc[0] if "confidence" in curves else 0.95
        title = f"expected max performance ({conf:.0%} bootstrap bands over settings)"
        if env is None:
            axes[0].set_title(title)
        else:
            fig.suptitle(title, fontsize=8)
    fig.evalkit_data = curves
    return fig


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------

def save(fig: Figure, stem: str | Path, formats: Sequence[str] = ("pdf", "png"), dpi: int = DPI) -> list[Path]:
    """Write ``stem.pdf`` (vector, TrueType fonts embedded as Type 42) and ``stem.png`` (``dpi``, 300 by
    default); each file is written to a temporary name and renamed, so a killed process never
    leaves half a figure. Returns the paths written."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        if fmt not in ("pdf", "png", "svg"):
            raise ValueError(f"formats: expected pdf, png or svg, found {fmt!r}")
        path = stem.with_suffix(f".{fmt}")
        tmp = path.with_name(f".{path.name}.tmp")
        with mpl.rc_context(STYLE):
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata={"CreationDate": None} if fmt == "pdf" else None)
        os.replace(tmp, path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# reliability (Chan et al. 2020)
# ---------------------------------------------------------------------------------------------

def reliability_ranks(ranks: pd.DataFrame, colors: Mapping[str, tuple] | None = None, size: str = "double") -> Figure:
    """Rank (1 = best) of each algorithm on each reliability metric with its bootstrap CI, one panel per
    metric: the mean rank over envs where the study has several (only ranks are combined across envs),
    else the single env's rank. ``ranks``: :func:`evalkit.reliability.rank_table`."""
    from evalkit.reliability import METRICS
    if ranks.empty:
        raise ValueError("reliability_ranks: empty rank table")
    scope = "all envs" if (ranks["env"] == "all envs").any() else ranks["env"].iloc[0]
    data = ranks[ranks["env"] == scope]
    metrics_ = [m for m in METRICS if m in set(data["metric"])]
    labels = sorted(data["label"].unique())
    n_alg = len(labels)
    cmap = _colors(labels, colors)
    conf = float(ranks["confidence"].iloc[0]) if "confidence" in ranks else 0.95
    with style():
        fig, axes = _grid(len(metrics_), size, panel_height=0.3 * n_alg + 0.9, max_cols=4 if size == "double" else 2)
        for ax, m in zip(axes, metrics_):
            d = data[data["metric"] == m].set_index("label")
            for y, lab in enumerate(labels):
                if lab not in d.index:
                    continue
                r = d.loc[lab]
                if np.isfinite(r["rank_low"]):
                    ax.barh(y, max(r["rank_high"] - r["rank_low"], 0.04), left=r["rank_low"] - (
                        0.02 if r["rank_high"] == r["rank_low"] else 0), height=0.6, color=cmap[lab], alpha=0.75)
                ax.vlines(r["rank"], y - 0.3, y + 0.3, color="k", lw=1.2)
            info = METRICS[m]
            ax.set_title(f"{info.short}: {m.replace('_', ' ')}\n({info.better} is better)")
            ax.set_xlim(0.5, n_alg + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_yticks(range(n_alg), labels if ax.get_subplotspec().is_first_col() else [])
            ax.invert_yaxis()
            ax.set_xlabel("rank (1 = best)")
            ax.grid(axis="y", visible=False)
        where = f"mean rank over {ranks[ranks['env'] != 'all envs']['env'].nunique()} envs" if scope == "all envs" \
            else f"rank in {scope}"
        fig.suptitle(f"reliability (Chan et al. 2020): {where}, {conf:.0%} bootstrap CIs", fontsize=8)
    fig.evalkit_data = data
    return fig
