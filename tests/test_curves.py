"""The common-grid curve rule (DESIGN.md section 5): each run on one step grid, then runs aggregated."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from evalkit import metrics, plots


def run_rows(run: str, alg: str, ends: list[int], returns: list[float], budget: int, seed_index: int,
             mode: str = "train", env: str = "E") -> list[dict]:
    return [{"run_id": run, "algorithm": alg, "agent": "x", "env": env, "phase": "eval", "seed_index": seed_index,
             "seed": seed_index, "setting": "s", "budget": budget, "mode": mode, "step": s, "episode": k,
             "return": r, "length": 1} for k, (s, r) in enumerate(zip(ends, returns))]


def lockstep_table(runs: int = 5, budget: int = 10_000, n_envs: int = 8, seed: int = 0) -> pd.DataFrame:
    """Runs stepping ``n_envs`` envs in lockstep: their episodes end in bursts every ~1,000 steps."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(runs):
        ends, rets = [], []
        for k in range(1, 10):
            burst = 1_000 * k + 137 * i + 1
            ends += [burst + j for j in range(n_envs)]
            rets += list(rng.normal(10 * k, 3, n_envs))
        rows += run_rows(f"r{i}", "ppo", ends, rets, budget, i)
    return pd.DataFrame(rows)


def test_lockstep_vector_env_runs_give_continuous_lines():
    table = lockstep_table()
    curves = metrics.learning_curves(table, points=50)
    assert list(curves.columns) == ["run_id", "algorithm", "label", "env", "phase", "seed_index", "step", "value",
                                    "fresh"]
    for run, g in curves.groupby("run_id"):
        g = g.sort_values("step")
        rows = table[table["run_id"] == run]
        started = g["step"] >= np.ceil(rows["step"].min() / 200) * 200  # the window of the first episode
        assert g.loc[~started, "value"].isna().all()           # NaN before the first finished episode
        assert np.isfinite(g.loc[started, "value"]).all()      # no hole afterwards
        assert g["fresh"].sum() == 9                           # one window per burst has fresh episodes
        for _, r in g[g["fresh"]].iterrows():                  # fresh value: mean of the window's episodes
            inside = rows[(rows["step"] > r["step"] - 200) & (rows["step"] <= r["step"])]
            assert r["value"] == pytest.approx(inside["return"].mean())
        held = g[started].set_index("step")["value"]
        last_fresh = g[started]["fresh"].cumsum()
        for steps, block in held.groupby(last_fresh.to_numpy()):  # carried forward until the next burst
            assert block.nunique() == 1
    fig = plots.learning_curves(table, points=50, reps=300)
    line = fig.axes[0].get_lines()[0]
    assert np.isfinite(line.get_ydata()).all() and len(line.get_ydata()) == 44  # 1,400 steps to 10,000
    d = fig.evalkit_data
    assert list(d["n"].iloc[4:8]) == [0, 2, 3, 5]               # runs enter at their first burst
    assert (d.loc[d["step"] >= 1_600, "n"] == 5).all()         # constant once every run has an episode
    assert "n=3-5, all 5 from 1.6k steps" in line.get_label()


def test_one_long_episode_spanning_several_windows_is_carried_across_them():
    rows = []
    for i in range(4):
        ends = list(range(450 + 10 * i, 5_000, 450))
        rows += run_rows(f"r{i}", "sarsa", ends, [float(k + i) for k in range(len(ends))], 5_000, i)
    table = pd.DataFrame(rows)
    curves = metrics.learning_curves(table, points=50)  # windows of 100 steps, episodes of 450
    for _, g in curves.groupby("run_id"):
        g = g.sort_values("step")
        assert np.isfinite(g.loc[g["step"] >= 500, "value"]).all()
        assert 0 < g["fresh"].sum() < 50 // 4 + 1
    d = plots.curve_table(table, points=50, reps=200)
    assert (d.loc[d["step"] >= 500, "n"] == 4).all() and d.loc[d["drawn"], "point"].notna().all()


def test_grid_stops_at_each_run_budget_and_runs_enter_at_their_first_episode():
    rows = run_rows("long", "a", [100, 900, 1_900], [1.0, 2.0, 3.0], 2_000, 0)
    rows += run_rows("short", "a", [300, 700], [5.0, 7.0], 1_000, 1)
    curves = metrics.learning_curves(pd.DataFrame(rows), points=10).set_index(["run_id", "step"])["value"]
    long = curves["long"].to_numpy()
    short = curves["short"].to_numpy()
    np.testing.assert_array_equal(long, [1, 1, 1, 1, 2, 2, 2, 2, 2, 3])
    np.testing.assert_array_equal(short[:5], [np.nan, 5, 5, 7, 7])  # enters at 300 steps (window 200-400)
    assert np.isnan(short[5:]).all()                                  # never past its budget of 1,000


def test_band_is_the_bootstrap_over_the_per_run_grid_values():
    table = lockstep_table(runs=12, seed=3)
    curves = metrics.learning_curves(table, points=20)
    for aggregate, stat in (("mean", np.mean), ("iqm", lambda x, axis=-1: sps.trim_mean(x, 0.25, axis=axis))):
        data = plots.curve_table(table, aggregate=aggregate, points=20, reps=8_000, seed=1)
        for step, n in ((2_000.0, 8), (5_500.0, 12), (10_000.0, 12)):  # runs still entering; all in; the end
            values = curves.loc[curves["step"] == step, "value"].to_numpy()
            values = values[np.isfinite(values)]
            assert len(values) == n
            ci = sps.bootstrap((values,), stat, n_resamples=8_000, method="percentile",
                               random_state=0).confidence_interval
            row = data[data["step"] == step].iloc[0]
            assert row["point"] == pytest.approx(float(stat(values)), rel=1e-12)
            width = ci.high - ci.low
            assert abs(row["low"] - ci.low) < 0.06 * width and abs(row["high"] - ci.high) < 0.06 * width
            assert row["n"] == n


def test_runs_without_an_episode_are_excluded_as_no_episode_and_the_figure_says_so():
    table = lockstep_table(runs=4)
    silent = run_rows("silent", "ppo", [5_000], [1.0], 10_000, 9, mode="eval")  # evaluation rows only
    table = pd.concat([table, pd.DataFrame(silent)], ignore_index=True)
    assert metrics.missing_episode_runs(table) == ["silent"]
    with pytest.warns(UserWarning, match="no-episode"):
        fig = plots.learning_curves(table, points=20, reps=100)
    d = fig.evalkit_data
    assert (d["no_episode"] == 1).all() and (d["runs"] == 4).all()
    assert "1 no-episode excluded" in fig.axes[0].get_lines()[0].get_label()
    # with the run catalog, a done run with no stored episode at all is found too
    catalog = pd.DataFrame({"run_id": ["r0", "r1", "r2", "r3", "silent", "empty"], "algorithm": "ppo",
                            "env": "E", "phase": "eval", "setting": "s", "status": "done"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = plots.curve_table(table, points=20, reps=100, catalog=catalog)
    assert (d["no_episode"] == 2).all()


def test_multi_env_panels_state_n_per_curve_in_their_titles():
    a = lockstep_table()
    b = lockstep_table(seed=1).assign(env="E2", run_id=lambda t: t["run_id"] + "b")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.learning_curves(pd.concat([a, b], ignore_index=True), points=50, reps=100)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["E\nn=5 per curve from 1.6k steps", "E2\nn=5 per curve from 1.6k steps"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ppo"]  # one legend below the panels
