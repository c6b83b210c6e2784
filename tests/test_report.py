"""``evalkit report`` and ``evalkit plot`` end to end on small studies of synthetic agents."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from evalkit import cli, metrics, runner, spec
from evalkit.status import load_current

SIMPLE = """
name = "simple"
seed = 3
runs = 5
metric = "auc"
description = "<script>alert('study')</script> & co"
[envs.CartPole-v1]
steps = 200
reference = { low = 0.0, high = 3.0 }
[envs.Acrobot-v1]
steps = 200
reference = { low = 0.0, high = 3.0 }
[algorithms.a]
agent = "tests.fake_agents:train"
config = { mean = 1.0, noise = 0.5, tag = "<img src=x onerror=alert(1)>" }
[algorithms.b]
agent = "tests.fake_agents:train"
config = { mean = 2.0, noise = 0.5 }
"""

TUNED = """
name = "tuned"
seed = 11
runs = 4
[envs.CartPole-v1]
steps = 60
[algorithms.a]
agent = "tests.fake_agents:train"
config = { quadratic = true, noise = 0.3 }
sweep = { mean = [1.0, 2.0, 3.0] }
[algorithms.b]
agent = "tests.fake_agents:train"
config = { noise = 0.3 }
[tuning]
runs = 3
"""


def run(path, root):
    summary = runner.run_study(spec.load_study(path), root, runner.Options(backend="serial", progress=False))
    assert summary.ok
    return spec.load_study(path)


def test_report_writes_markdown_html_and_figures_with_the_computed_numbers(write_study, tmp_path, capsys):
    path = write_study(SIMPLE)
    study = run(path, tmp_path)
    assert cli.main(["report", str(path), "--root", str(tmp_path), "--reps", "500", "--latex"]) == 0
    out = tmp_path / "simple"
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    # the table's means are the means of the per-run scores (metric auc)
    runs = metrics.run_scores(load_current(study, out), "auc")
    for (alg, env), g in runs.groupby(["algorithm", "env"]):
        row = [ln for ln in md.splitlines() if ln.startswith(f"| {alg} | {env} | 5 | 5 | - | 0 |")][0]  # n, planned, excluded, diverged
        assert f"| {g['score'].mean():.4g} [" in row
    for name in ("curves", "distributions", "aggregates", "improvement", "profiles", "normalized_curves"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
        assert f"(figures/{name}.png)" in md
    # self-contained: every figure embedded, no reference to files next to it
    # 6 study figures + the reliability ranks (issue 24)
    assert html.count('src="data:image/png;base64,') == 7 and 'src="figures/' not in html
    assert "Across environments" in md and "min-max normalized" in md
    assert "no algorithm was tuned" in md  # the untuned-baselines warning
    tex = (out / "report_tables.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\begin{tabular}" in tex
    assert "tests.fake\\_agents:train" in tex and "<img" not in tex
    assert "written:" in capsys.readouterr().out


def test_html_report_escapes_every_string_from_the_study_and_data(write_study, tmp_path):
    path = write_study(SIMPLE)
    run(path, tmp_path)
    assert cli.main(["report", str(path), "--root", str(tmp_path), "--reps", "200", "--no-figures"]) == 0
    html = (tmp_path / "simple" / "report.html").read_text()
    md = (tmp_path / "simple" / "report.md").read_text()
    for doc in (html, md):
        assert "<script>" not in doc and "<img src=x" not in doc
        assert "&lt;script&gt;" in doc and "&lt;img src=x onerror=alert(1)&gt;" in doc
    tags = set(re.findall(r"<(/?[a-zA-Z0-9]+)", html))
    assert tags <= {"html", "/html", "head", "/head", "meta", "title", "/title", "style", "/style", "body", "/body",
                    "h1", "/h1", "h2", "/h2", "h3", "/h3", "p", "/p", "ul", "/ul", "li", "/li", "table", "/table",
                    "caption", "/caption", "thead", "/thead", "tbody", "/tbody", "tr", "/tr", "th", "/th", "td",
                    "/td", "!DOCTYPE"}


def test_report_on_a_partial_study_counts_missing_runs_per_cell(write_study, tmp_path):
    path = write_study(SIMPLE)
    run(path, tmp_path)
    path.write_text(path.read_text().replace("runs = 5", "runs = 7"))  # two more seeds asked for, not run
    study = spec.load_study(path)
    assert cli.main(["report", str(path), "--root", str(tmp_path), "--reps", "200", "--no-figures"]) == 0
    md = (tmp_path / "simple" / "report.md").read_text()
    status = [ln for ln in md.splitlines() if ln.startswith("| a | CartPole-v1 | eval |")][0]
    assert [c.strip() for c in status.strip("|").split("|")][3:] == ["7", "5", "0", "2", "0"]
    assert "2 of 7 runs missing" in md
    assert len(study.algorithms) == 2


def test_tuned_study_report_has_budgets_chosen_settings_audit_and_sensitivity(write_study, tmp_path):
    path = write_study(TUNED)
    run(path, tmp_path)
    assert cli.main(["report", str(path), "--root", str(tmp_path), "--reps", "300"]) == 0
    md = (tmp_path / "tuned" / "report.md").read_text()
    assert "## Tuning" in md and "| a | 3 | 9 | 540 |" in md       # 3 settings x 3 runs x 60 steps
    row = [ln for ln in md.splitlines() if ln.startswith("| a | CartPole-v1 | 3 settings, 9 runs, 540 steps |")][0]
    assert "| mean=2 |" in row and "| 4 |" in row                    # best setting of the quadratic agent, 4 eval runs
    assert "Tuning-fairness audit" in md and "| b | fail |" in md      # b was never tuned
    assert "tuning audit, b: FAIL (budget)" in md
    assert "Hyperparameter sensitivity" in md
    figs = tmp_path / "tuned" / "figures"
    assert (figs / "expected_max.png").exists() and (figs / "sensitivity_plane.png").exists()
    assert (figs / "sensitivity_mean.png").exists()


def test_plot_command_writes_the_requested_kinds(write_study, tmp_path, capsys):
    path = write_study(SIMPLE)
    run(path, tmp_path)
    out = tmp_path / "figs"
    assert cli.main(["plot", str(path), "--root", str(tmp_path), "--kind", "distributions,curves", "--out", str(out),
                     "--format", "png", "--reps", "200", "--size", "single"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "distributions.png"]
    assert cli.main(["plot", str(path), "--root", str(tmp_path), "--kind", "violins"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--kind" in err[0] and "violins" in err[0]
    assert cli.main(["plot", str(path), "--root", str(tmp_path), "--format", "gif"]) == 2


def test_report_and_plot_of_a_study_without_runs_are_clear(write_study, tmp_path, capsys):
    path = write_study(SIMPLE)
    assert cli.main(["plot", str(path), "--root", str(tmp_path)]) == 2
    assert "no stored runs" in capsys.readouterr().err
    assert cli.main(["report", str(path), "--root", str(tmp_path)]) == 0
    assert not (tmp_path / "simple" / "report.html").exists()


def test_report_tables_survive_diverged_runs(write_study, tmp_path):
    text = SIMPLE.replace('config = { mean = 2.0, noise = 0.5 }', 'config = { mean = 2.0, noise = 0.5, crash = "nan", '
                          'fail_seed = SEED }')
    path = write_study(SIMPLE)
    runs = spec.expand(spec.load_study(path))
    seed = [r.seed for r in runs if r.algorithm == "b" and r.env == "CartPole-v1"][0]
    path = write_study(text.replace("SEED", str(seed)))
    run(path, tmp_path)
    assert cli.main(["report", str(path), "--root", str(tmp_path), "--reps", "200"]) == 0
    md = (tmp_path / "simple" / "report.md").read_text()
    row = [ln for ln in md.splitlines() if ln.startswith("| b | CartPole-v1 | 4 | 5 | 1 diverged | 1 |")]
    assert row, "diverged run counted and left out"
    assert "1 diverged runs" in md
    assert np.isfinite(pd.read_parquet(next((tmp_path / "simple" / "runs").rglob("*.parquet")))["return"]).any()


def test_last_evaluation_cell_counts_runs_that_never_evaluated(write_study, tmp_path):
    text = SIMPLE.replace('agent = "tests.fake_agents:train"\nconfig = { mean = 2.0, noise = 0.5 }',
                          'agent = "tests.fake_agents:train_evaluated"\nconfig = { mean = 2.0, noise = 0.5, '
                          'fail_seed = SEED }')
    assert text != SIMPLE
    path = write_study(text.replace("SEED", "-1"))
    seed = [r.seed for r in spec.expand(spec.load_study(path)) if r.algorithm == "b" and r.env == "CartPole-v1"][0]
    path = write_study(text.replace("SEED", str(seed)))  # that run trains but ends before its evaluation
    run(path, tmp_path)
    assert cli.main(["report", str(path), "--root", str(tmp_path), "--reps", "200"]) == 0
    md = (tmp_path / "simple" / "report.md").read_text()
    row = [ln for ln in md.splitlines() if ln.startswith("| b | CartPole-v1 | 5 | 5 |")][0]
    # before: the mean of the 4 evaluated runs, with nothing saying a run was missing
    assert "(4 of 5 runs: 1 no-episode)" in row
    other = [ln for ln in md.splitlines() if ln.startswith("| b | Acrobot-v1 | 5 | 5 |")]
    assert other and " of 5 runs" not in other[0]
