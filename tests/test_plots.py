"""Plots: each figure is checked on what it draws (lines, bands, bars) against independent references."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from evalkit import plots, stats

REPS = 4_000


def episode_table(returns: dict, budget: int = 1_000, every: int = 100, env: str = "E", phase: str = "eval",
                  mode: str = "train", lengths: dict | None = None) -> pd.DataFrame:
    """Long table with one episode ending every ``every`` steps: ``returns[label]`` is (runs, episodes)."""
    rows = []
    for label, r in returns.items():
        for i, run in enumerate(np.asarray(r, float)):
            stop = (lengths or {}).get((label, i), budget)
            for k, ret in enumerate(run):
                step = (k + 1) * every
                if step > stop:
                    break
                rows.append({"run_id": f"{label}-{env}-{i}", "algorithm": label, "agent": "x", "env": env,
                             "phase": phase, "seed_index": i, "seed": 100 + i, "setting": "s", "budget": stop,
                             "mode": mode, "step": step, "episode": k, "return": ret, "length": every})
    return pd.DataFrame(rows)


def band_at(poly, x: float) -> tuple[float, float]:
    """(min, max) of a fill_between band's vertices at x."""
    v = np.concatenate([p.vertices for p in poly.get_paths()])
    ys = v[np.isclose(v[:, 0], x), 1]
    return ys.min(), ys.max()


def scipy_percentile(x: np.ndarray, stat=np.mean, reps: int = REPS) -> tuple[float, float]:
    ci = sps.bootstrap((x,), stat, n_resamples=reps, method="percentile", random_state=1).confidence_interval
    return ci.low, ci.high


@pytest.fixture
def two_algorithms():
    rng = np.random.default_rng(0)
    return {"a": rng.normal(10, 3, size=(6, 10)), "b": rng.normal(20, 5, size=(6, 10)) + np.arange(10)}


def test_learning_curve_lines_and_bands_are_the_bootstrap_intervals_of_the_runs(two_algorithms):
    table = episode_table(two_algorithms)
    fig = plots.learning_curves(table, points=10, reps=REPS, size="single")
    data = fig.evalkit_data
    ax = fig.axes[0]
    lines = {line.get_label().split(" ")[0]: line for line in ax.get_lines()}
    bands = [c for c in ax.collections]
    for j, label in enumerate(sorted(two_algorithms)):
        x = two_algorithms[label]
        d = data[data["label"] == label].sort_values("step")
        np.testing.assert_allclose(d["step"], np.arange(1, 11) * 100)
        np.testing.assert_allclose(d["point"], x.mean(axis=0), rtol=1e-12)   # the drawn statistic: mean over runs
        np.testing.assert_allclose(lines[label].get_ydata(), x.mean(axis=0), rtol=1e-12)
        for k in (0, 4, 9):  # band limits equal the bootstrap interval of the runs' values there
            lo, hi = scipy_percentile(x[:, k])
            width = hi - lo
            row = d.iloc[k]
            assert abs(row["low"] - lo) < 0.1 * width and abs(row["high"] - hi) < 0.1 * width
            blo, bhi = band_at(bands[j], row["step"])
            assert blo == pytest.approx(row["low"]) and bhi == pytest.approx(row["high"])
        assert "(n=6)" in lines[label].get_label()


def test_iqm_curves_use_the_interquartile_mean(two_algorithms):
    table = episode_table(two_algorithms)
    data = plots.curve_table(table, aggregate="iqm", points=10, reps=500)
    d = data[data["label"] == "b"].sort_values("step")
    np.testing.assert_allclose(d["point"], sps.trim_mean(two_algorithms["b"], 0.25, axis=0), rtol=1e-12)


def test_unequal_run_lengths_end_where_too_few_runs_remain_never_past_a_budget(two_algorithms):
    table = episode_table(two_algorithms, lengths={("a", 0): 500, ("a", 1): 500, ("a", 2): 500, ("a", 3): 500})
    fig = plots.learning_curves(table, points=10, reps=200)
    d = fig.evalkit_data[fig.evalkit_data["label"] == "a"].sort_values("step")
    assert list(d["n"]) == [6] * 5 + [2] * 5  # four runs stop at 500 steps: never extrapolated
    assert d["drawn"].tolist() == [True] * 5 + [False] * 5
    np.testing.assert_allclose(d["point"].iloc[5:], two_algorithms["a"][4:, 5:].mean(axis=0))
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("a ")][0]
    np.testing.assert_allclose(line.get_xdata(), [100, 200, 300, 400, 500])
    assert "n=6" in line.get_label()


