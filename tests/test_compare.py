"""evalkit compare: per-env tests and intervals, normalized cross-env aggregates."""

from __future__ import annotations

import numpy as np

from evalkit import cli, compare, runner, spec, stats

STUDY = """
name = "cmp"
seed = 1
runs = 8
[envs.CartPole-v1]
steps = 100
{ref}
[envs.Acrobot-v1]
steps = 100
{ref2}
[algorithms.hi]
agent = "tests.fake_agents:train"
config = {{ mean = 5.0 }}
[algorithms.lo]
agent = "tests.fake_agents:train"
config = {{ mean = 1.0 }}
"""


def test_compare_per_env_and_aggregate(write_study, tmp_path, capsys):
    path = write_study(STUDY.format(ref="", ref2=""))
    study = spec.load_study(path)
    runner.run_study(study, tmp_path, runner.Options(backend="serial", progress=False))
    result = compare.compare(study, tmp_path / "cmp", "hi", "lo", reps=500)
    assert len(result.per_env) == 2 and (result.per_env["p (Holm)"] < 0.01).all()
    assert all(t.startswith("paired t") for t in result.per_env["test"])  # shared seeds: paired
    assert "CDF-normalized" in result.normalization
    poi = result.aggregate[result.aggregate["aggregate"] == "probability of improvement"].iloc[0]
    assert poi["point"] > 0.9
    assert cli.main(["compare", str(path), "--root", str(tmp_path), "--algorithms", "hi", "lo", "--reps", "300"]) == 0
    assert "tolerance" in capsys.readouterr().out


def test_declared_references_give_min_max_normalization(write_study, tmp_path):
    text = STUDY.format(ref="reference = { low = 0.0, high = 10.0 }", ref2="reference = { low = 0.0, high = 5.0 }")
    study = spec.load_study(write_study(text))
    runner.run_study(study, tmp_path, runner.Options(backend="serial", progress=False))
    result = compare.compare(study, tmp_path / "cmp", "hi", "lo", reps=300)
    assert "min-max" in result.normalization
    mean_hi = result.aggregate.query("algorithm == 'hi' and aggregate == 'mean'")["point"].item()
    assert 0.6 < mean_hi < 0.9  # ~ (5/10 + 5/5) / 2 = 0.75


def test_unknown_algorithm_is_a_clear_error(write_study, tmp_path, capsys):
    path = write_study(STUDY.format(ref="", ref2=""))
    runner.run_study(spec.load_study(path), tmp_path, runner.Options(backend="serial", progress=False))
    assert cli.main(["compare", str(path), "--root", str(tmp_path), "--algorithms", "hi", "mid"]) == 2
    assert "'mid' has no stored eval runs" in capsys.readouterr().err
