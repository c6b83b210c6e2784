"""Every run accounted for (issue 17): one regression test per defect, and the accounting rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evalkit import accounting, audit, compare, metrics, selection, sensitivity, spec, stats
from tests.messy import rows, write_planned

NAN = math.nan

TWO_ENVS = """
name = "{name}"
seed = 7
runs = {runs}
[envs.CartPole-v1]
steps = 100
[envs.Acrobot-v1]
steps = 100
[algorithms.a]
agent = "tests.fake_agents:train"
{a_extra}
[algorithms.b]
agent = "tests.fake_agents:train"
{b_extra}
{tail}
"""


def _study(write_study, tmp_path, name="acc", runs=4, a_extra="", b_extra="", tail=""):
    path = write_study(TWO_ENVS.format(name=name, runs=runs, a_extra=a_extra, b_extra=b_extra, tail=tail))
    study = spec.load_study(path)
    return study, spec.results_dir(study, tmp_path / "results")


# ------------------------------------------------------------------ the accounting rule

def test_accounting_note_counts_and_reasons_add_up():
    a = accounting.Accounting(10, 7, {"no-episode": 2, "diverged": 1})
    assert a.note() == "n=7 used of 10 planned; excluded: 1 diverged, 2 no-episode"
    assert accounting.Accounting(3, 3).note() == "n=3 used of 3 planned"
    with pytest.raises(ValueError):
        accounting.Accounting(5, 3, {"failed": 1})


def test_run_scores_with_a_catalog_keeps_one_row_per_planned_run_with_its_reason():
    catalog = pd.DataFrame({
        "run_id": list("abcdef"), "algorithm": "x", "agent": "x", "env": "E", "phase": "eval",
        "seed_index": range(6), "seed": range(6), "setting": "s", "budget": 100, "full_budget": 100, "rung": -1,
        "status": ["done", "done", "done", "failed", "missing", "done"], "stale": False,
        "n_episodes": 0, "n_eval_episodes": 0, "diverged_flag": [False] * 5 + [True]})
    eps = pd.DataFrame({"run_id": ["a", "a", "b", "f"], "algorithm": "x", "agent": "x", "env": "E", "phase": "eval",
                        "seed_index": [0, 0, 1, 5], "seed": [0, 0, 1, 5], "setting": "s", "budget": 100,
                        "mode": "train", "step": [50, 100, 100, 100], "episode": [0, 1, 0, 0],
                        "return": [1.0, 3.0, NAN, 2.0], "length": 50})
    runs = metrics.run_scores(eps, "auc", catalog=catalog)
    assert list(runs["run_id"]) == list("abcdef")
    assert list(runs["reason"]) == ["", "diverged", "no-episode", "failed", "missing", "diverged"]
    assert runs["score"].iloc[0] == 2.0 and runs["score"].iloc[1:].isna().all()
    assert accounting.of(runs).note() == "n=1 used of 6 planned; excluded: 1 failed, 1 missing, 2 diverged, 1 no-episode"


# ------------------------------------------------------------------ defect 2: selection's divergence rule

def test_per_env_selection_never_judges_a_diverged_setting_on_its_survivors(write_study, tmp_path):
    study, d = _study(write_study, tmp_path, runs=2, a_extra="sweep = { mean = [1.0, 5.0] }",
                      b_extra="", tail='[tuning]\nruns = 3\nselect = "per_env"')

    def episodes(r):
        if r.phase != "tune":
            return None
        if r.config["mean"] == 5.0 and r.seed_index < 2:  # 2 of its 3 tuning runs diverge
            return rows([5.0, NAN], 100)
        return rows([r.config["mean"]] * 2, 100)
    write_planned(study, d, episodes)
    chosen = selection.select(study, d)
    # before: mean=5.0 was selected on its one surviving run (score 5.0)
    assert chosen.values[("a", "CartPole-v1")] == {"mean": 1.0}
    assert chosen.scores[("a", "CartPole-v1")] == 1.0


def test_tuning_objective_and_selection_share_the_divergence_policy():
    from evalkit import tuning
    runs = pd.DataFrame({"setting": ["p", "p", "q", "q"], "env": "E", "score": [9.0, NAN, 1.0, 2.0],
                         "diverged": [False, True, False, False], "used": [True, False, True, True],
                         "algorithm": "a"})
    obj = tuning.setting_objective(runs)
    means = accounting.setting_means(runs)
    assert obj["p"] == -math.inf and means.set_index("setting").loc["p", "score"] != means.set_index("setting").loc["p", "score"]


# ------------------------------------------------------------------ defect 3: sensitivity with a named subset

def _sens_table():
    # 2 envs, hyperparameters x, y in {0, 1}; per-env best needs both x and y tuned per env
    perf = {("E1", 0, 0): 0.0, ("E1", 0, 1): 0.2, ("E1", 1, 0): 0.5, ("E1", 1, 1): 1.0,
            ("E2", 0, 0): 1.0, ("E2", 0, 1): 0.5, ("E2", 1, 0): 0.2, ("E2", 1, 1): 0.6}
    out = []
    for (e, x, y), p in perf.items():
        for s in range(3):
            out.append({"algorithm": "a", "env": e, "setting": f"x{x}y{y}", "hp.x": x, "hp.y": y,
                        "seed_index": s, "score": p + 0.01 * s})
    return pd.DataFrame(out)


def test_sensitivity_tuning_curve_of_a_named_subset_tunes_only_that_subset():
    full = sensitivity.hyperparameter_sensitivity(_sens_table(), reps=50, seed=0, normalize=False)["a"]
    sub = sensitivity.hyperparameter_sensitivity(_sens_table(), hyperparameters=["x"], reps=50, seed=0,
                                                 normalize=False)["a"]
    # h* = x1y1 (mean 0.81); tuning only x per env with y held at 1: E1 max(0.21, 1.01), E2 max(0.51, 0.61)
    assert sub.cross_env_setting == "x1y1"
    assert sub.tuning_curve[-1] == pytest.approx((1.01 + 0.61) / 2)
    # before: the last point was the per-env tuned score over every hyperparameter (1.01 + 1.01) / 2
    assert sub.tuning_curve[-1] < full.per_env_tuned.point == pytest.approx(1.01)
    assert math.isnan(sub.dimensionality.point)  # x alone never reaches 95% of 1.01


# ------------------------------------------------------------------ defects 5, 6, 12: the audit

def test_audit_expected_max_is_per_env_and_never_pools_raw_returns(write_study, tmp_path):
    study, d = _study(write_study, tmp_path, runs=2, a_extra="sweep = { mean = [1.0, 2.0, 3.0] }",
                      b_extra="sweep = { mean = [1.0, 2.0, 3.0] }", tail='[tuning]\nruns = 2')
    scale = {"CartPole-v1": 1.0, "Acrobot-v1": 1000.0}

    def episodes(r):
        if r.phase != "tune":
            return None
        m = r.config["mean"]
        if r.algorithm == "a":  # a is best in CartPole, worst in Acrobot (thousands)
            v = m if r.env == "CartPole-v1" else -m
        else:
            v = -m if r.env == "CartPole-v1" else m
        return rows([v * scale[r.env]] * 2, 100)
    write_planned(study, d, episodes)
    result = audit.audit(study, d, reps=50)
    assert set(result.curves["env"]) == {"CartPole-v1", "Acrobot-v1"}
    cart = result.curves[(result.curves["env"] == "CartPole-v1") & (result.curves["algorithm"] == "a")]
    from evalkit.expected_max import expected_max_performance
    # per env: a's CartPole settings 1, 2, 3; before: one curve over (CartPole + Acrobot) / 2 raw returns,
    # decided by Acrobot's thousands
    assert cart["point"].max() == pytest.approx(expected_max_performance([1.0, 2.0, 3.0], 3))
    edge = {f.algorithm: f for f in result.findings if f.rule == "edge"}
    assert "CartPole-v1: mean=3" in edge["a"].evidence and "Acrobot-v1: mean=1" in edge["a"].evidence


def test_audit_minimum_detectable_effect_uses_the_compared_setting_runs():
    runs = []
    for alg, base in (("a", 0.0), ("b", 1.0)):
        for setting, offset in (("good", 0.0), ("bad", -100.0)):
            for s in range(5):
                runs.append({"algorithm": alg, "env": "E", "phase": "eval", "setting": setting, "seed_index": s,
                             "score": base + offset + 0.1 * s, "used": True, "reason": "", "diverged": False})
    findings = audit._rule_runs(pd.DataFrame(runs), ["a", "b"])
    # the compared (best) settings differ by 1.0 with SD 0.16: detectable; before: SD of both settings
    # pooled (about 50) made the minimum detectable effect about 90 and the rule warned
    assert all(f.verdict == "pass" for f in findings), [f.evidence for f in findings]


def test_audit_edge_rule_sees_numpy_integer_hyperparameters():
    runs = pd.DataFrame({"algorithm": "a", "env": "E", "phase": "tune", "setting": ["s16", "s32", "s64"] * 2,
                         "hp.batch_size": np.array([16, 32, 64] * 2, dtype=np.int64),
                         "score": [1.0, 2.0, 3.0] * 2, "used": True, "reason": "", "diverged": False})
    (finding,) = audit._rule_edge(runs, ["a"], None)
    assert finding.verdict == "warn" and "batch_size=64" in finding.evidence


# ------------------------------------------------------------------ defect 9: ties in the budget-curve rule

@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_budget_curve_rule_treats_a_tie_at_budget_one_the_same_both_ways(order):
    hi, lo = order
    curves = pd.DataFrame({"algorithm": [hi, lo, hi, lo], "env": "E", "budget": [1, 1, 3, 3],
                           "point": [1.0, 1.0, 2.0, 1.5]})
    findings = audit._rule_budget_curve(curves, ["a", "b"])
    assert {f.verdict for f in findings} == {"pass"}


# ------------------------------------------------------------------ defects 7, 8: compare and the cross-env table

def test_diverged_runs_at_different_seeds_keep_the_algorithm_in_the_cross_env_aggregates(write_study, tmp_path):
    study, d = _study(write_study, tmp_path, runs=4)

    def episodes(r):
        bad = r.algorithm == "a" and ((r.env == "CartPole-v1" and r.seed_index == 0)
                                      or (r.env == "Acrobot-v1" and r.seed_index == 1))
        base, slope = (1.0, 1.5) if r.algorithm == "a" else (0.0, 1.0)
        return rows([base + slope * r.seed_index, NAN if bad else base], 100)
    write_planned(study, d, episodes)
    result = compare.compare(study, d, "a", "b", reps=200)  # before: ValueError traceback
    agg = result.aggregate
    assert set(agg["algorithm"]) >= {"a", "b"}
    assert agg[(agg["algorithm"] == "a") & (agg["aggregate"] == "iqm")]["runs"].iloc[0] == 3
    assert any("n=3 used of 4 planned; excluded: 1 diverged" in n for n in result.notes)

    from evalkit import figures
    data = figures.load(study, d)
    scores = figures.score_matrices(data)
    assert scores is not None and scores["a"].shape == (3, 2)  # before: 'a' silently dropped
    assert any("a: n=6 used of 8 planned; excluded: 2 diverged" in n for n in data.notes)


def test_compare_with_constant_paired_differences_does_not_crash(write_study, tmp_path):
    study, d = _study(write_study, tmp_path, runs=4)
    write_planned(study, d, lambda r: rows([r.seed_index + (1.0 if r.algorithm == "a" else 0.0)] * 2, 100))
    result = compare.compare(study, d, "a", "b", reps=200)  # before: ValueError traceback
    assert len(result.per_env) == 2 and (result.per_env["difference"] == 1.0).all()
    assert result.per_env["test"].str.contains("Wilcoxon").all()
    assert any("constant" in n for n in result.notes)


# ------------------------------------------------------------------ defect 10: normalized_curve_table n

def test_normalized_curve_table_n_is_the_number_of_runs_used():
    from evalkit import plots
    recs = []
    for env in ("E1", "E2"):
        for s in range(4):
            for step in (50, 100):
                if (env, s, step) in {("E1", 0, 50), ("E2", 1, 50)}:
                    continue  # no episode ends in the first window for these runs
                recs.append({"run_id": f"{env}{s}", "algorithm": "a", "agent": "a", "env": env, "phase": "eval",
                             "seed_index": s, "seed": s, "setting": "d", "budget": 100, "mode": "train",
                             "step": step, "episode": step // 50, "return": float(s + step / 100), "length": 50})
    table = pd.DataFrame(recs)
    out = plots.normalized_curve_table(table, {"E1": (0, 10), "E2": (0, 10)}, points=2, reps=50)
    first = out[out["fraction"] == 0.5].iloc[0]
    # the bootstrap uses the seeds with a value in both envs: 2 (seeds 2, 3); before: n = 3
    assert first["n"] == 2


# ------------------------------------------------------------------ defect 11: random streams by name

@pytest.mark.skipif(not hasattr(__import__("evalkit.stats.bootstrap", fromlist=["x"]), "algorithm_rng"),
                    reason="defect 11 is fixed on branch issue-19 (stats.bootstrap.algorithm_rng); runs once merged")
def test_interval_estimates_stream_depends_on_the_algorithm_name_not_its_position():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(10, 3))
    alone = stats.interval_estimates({"zzz": z}, "iqm", reps=300, seed=5)["zzz"]
    with_other = stats.interval_estimates({"zzz": z, "aaa": rng.normal(size=(10, 3))}, "iqm", reps=300, seed=5)["zzz"]
    assert (alone.low, alone.high) == (with_other.low, with_other.high)


# ------------------------------------------------------------------ defect 1: runs without episodes

def test_a_run_without_episodes_stays_a_row_and_the_report_names_it(write_study, tmp_path):
    from evalkit import report
    study, d = _study(write_study, tmp_path, runs=4)
    # runs at seed indices 0 and 1 of algorithm a finish their budget without one episode
    write_planned(study, d, lambda r: [] if r.algorithm == "a" and r.seed_index < 2 else rows([1.0, 2.0], 100))
    text = report.text_report(study, d, reps=200)
    # before: "n=2" with no note (the two runs vanished: survivorship bias)
    assert text.count("n=2 of 4 planned (excluded: 2 no-episode)") == 2
    from evalkit import results
    runs = results.load(study, d).runs("eval")
    assert len(runs) == 16 and (runs["reason"] == "no-episode").sum() == 4


# ------------------------------------------------------------------ defect 4: successive halving

HALVING = """
name = "halving"
seed = 4
runs = 2
[envs.CartPole-v1]
steps = 90
[algorithms.a]
agent = "tests.fake_agents:train"
sweep = { mean = [1.0, 2.0, 3.0], episodes = [3, 9] }
[algorithms.b]
agent = "tests.fake_agents:train"
sweep = { mean = [1.0, 2.0, 3.0] }
[tuning]
runs = 2
select = "cross_env"
scheduler = "successive_halving"
eta = 3
min_steps = 30
"""


def test_successive_halving_rungs_are_complete_runs_everywhere(write_study, tmp_path, capsys):
    from evalkit import cli, runner, status
    path = write_study(HALVING)
    runner.run_study(spec.load_study(path), tmp_path, runner.Options(backend="serial", progress=False))
    study, d = spec.load_study(path), tmp_path / "halving"
    table = status.study_status(study, d)
    tune = table[table["phase"] == "tune"]
    # before: a 12 planned, 2 done, 10 missing and 32 orphans
    assert (tune["planned"] == tune["done"]).all() and tune["missing"].sum() == 0 and not table.attrs.get("orphans")
    budgets = audit.audit(study, d, reps=20).budgets.set_index("algorithm")
    # a: 6 settings x 2 runs x 30 steps + 2 x 2 x 90 = 720; before: only the last rung, 360 (1 setting)
    assert budgets.loc["a", "env_steps"] == 6 * 2 * 30 + 2 * 2 * 90 and budgets.loc["a", "settings"] == 6
    outputs = {}
    for source in (str(path), str(d)):
        for cmd in (["chs", "--reps", "50"], ["sensitivity", "--reps", "50"], ["audit", "--reps", "20"]):
            assert cli.main([cmd[0], source, "--root", str(tmp_path), *cmd[1:]]) == 0
            outputs[(source, cmd[0])] = "\n".join(ln for ln in capsys.readouterr().out.splitlines()
                                                  if not ln.startswith("written:"))
    for cmd in ("chs", "sensitivity", "audit"):  # before: chs from the folder disagreed with the study file
        assert outputs[(str(path), cmd)] == outputs[(str(d), cmd)], cmd
    assert "stopped-at-rung" in outputs[(str(path), "chs")]
    assert "rung 0" in outputs[(str(path), "sensitivity")]


def test_cross_env_matrices_refuse_raw_returns_of_several_envs():
    from evalkit.errors import EvalkitError
    runs = pd.DataFrame({"label": "a", "env": ["E1", "E2"] * 2, "seed_index": [0, 0, 1, 1],
                         "score": [1.0, 1000.0, 2.0, 2000.0], "used": True, "reason": ""})
    with pytest.raises(EvalkitError, match="refusing to pool raw returns of 2 envs"):
        accounting.score_matrices(runs)
    scores, envs, _ = accounting.score_matrices(runs.assign(norm=runs["score"] / 2000), score="norm")
    assert scores["a"].shape == (2, 2) and envs == ["E1", "E2"]
