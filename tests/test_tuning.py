"""Fair tuning: equal budgets, reproducible and resumable proposals, seeds disjoint from reporting."""

from __future__ import annotations

import json

import pytest

from evalkit import runner, spec, store, tuning
from evalkit.errors import StudyError

STUDY = """
name = "tuned"
seed = 4
runs = 3
[envs.CartPole-v1]
steps = 90
[envs.Acrobot-v1]
steps = 90
[algorithms.a]
agent = "tests.fake_agents:train"
sweep = {{ mean = {a_space}, episodes = [3, 9] }}
[algorithms.b]
agent = "tests.fake_agents:train"
sweep = {{ mean = {b_space} }}
[tuning]
runs = 2
{tuning}
"""


def run(path, root):
    return runner.run_study(spec.load_study(path), root, runner.Options(backend="serial", progress=False))


def test_optuna_search_records_proposals_and_a_resumed_study_replays_them(write_study, tmp_path):
    text = STUDY.format(a_space="{ uniform = [0.0, 10.0] }", b_space="{ loguniform = [0.1, 10.0] }",
                        tuning='search = "optuna"\nbudget = 6\nbatch = 2')
    path = write_study(text)
    summary = run(path, tmp_path / "full")
    assert summary.ok
    study = spec.load_study(path)
    algs = {a.name: a for a in study.algorithms}
    full = {a: tuning.load_proposals(study, tmp_path / "full" / "tuned", algs[a]) for a in ("a", "b")}
    assert all(len(p) == 6 for p in full.values())
    assert len({json.dumps(p, sort_keys=True) for p in full["b"]}) == 6  # no repeated proposal
    # a fresh study stopped after its first batch, then resumed, proposes exactly the same settings
    partial = tmp_path / "partial" / "tuned"
    run(path, tmp_path / "partial")
    for a in ("a", "b"):
        first_batch = tuning.load_proposals(study, partial, algs[a])[:2]
        tuning.proposal_path(study, partial, algs[a]).write_text(json.dumps(first_batch))
    for f in (partial / "runs").glob("*/*/*.parquet"):
        if store.read_meta(f)["setting_values"] not in full[store.read_meta(f)["algorithm"]][:2]:
            f.unlink()
    run(path, tmp_path / "partial")
    assert {a: tuning.load_proposals(study, partial, algs[a]) for a in ("a", "b")} == full
    # editing the search space starts a new search: the old proposals are not replayed
    edited = spec.load_study(write_study(text.replace("[0.1, 10.0]", "[0.2, 10.0]"), "edited.toml"))
    assert tuning.load_proposals(edited, partial, edited.algorithm("b")) == []
    sel_full = json.loads((tmp_path / "full" / "tuned" / "selection.json").read_text())
    sel_partial = json.loads((partial / "selection.json").read_text())
    assert sel_full == sel_partial
    # the best setting of b (returns ~ N(mean, 1)) is its largest mean
    best_b = max(p["mean"] for p in full["b"])
    assert all(s["setting"]["mean"] == best_b for s in sel_full["selected"] if s["algorithm"] == "b")


def test_grid_budget_gives_every_algorithm_the_same_number_of_settings(write_study, tmp_path):
    text = STUDY.format(a_space="[1.0, 2.0, 3.0]", b_space="[1.0, 2.0, 3.0, 4.0]", tuning='search = "grid"\nbudget = 4')
    study = spec.load_study(write_study(text))
    per_alg = {a.name: len(spec.settings(study, a)) for a in study.algorithms}
    assert per_alg == {"a": 4, "b": 4}
    run(study.path, tmp_path)
    spent = tuning.budget_spent(store.load(tmp_path / "tuned").query("phase == 'tune'"))
    assert spent["settings"].tolist() == [4, 4] and spent["runs"].tolist() == [16, 16]
    assert spent["env_steps"].tolist() == [16 * 90, 16 * 90]


def test_grid_smaller_than_the_budget_is_rejected(write_study):
    text = STUDY.format(a_space="[1.0]", b_space="[1.0, 2.0]", tuning='search = "grid"\nbudget = 3')
    with pytest.raises(StudyError, match="tuning.budget = 3"):
        spec.load_study(write_study(text))