def test_evaluation_curves_plot_the_evaluation_rounds():
    rng = np.random.default_rng(1)
    returns = {"a": rng.normal(5, 1, size=(4, 5))}
    table = episode_table(returns, budget=1_000, every=200, mode="eval")
    fig = plots.learning_curves(table, mode="eval", points=10, reps=300)
    line = fig.axes[0].get_lines()[0]
    # rounds every 200 steps on a 100-step grid: each round's value holds until the next round
    np.testing.assert_allclose(line.get_xdata(), np.arange(2, 11) * 100)
    held = np.repeat(returns["a"].mean(axis=0), 2)[:-1]
    np.testing.assert_allclose(line.get_ydata(), held, rtol=1e-12)
    assert fig.evalkit_data["fresh"].tolist() == [0] + [4, 0] * 4 + [4]
    assert "evaluation" in fig.axes[0].get_ylabel()


def test_normalized_curves_are_the_iqm_of_min_max_scores_across_envs():
    rng = np.random.default_rng(2)
    e1, e2 = rng.uniform(0, 100, size=(5, 4)), rng.uniform(-50, 0, size=(5, 4))
    table = pd.concat([episode_table({"a": e1}, budget=400, env="E1"),
                       episode_table({"a": e2}, budget=800, every=200, env="E2")])
    refs = {"E1": (0.0, 100.0), "E2": (-50.0, 0.0)}
    fig = plots.normalized_curves(table, refs, points=4, reps=500)
    d = fig.evalkit_data.sort_values("fraction")
    norm = np.stack([e1 / 100.0, (e2 + 50) / 50.0], axis=-1)  # (runs, points, envs)
    expected = [stats.iqm(norm[:, k, :]) for k in range(4)]
    np.testing.assert_allclose(d["fraction"], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(d["point"], expected, rtol=1e-12)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="references"):
        plots.normalized_curve_table(table, {"E1": (0, 1)})


