"""Sensitivity and CHS end to end: a tiny two-stage study run by evalkit, analysed from the CLI."""

from __future__ import annotations

import json

import pandas as pd

from evalkit import cli, runner, spec

CHS_TINY = """
name = "chs_tiny"
seed = 11
runs = 4                      # stage 2: fresh seeds of the selected setting
[envs.CartPole-v1]
steps = 60
[envs.Acrobot-v1]
steps = 60
[algorithms.a]
agent = "tests.fake_agents:train"
config = { quadratic = true, noise = 0.3 }
sweep = { mean = [1.0, 2.0, 3.0], episodes = [5, 10] }
[algorithms.b]
agent = "tests.fake_agents:train"
config = { noise = 0.3 }
sweep = { mean = [0.0, 0.5] }
[tuning]
runs = 3
select = "cross_env"
"""


def test_chs_two_stage_study_selects_and_scores_from_the_cli(write_study, tmp_path, capsys):
    path = write_study(CHS_TINY)
    study = spec.load_study(path)
    summary = runner.run_study(study, tmp_path, runner.Options(backend="serial", progress=False))
    assert summary.ok and summary.completed == (6 + 2) * 2 * 3 + 2 * 2 * 4
    chosen = json.loads((tmp_path / "chs_tiny" / "selection.json").read_text())
    a_setting = {s["setting"]["mean"] for s in chosen["selected"] if s["algorithm"] == "a"}
    b_setting = {s["setting"]["mean"] for s in chosen["selected"] if s["algorithm"] == "b"}
    assert a_setting == {2.0} and b_setting == {0.5}  # one setting for all envs, the best one
    assert cli.main(["chs", str(path), "--root", str(tmp_path), "--reps", "500"]) == 0
    out = capsys.readouterr().out
    assert "selection (cross_env" in out and "CHS score" in out
    table = pd.read_csv(tmp_path / "chs_tiny" / "analysis" / "chs.csv")
    assert {"a", "b"} <= set(table["algorithm"])


def test_sensitivity_from_the_cli_on_a_swept_study(write_study, tmp_path, capsys):
    path = write_study(CHS_TINY)
    runner.run_study(spec.load_study(path), tmp_path, runner.Options(backend="serial", progress=False))
    assert cli.main(["sensitivity", str(path), "--root", str(tmp_path), "--reps", "300"]) == 0
    out = capsys.readouterr().out
    assert "hyperparameter sensitivity" in out
    table = pd.read_csv(tmp_path / "chs_tiny" / "analysis" / "sensitivity.csv")
    assert set(table["algorithm"]) == {"a", "b"}


def test_sensitivity_of_a_study_without_sweeps_is_a_clear_error(write_study, tmp_path, capsys):
    text = CHS_TINY.replace("sweep = { mean = [1.0, 2.0, 3.0], episodes = [5, 10] }", "").replace(
        "sweep = { mean = [0.0, 0.5] }", "").replace("[tuning]\nruns = 3\nselect = \"cross_env\"", "")
    path = write_study(text)
    runner.run_study(spec.load_study(path), tmp_path, runner.Options(backend="serial", progress=False))
    assert cli.main(["sensitivity", str(path), "--root", str(tmp_path), "--reps", "100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evalkit: error:") and len(err.strip().splitlines()) == 1
