"""Figures of a 100-setting sweep stay bounded and compare one setting per algorithm."""

from __future__ import annotations

import warnings

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from evalkit import figures, plots, spec

STUDY = """
name = "sweep100"
seed = 1
runs = 3
[envs.CliffWorld-v0]
steps = 1000
reference = {{ low = -1000.0, high = -13.0 }}
[envs.PuddleWorld-v0]
steps = 1000
reference = {{ low = -4000.0, high = -38.0 }}
[algorithms.sarsa]
agent = "sarsa"
sweep = {{ alpha = {alphas}, epsilon = {eps} }}
[algorithms.q_learning]
agent = "q_learning"
sweep = {{ alpha = {alphas}, epsilon = {eps} }}
"""
ALPHAS = [round(0.05 * (k + 1), 2) for k in range(10)]
EPS = [round(0.02 * k, 2) for k in range(10)]


def sweep_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for alg, shift in (("sarsa", 0.0), ("q_learning", 40.0)):
        for env, scale in (("CliffWorld-v0", 1.0), ("PuddleWorld-v0", 5.0)):
            for a in ALPHAS:
                for e in EPS:
                    for i in range(3):
                        run = f"{alg}{env}{a}{e}{i}"
                        base = -200 * scale + shift + 100 * a - 300 * e
                        for k in range(5):
                            rows.append({"run_id": run, "algorithm": alg, "agent": alg, "env": env, "phase": "eval",
                                         "seed_index": i, "seed": i, "setting": f"{alg}-{a}-{e}", "budget": 1000,
                                         "mode": "train", "step": 200 * (k + 1), "episode": k, "length": 200,
                                         "return": base + 20 * k + rng.normal(0, 10), "hp.alpha": a, "hp.epsilon": e})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "sweep100.toml"
    path.write_text(STUDY.format(alphas=ALPHAS, eps=EPS))
    study = spec.load_study(path)
    data = figures.assemble(study, sweep_table())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figs = figures.build(data, reps=100)
    out = figures.write(figs, tmp_path_factory.mktemp("figs"), ("png", "pdf"))
    return data, figs, out


def test_every_figure_of_a_100_setting_sweep_is_bounded_at_300_dpi(built):
    data, figs, out = built
    assert {"curves", "normalized_curves", "aggregates", "improvement", "profiles", "distributions",
            "sensitivity_plane", "sensitivity_alpha", "sensitivity_epsilon", "expected_max"} <= set(figs)
    for name, paths in out.items():
        png = next(p for p in paths if p.suffix == ".png")
        height, width = mpimg.imread(png).shape[:2]
        assert max(height, width) <= 4_000, (name, width, height)
        w_in, _ = figs[name].get_size_inches()
        assert width >= 0.9 * w_in * 300  # 300 dpi
        pdf = next(p for p in paths if p.suffix == ".pdf").read_bytes()
        assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType fonts embedded (Type 42), vector


def test_comparison_figures_show_one_setting_per_algorithm_and_say_it_is_the_best(built):
    data, figs, _ = built
    labels = {"sarsa [best per env]", "q_learning [best per env]"}
    assert set(data.runs["label"]) == labels
    assert set(figs["curves"].evalkit_data["label"]) == labels
    assert set(figs["aggregates"].evalkit_data["label"]) == labels
    assert len(figs["improvement"].evalkit_data) == 1
    best = data.runs[data.runs["algorithm"] == "sarsa"]
    assert (best["hp.alpha"] == 0.5).all() and (best["hp.epsilon"] == 0.0).all()
    assert any("maximization bias" in n for n in data.notes)
    # the sweep figures read every setting, per env for expected max (raw returns never pooled)
    em = figs["expected_max"].evalkit_data
    assert set(em["env"]) == {"CliffWorld-v0", "PuddleWorld-v0"} and (em["n"] == 100).all()
    assert set(figs["sensitivity_plane"].evalkit_data["n_settings"]) == {100}


def test_one_colour_per_algorithm_across_every_figure(built):
    data, figs, _ = built
    for alg in ("sarsa", "q_learning"):
        color = tuple(data.colors[alg])
        line = [ln for ln in figs["curves"].axes[0].get_lines() if ln.get_label().startswith(alg + " ")][0]
        assert tuple(line.get_color()) == color
        em = [ln for ln in figs["expected_max"].axes[0].get_lines() if ln.get_label().startswith(alg + " ")][0]
        assert tuple(em.get_color()) == color
    assert data.colors["sarsa [best per env]"] == data.colors["sarsa"]


def test_many_labels_keep_the_improvement_figure_bounded():
    rng = np.random.default_rng(1)
    scores = {f"alg{k:02d}": rng.normal(k, 1, size=(5, 2)) for k in range(40)}
    with pytest.warns(UserWarning, match="780 pairs"):
        fig = plots.improvement(scores, reps=50)
    assert len(fig.evalkit_data) == plots.MAX_PAIRS and (fig.evalkit_data["x"] == "alg39").all()
    assert fig.get_size_inches()[1] * 300 <= 4_000