def score_matrices(seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {"a": rng.uniform(0, 1, size=(10, 5)), "b": rng.uniform(0.2, 1.1, size=(10, 5)),
            "c": rng.uniform(0.5, 1.5, size=(10, 5))}


def test_aggregate_bars_span_the_stratified_bootstrap_intervals():
    scores = score_matrices()
    fig = plots.aggregate_intervals(scores, reps=1_000, seed=7)
    est = stats.interval_estimates(scores, ["median", "iqm", "mean", "optimality_gap"], reps=1_000, seed=7)
    iqm_ax = [ax for ax in fig.axes if ax.get_title() == "IQM"][0]
    bars = iqm_ax.patches
    for y, label in enumerate(sorted(scores)):
        e = est[label]["iqm"]
        assert bars[y].get_x() == pytest.approx(e.low) and bars[y].get_x() + bars[y].get_width() == pytest.approx(e.high)
        # the point is the rliable-defined IQM of all runs x envs
        assert e.point == pytest.approx(sps.trim_mean(scores[label].ravel(), 0.25))
    og = fig.evalkit_data.query("aggregate == 'optimality_gap' and label == 'c'")["point"].item()
    assert og == pytest.approx(np.mean(np.maximum(1 - scores["c"], 0)))


def test_probability_of_improvement_matches_mann_whitney_per_env():
    scores = score_matrices()
    fig = plots.improvement(scores, pairs=[("c", "a"), ("b", "a")], reps=1_000)
    d = fig.evalkit_data
    for r in d.itertuples():
        x, y = scores[r.x], scores[r.y]
        u = np.mean([sps.mannwhitneyu(x[:, t], y[:, t]).statistic / (len(x) * len(y)) for t in range(x.shape[1])])
        assert r.point == pytest.approx(u, rel=1e-12)
        assert r.low <= r.point <= r.high
    bar = fig.axes[0].patches[0]
    assert bar.get_x() == pytest.approx(d["low"].iloc[0])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["P(c > a)", "P(b > a)"]


def test_default_pairs_put_the_better_algorithm_first():
    scores = score_matrices()
    d = plots.improvement(scores, reps=200).evalkit_data
    assert list(zip(d["x"], d["y"])) == [("c", "b"), ("c", "a"), ("b", "a")]
    assert (d["point"] > 0.5).all()


def test_performance_profiles_are_fractions_of_runs_above_tau():
    scores = score_matrices()
    taus = np.linspace(0, 1.5, 16)
    fig = plots.performance_profiles(scores, taus, reps=500)
    for line in fig.axes[0].get_lines():
        label = line.get_label().split(" ")[0]
        expected = [(scores[label] > t).mean() for t in taus]
        np.testing.assert_allclose(line.get_xdata(), taus)
        np.testing.assert_allclose(line.get_ydata(), expected)


def test_score_distributions_draw_ci_tolerance_and_standard_error_side_by_side():
    rng = np.random.default_rng(4)
    runs = pd.DataFrame({"label": ["a"] * 10 + ["b"] * 10, "env": "E",
                         "score": np.r_[rng.normal(0, 1, 10), rng.normal(3, 2, 10)]})
    fig = plots.score_distributions(runs, reps=REPS)
    d = fig.evalkit_data.set_index("label")
    segments = {}
    for coll in fig.axes[0].collections:
        for seg in getattr(coll, "get_segments", lambda: [])():
            segments[round(float(seg[0][0]), 3)] = (min(seg[0][1], seg[1][1]), max(seg[0][1], seg[1][1]))
    for i, label in enumerate(["a", "b"]):
        x = runs[runs["label"] == label]["score"].to_numpy()
        tol = stats.tolerance_interval(x, 0.9, 0.95)
        lo, hi = scipy_percentile(x)
        se = sps.sem(x)
        assert segments[round(i + 0.32, 3)] == pytest.approx((tol.low, tol.high))
        assert segments[round(i + 0.08, 3)] == pytest.approx((x.mean() - se, x.mean() + se))
        ci = segments[round(i + 0.2, 3)]
        assert abs(ci[0] - lo) < 0.1 * (hi - lo) and abs(ci[1] - hi) < 0.1 * (hi - lo)
        assert tol.high - tol.low > ci[1] - ci[0] > 2 * se * 0.9  # the lesson: SE << CI << tolerance
        assert d.loc[label, "n"] == 10
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("not an interval" in t for t in legend) and any("tolerance" in t for t in legend)


def test_sensitivity_and_expected_max_figures_draw_their_tables():
    curves = pd.DataFrame({"algorithm": "a", "env": "E", "hyperparameter": "lr", "value": [1e-4, 1e-3, 1e-2],
                           "point": [0.2, 0.8, 0.4], "low": [0.1, 0.7, 0.3], "high": [0.3, 0.9, 0.5],
                           "mode": "best", "confidence": 0.95})
    fig = plots.sensitivity_curves(curves)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.2, 0.8, 0.4])
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "lr"
    em = pd.DataFrame({"algorithm": "a", "budget": [1, 2, 3], "point": [1.0, 1.5, 1.7], "low": [0.5, 1.0, 1.2],
                       "high": [1.5, 1.9, 2.0], "n": 3, "confidence": 0.95})
    fig = plots.expected_max(em)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [1.0, 1.5, 1.7])
    assert band_at(fig.axes[0].collections[0], 2) == pytest.approx((1.0, 1.9))


def test_one_colour_per_algorithm_across_figures_and_colour_blind_palette(two_algorithms):
    import seaborn as sns
    colors = plots.palette(["b", "a", "random"])
    assert colors["a"] == sns.color_palette("colorblind")[0]
    fig1 = plots.learning_curves(episode_table(two_algorithms), points=10, reps=100, colors=colors)
    fig2 = plots.aggregate_intervals({k: v[:, :3] for k, v in two_algorithms.items()}, reps=100, colors=colors)
    line_b = [ln for ln in fig1.axes[0].get_lines() if ln.get_label().startswith("b ")][0]
    bar_b = [ax for ax in fig2.axes if ax.get_title() == "Mean"][0].patches[1]
    assert tuple(line_b.get_color()) == tuple(colors["b"])
    assert tuple(bar_b.get_facecolor()[:3]) == pytest.approx(tuple(colors["b"]))


def test_figures_are_saved_as_vector_pdf_and_png_of_column_width(tmp_path, two_algorithms):
    fig = plots.learning_curves(episode_table(two_algorithms), points=10, reps=100, size="single")
    assert fig.get_figwidth() == pytest.approx(3.5)
    paths = plots.save(fig, tmp_path / "sub" / "curves")
    assert [p.name for p in paths] == ["curves.pdf", "curves.png"]
    assert paths[0].read_bytes()[:4] == b"%PDF" and paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "sub").glob(".*tmp"))
    with pytest.raises(ValueError, match="size"):
        plots.learning_curves(episode_table(two_algorithms), size="triple")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a full grid draws without warnings
        plots.learning_curves(episode_table(two_algorithms), points=10, reps=100)