def test_random_search_without_budget_is_rejected(write_study):
    text = STUDY.format(a_space="[1.0]", b_space="[1.0, 2.0]", tuning='search = "random"')
    with pytest.raises(StudyError, match="tuning.budget"):
        spec.load_study(write_study(text))


def test_tuning_and_evaluation_seeds_are_disjoint_in_the_stored_runs(write_study, tmp_path):
    text = STUDY.format(a_space="{ uniform = [0.0, 10.0] }", b_space="{ uniform = [0.0, 10.0] }",
                        tuning='search = "random"\nbudget = 3')
    run(write_study(text), tmp_path)
    table = store.load(tmp_path / "tuned").drop_duplicates("run_id")
    tune, evals = set(table[table.phase == "tune"]["seed"]), set(table[table.phase == "eval"]["seed"])
    assert tune and evals and tune.isdisjoint(evals)
    assert table[table.phase == "eval"].groupby(["algorithm", "env"]).size().tolist() == [3, 3, 3, 3]


def test_successive_halving_stops_bad_settings_early_and_records_their_budget(write_study, tmp_path):
    text = STUDY.format(a_space="[1.0, 2.0, 3.0]", b_space="[1.0, 2.0, 3.0]",
                        tuning='search = "grid"\nscheduler = "successive_halving"\neta = 3\nmin_steps = 30')
    run(write_study(text), tmp_path)
    tune = store.load(tmp_path / "tuned").query("phase == 'tune'").drop_duplicates("run_id")
    rungs = tune.groupby(["algorithm", "budget"])["setting"].nunique()
    assert rungs.loc[("a", 30)] == 6 and rungs.loc[("a", 90)] == 2
    assert rungs.loc[("b", 30)] == 3 and rungs.loc[("b", 90)] == 1
    sel = json.loads((tmp_path / "tuned" / "selection.json").read_text())
    assert {s["setting"]["mean"] for s in sel["selected"]} == {3.0}


def test_tuning_agnostic_mode_draws_hyperparameters_per_run(write_study, tmp_path):
    text = """
name = "agnostic"
    seed = 2
    runs = 6
    mode = "tuning_agnostic"
    [envs.CartPole-v1]
    steps = 50
    [algorithms.a]
    agent = "tests.fake_agents:train"
    sweep = { mean = { uniform = [0.0, 10.0] }, episodes = [2, 4] }
    """
    study = spec.load_study(write_study(text))
    runs = spec.expand(study)
    assert len(runs) == 6 and {r.setting for r in runs} == {"agnostic"}
    means = [r.config["mean"] for r in runs]
    assert len(set(means)) == 6 and all(0 <= m <= 10 for m in means)
    assert [r.config["mean"] for r in spec.expand(spec.load_study(study.path))] == means  # reproducible
    from evalkit import metrics
    runner.run_study(study, tmp_path, runner.Options(backend="serial", progress=False))
    scores = metrics.run_scores(store.load(tmp_path / "agnostic"))
    assert set(scores["label"]) == {"a"} and len(scores) == 6


def test_selected_integer_hyperparameters_keep_their_type_next_to_algorithms_without_them(write_study, tmp_path):
    text = """
    name = "typed"
    seed = 1
    runs = 2
    [envs.CartPole-v1]
    steps = 60
    [algorithms.a]
    agent = "tests.fake_agents:train"
    sweep = { episodes = { randint = [3, 10] } }
    [algorithms.r]
    agent = "random"
    sweep = { repeat = [1, 2] }
    [tuning]
    runs = 2
    search = "random"
    budget = 2
    """
    study = spec.load_study(write_study(text))
    summary = run(study.path, tmp_path)
    assert summary.ok, summary.failed  # an int hyperparameter read back as 7.0 would crash the agent
    sel = json.loads((tmp_path / "typed" / "selection.json").read_text())
    values = {s["algorithm"]: s["setting"] for s in sel["selected"]}
    assert isinstance(values["a"]["episodes"], int) and isinstance(values["r"]["repeat"], int)
