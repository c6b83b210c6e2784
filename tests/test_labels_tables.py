"""Readable settings (labels), terminal tables within 100 columns, one setting per algorithm."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from evalkit import comparison, labels, metrics, tables
from evalkit.errors import EvalkitError


def sweep_runs(alphas=(0.1, 0.5), epsilons=(0.0, 0.15, 0.1), runs: int = 3, envs=("E1", "E2"),
               algorithms=("sarsa", "q")) -> pd.DataFrame:
    rows = []
    for a in algorithms:
        for env in envs:
            for al in alphas:
                for ep in epsilons:
                    for i in range(runs):
                        score = al * 10 - ep * 5 + i * 0.1 + (3 if a == "q" and env == "E2" else 0)
                        rows.append({"run_id": f"{a}-{env}-{al}-{ep}-{i}", "algorithm": a, "agent": a, "env": env,
                                     "phase": "eval", "seed_index": i, "seed": i,
                                     "setting": f"h{hash((a, al, ep)) & 0xffff:04x}", "hp.alpha": al,
                                     "hp.epsilon": ep, "hp.gamma": 0.99, "score": score, "diverged": False})
    return pd.DataFrame(rows)


def test_labels_show_only_swept_hyperparameters_compactly_and_sort_numerically():
    runs = sweep_runs(alphas=(0.00025, 0.1), epsilons=(0.15, 0.1, 0.0, 1e-5))
    runs["label"] = metrics.labels(runs)
    assert "sarsa[alpha=0.00025, epsilon=0.15]" in set(runs["label"])
    assert "sarsa[alpha=0.1, epsilon=1e-5]" in set(runs["label"])
    assert not runs["label"].str.contains("gamma|setting|h[0-9a-f]{4}").any()  # never a hash, never unswept
    order = [lab for lab in labels.ordered(runs["label"]) if lab.startswith("sarsa[alpha=0.1,")]
    assert order == ["sarsa[alpha=0.1, epsilon=0]", "sarsa[alpha=0.1, epsilon=1e-5]", "sarsa[alpha=0.1, epsilon=0.1]",
                     "sarsa[alpha=0.1, epsilon=0.15]"]
    assert labels.number(2.5e-4) == "0.00025" and labels.number(3e6) == "3e6" and labels.number(64) == "64"
    names = labels.setting_names(runs)
    assert set(names.values()) >= {"alpha=0.1, epsilon=0.15"} and not any("gamma" in v for v in names.values())


def test_wide_tables_fit_100_columns_with_one_quantity_per_line():
    df = pd.DataFrame({"algorithm": ["sarsa", "expected_sarsa"], **{
        f"{q}{s}": np.linspace(0.1, 0.9, 2) + k for k, q in enumerate(
            ["per_env_tuned", "cross_env_tuned", "sensitivity", "dimensionality"]) for s in ("", "_low", "_high")},
        "important_hyperparameters": ["alpha,epsilon", "alpha"], "cross_env_setting": ["alpha=0.2, epsilon=0.05"] * 2,
        "n_settings": [9, 9], "n_runs": [81, 81], "method": "a long description " * 5, "reps": 1000,
        "confidence": 0.95})
    text = tables.render(df)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "per_env_tuned" in text and "0.1 [0.1, 0.1]" in text and "method" not in text
    assert text.splitlines()[0] == "sarsa"
    small = tables.render(pd.DataFrame({"env": ["E"], "point": [1.23456], "low": [1.0], "high": [2.0]}))
    assert small.splitlines()[1].split() == ["E", "1.235", "[1,", "2]"]
    long = "  [warn] budget_curve " + "word " * 60
    assert all(len(line) <= 100 for line in tables.fit(long).splitlines())


def test_setting_ids_become_their_hyperparameters_in_tables_and_csv():
    runs = sweep_runs()
    sid = runs.iloc[0]["setting"]
    table = pd.DataFrame({"algorithm": ["sarsa"], "cross_env_setting": [sid], "sensitivity": [0.1]})
    out = tables.readable_settings(table, runs)
    assert out.loc[0, "cross_env_setting"] == "alpha=0.1, epsilon=0" and out.loc[0, "cross_env_setting_id"] == sid


def test_comparison_uses_one_setting_per_algorithm_best_per_env_with_a_bias_note():
    runs = sweep_runs()
    chosen, notes = comparison.one_setting_per_algorithm(runs)
    assert chosen.groupby(["algorithm", "env"])["setting"].nunique().max() == 1
    assert set(chosen["label"]) == {"sarsa [best per env]", "q [best per env]"}
    assert (chosen["hp.alpha"] == 0.5).all() and (chosen["hp.epsilon"] == 0.0).all()
    assert any("maximization bias" in n for n in notes) and any("10 other settings" in n for n in notes)


def test_comparison_takes_the_named_setting_and_rejects_unknown_values():
    runs = sweep_runs()
    chosen, notes = comparison.one_setting_per_algorithm(runs, "alpha=0.1, epsilon=0.15")
    assert set(chosen["label"]) == {"sarsa", "q"} and not any("bias" in n for n in notes)
    assert (chosen["hp.epsilon"] == 0.15).all() and len(chosen) == 2 * 2 * 3
    chosen, notes = comparison.one_setting_per_algorithm(runs, "sarsa: alpha=0.1, epsilon=0.1")
    assert set(chosen["label"]) == {"sarsa", "q [best per env]"}      # q: nothing named, its best per env
    with pytest.raises(EvalkitError, match=r"no stored run of 'sarsa' has alpha=0.3 \(values run: 0.1, 0.5\)"):
        comparison.one_setting_per_algorithm(runs, "sarsa: alpha=0.3")
    with pytest.raises(EvalkitError, match="no algorithm named 'dqn'"):
        comparison.one_setting_per_algorithm(runs, "dqn: lr=1")
    with pytest.raises(EvalkitError, match="name=value"):
        comparison.one_setting_per_algorithm(runs, "alpha")
    one = runs[(runs["hp.alpha"] == 0.1) & (runs["hp.epsilon"] == 0.0)]
    chosen, notes = comparison.one_setting_per_algorithm(one)  # nothing swept: nothing to choose
    assert set(chosen["label"]) == {"sarsa", "q"} and notes == []


SWEPT = """
name = "swept"
seed = 4
runs = 3
[envs.CartPole-v1]
steps = 60
[algorithms.a]
agent = "tests.fake_agents:train"
config = { noise = 0.3 }
sweep = { mean = [1.0, 3.0, 2.0], scale = [1, 2] }
[algorithms.b]
agent = "tests.fake_agents:train"
config = { noise = 0.3, mean = 2.5 }
"""


def test_report_and_plot_of_an_untuned_sweep_compare_one_setting_per_algorithm(write_study, tmp_path, capsys):
    from evalkit import cli, runner, spec
    path = write_study(SWEPT.replace(", scale = [1, 2]", ""))
    runner.run_study(spec.load_study(path), tmp_path, runner.Options(backend="serial", progress=False))
    assert cli.main(["report", str(path), "--root", str(tmp_path), "--reps", "200"]) == 0
    out = capsys.readouterr().out
    assert "a [best per env]" in out and "maximization bias" in out and "a[mean=" not in out
    md = (tmp_path / "swept" / "report.md").read_text()
    assert "| a [best per env] | CartPole-v1 | 3 |" in md and "maximization bias" in md
    assert cli.main(["plot", str(path), "--root", str(tmp_path), "--kind", "curves,expected_max", "--format", "png",
                     "--reps", "100", "--setting", "a: mean=2"]) == 0
    out = capsys.readouterr().out
    assert "expected_max:" in out and "maximization bias" not in out
    assert cli.main(["report", str(path), "--root", str(tmp_path), "--text-only", "--setting", "a: mean=2"]) == 0
    out = capsys.readouterr().out
    assert "a [best" not in out and re.search(r"^\s+a  mean", out, re.M)
    assert cli.main(["plot", str(path), "--root", str(tmp_path), "--setting", "a: mean=7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--setting" in err[0] and "mean=7" in err[0] and "1, 2, 3" in err[0]


def test_comparison_renders_within_100_columns():
    from evalkit.compare import Comparison
    per_env = pd.DataFrame([{"env": f"Env{i}-v0", "n sarsa": 10, "n q_learning": 10,
                             "mean sarsa": "-28.48 [-31, -26.4]",
                             "mean q_learning": "-28.08 [-30.7, -25.5]", "tolerance sarsa": "[-39.56, -17.39]",
                             "difference": -0.39, "test": "paired t", "p": 0.82, "P(sarsa > q_learning)": "0.51"}
                            for i in range(3)])
    agg = pd.DataFrame({"aggregate": ["IQM"], "sarsa": ["0.8 [0.7, 0.9]"], "q_learning": ["0.85 [0.8, 0.9]"]})
    text = tables.render_comparison(Comparison(per_env, agg, "min-max", ("a note " * 30,)))
    assert max(map(len, text.splitlines())) <= 100
    assert "Env2-v0" in text and "  mean q_learning" in text and "note: a note" in text


def test_large_pairwise_tables_are_summarised_per_env():
    from evalkit import report
    rows = [{"env": env, "X": f"a{i}", "Y": f"a{j}", "mean X - mean Y": float(i - j) * (1 + k),
             "p (Welch)": 0.01, "p (Holm)": 0.2 if i == 0 else 0.01, "P(X > Y)": "0.5", "runs needed (80% power)": "9"}
            for k, env in enumerate(["E1", "E2", "E3"]) for i in range(6) for j in range(i + 1, 6)]
    pair = pd.DataFrame(rows)
    assert len(pair) == 45 > report.MAX_PAIRWISE_ROWS
    summary = report._pairwise_summary(pair)
    assert summary["pairs"].tolist() == [15, 15, 15] and summary["p (Holm) < 0.05"].tolist() == [10, 10, 10]
    assert summary.loc[2, "largest difference"] == "a0 - a5: -15"
