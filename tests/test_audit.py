"""Tuning-fairness audit: crafted studies that must pass, warn and fail, rule by rule."""

from __future__ import annotations

import pytest

from evalkit import audit, importer, runner, spec
from evalkit.expected_max import expected_max_performance

FAIR = """
name = "fair"
seed = 3
runs = 10
[envs.CartPole-v1]
steps = 100
[algorithms.a]
agent = "tests.fake_agents:train"
config = {{ quadratic = true, noise = 0.2 }}
sweep = {{ mean = [1.0, 2.0, 3.0] }}
[algorithms.b]
agent = "tests.fake_agents:train"
config = {{ quadratic = true, noise = 0.2 {b_extra} }}
{b_sweep}
[tuning]
runs = 3
"""


def run_audit(write_study, tmp_path, text):
    study = spec.load_study(write_study(text))
    runner.run_study(study, tmp_path, runner.Options(backend="serial", progress=False))
    return audit.audit(study, tmp_path / study.name, reps=200)


def verdict(result, alg, rule):
    return next(f.verdict for f in result.findings if f.algorithm == alg and f.rule == rule)


def test_an_equally_tuned_comparison_passes_budget_range_seed_and_edge_rules(write_study, tmp_path):
    text = FAIR.format(b_extra=", episodes = 10", b_sweep='sweep = { mean = [1.5, 2.0, 2.5] }')
    result = run_audit(write_study, tmp_path, text)
    for alg in ("a", "b"):
        for rule in ("budget", "search_space", "seeds", "edge"):
            assert verdict(result, alg, rule) == "pass", (alg, rule, result.render())
    assert result.budgets["env_steps"].tolist() == [900, 900]
    assert set(result.curves["algorithm"]) == {"a", "b"}


def test_a_defaults_only_baseline_fails_budget_and_search_space(write_study, tmp_path):
    result = run_audit(write_study, tmp_path, FAIR.format(b_extra="", b_sweep=""))
    assert verdict(result, "b", "budget") == "fail" and verdict(result, "b", "search_space") == "fail"
    assert verdict(result, "a", "budget") == "pass"
    assert result.verdicts()["b"] == "fail"


def test_best_setting_on_the_edge_of_its_range_warns(write_study, tmp_path):
    text = FAIR.format(b_extra="", b_sweep='sweep = { mean = [-1.0, 0.0, 1.0] }')  # b's best is its edge, 1.0
    result = run_audit(write_study, tmp_path, text)
    assert verdict(result, "b", "edge") == "warn" and "mean=1" in next(
        f.evidence for f in result.findings if f.algorithm == "b" and f.rule == "edge")
    assert verdict(result, "a", "edge") == "pass"


def test_reported_runs_that_reuse_tuning_seeds_fail(tmp_path):
    csv = tmp_path / "runs.csv"
    rows = ["algorithm,env,run,step,return,phase,hp.lr"]
    for alg, base in (("a", 1.0), ("b", 2.0)):
        for run in range(3):
            for lr in (0.1, 0.2):
                rows.append(f"{alg},E,{run},10,{base + lr + run * 0.01},tune,{lr}")
            rows.append(f"{alg},E,{run},10,{base + run * 0.01},eval,0.2")
    csv.write_text("\n".join(rows) + "\n")
    importer.import_file(csv, "reuse", tmp_path)
    study = spec.study_from_store(tmp_path / "reuse")
    result = audit.audit(study, tmp_path / "reuse", reps=100)
    assert verdict(result, "a", "seeds") == "fail" and "reuse tuning seeds" in result.render()


def test_too_few_runs_for_the_difference_warns_and_enough_passes(write_study, tmp_path):
    text = FAIR.format(b_extra=", episodes = 10", b_sweep='sweep = { mean = [1.5, 2.0, 2.5] }')
    close = run_audit(write_study, tmp_path / "close", text.replace("noise = 0.2", "noise = 3.0"))
    assert "warn" in {verdict(close, "a", "runs"), verdict(close, "b", "runs")}
    far = text.replace("sweep = { mean = [1.5, 2.0, 2.5] }", "sweep = { mean = [5.0, 6.0, 7.0] }")
    result = run_audit(write_study, tmp_path / "far", far)
    assert verdict(result, "a", "runs") == "pass"


def test_expected_max_curves_that_cross_warn():
    # A's settings: 0, 0, 10 -> E[max of 1] = 3.33 < B's 4, E[max of 3] = 7.04 > 4: the ranking flips
    assert expected_max_performance([0, 0, 10], 1) == pytest.approx(10 / 3)
    assert expected_max_performance([0, 0, 10], 3) == pytest.approx(10 * (1 - (2 / 3) ** 3))
    import pandas as pd
    curves = pd.DataFrame({"algorithm": ["a"] * 3 + ["b"] * 3, "budget": [1, 2, 3] * 2,
                           "point": [10 / 3, 10 * (1 - (2 / 3) ** 2), 10 * (1 - (2 / 3) ** 3), 4, 4, 4]})
    findings = audit._rule_budget_curve(curves, ["a", "b"])
    assert {f.verdict for f in findings} == {"warn"} and "flips" in findings[0].evidence
    same = curves.assign(point=[1, 2, 3, 4, 5, 6])
    assert {f.verdict for f in audit._rule_budget_curve(same, ["a", "b"])} == {"pass"}


def test_cli_audit_writes_machine_readable_output(write_study, tmp_path, capsys):
    from evalkit import cli
    path = write_study(FAIR.format(b_extra="", b_sweep=""))
    runner.run_study(spec.load_study(path), tmp_path, runner.Options(backend="serial", progress=False))
    assert cli.main(["audit", str(path), "--root", str(tmp_path), "--reps", "100"]) == 0
    out = capsys.readouterr().out
    assert "b: FAIL" in out and (tmp_path / "fair" / "analysis" / "audit.csv").exists()
    assert (tmp_path / "fair" / "analysis" / "expected_max.parquet").exists()
