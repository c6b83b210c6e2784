"""Study-file parsing, validation and expansion (DESIGN.md sections 2-3)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from evalkit import seeding, spec
from evalkit.errors import StudyError

GOOD = """
name = "t"
seed = 7
runs = 2
metric = "auc"

[envs.CartPole-v1]
steps = 1000

[algorithms.rand]
agent = "random"
sweep = { repeat = [1, 2] }

[algorithms.fake]
agent = "tests.fake_agents:train"
config = { mean = 3.0 }
"""

# (description, TOML text, substring the one-line error must contain)
MALFORMED = [
    ("unknown top-level key", GOOD + "\nbogus = 1\n", "bogus"),
    ("bad TOML syntax", "name = \n", "valid TOML"),
    ("missing name", GOOD.replace('name = "t"', ""), "name: expected this key"),
    ("name with path separator", GOOD.replace('name = "t"', 'name = "../evil"'), "path separators"),
    ("zero runs", GOOD.replace("runs = 2", "runs = 0"), "runs: expected an integer >= 1"),
    ("runs wrong type", GOOD.replace("runs = 2", 'runs = "five"'), "runs: expected an integer"),
    ("negative steps", GOOD.replace("steps = 1000", "steps = -5"), "envs.CartPole-v1.steps"),
    ("missing steps", GOOD.replace("steps = 1000", ""), "envs.CartPole-v1.steps"),
    ("unknown env id", GOOD.replace("[envs.CartPole-v1]", "[envs.CartPol-v9]"), "registered gymnasium"),
    ("unknown agent", GOOD.replace('agent = "random"', 'agent = "nope"'), "algorithms.rand.agent"),
    ("unknown hyperparameter in config", GOOD.replace("mean = 3.0", "lr = 3.0"), "algorithms.fake.config.lr"),
    ("unknown hyperparameter in sweep", GOOD.replace("sweep = { repeat", "sweep = { gamma"), "algorithms.rand.sweep.gamma"),
    ("wrong hyperparameter type", GOOD.replace("mean = 3.0", 'mean = "high"'), "type float"),
    ("empty sweep list", GOOD.replace("[1, 2]", "[]"), "non-empty list"),
    ("hyperparameter out of range", GOOD.replace("[1, 2]", "[0, 2]"), "in [1, 100]"),
    ("duplicate algorithm name", GOOD + '\n[algorithms.rand]\nagent = "random"\n', "valid TOML"),
    ("unknown metric", GOOD.replace('metric = "auc"', 'metric = "best"'), "metric"),
    ("final fraction out of range", GOOD.replace('metric = "auc"', 'metric = "final:1.5"'), "fraction"),
    ("unknown env key", GOOD.replace("steps = 1000", "steps = 1000\nstep = 3"), "unknown key 'step'"),
    ("distribution without samples", GOOD.replace("sweep = { repeat = [1, 2] }", ""
                                                   ).replace("config = { mean = 3.0 }",
                                                             "sweep = { mean = { uniform = [0, 1] } }"), "samples"),
    ("loguniform with low <= 0", GOOD.replace("config = { mean = 3.0 }",
                                              "samples = 2\nsweep = { mean = { loguniform = [0, 1] } }"), "0 < low < high"),
    ("unknown distribution", GOOD.replace("config = { mean = 3.0 }",
                                          "samples = 2\nsweep = { mean = { normal = [0, 1] } }"), "distribution"),
    ("reference low >= high", GOOD.replace("steps = 1000", "steps = 1000\nreference = { low = 5, high = 1 }"), "low < high"),
    ("tuning select unknown", GOOD + '\n[tuning]\nselect = "best"\n', "tuning.select"),
    ("negative seed", GOOD.replace("seed = 7", "seed = -1"), "seed: expected an integer >= 0"),
    ("env_config for an env not in the study", GOOD.replace("config = { mean = 3.0 }",
                                                            'env_config = { "Acrobot-v1" = { mean = 1.0 } }'), "env_config"),
    ("no envs", GOOD.replace("[envs.CartPole-v1]\nsteps = 1000", "[envs]"), "at least one environment"),
    ("bad entry point", GOOD.replace("steps = 1000", 'steps = 1000\nentry = "nosuchmodule_x:Env"'), "importable module"),
    ("agent import path without function", GOOD.replace('"tests.fake_agents:train"', '"tests.fake_agents:nothing"'), "no attribute"),
    ("resources with zero cpus", GOOD + "\n[resources]\ncpus = 0\n", "resources.cpus"),
    ("evaluation every zero", GOOD + "\n[evaluation]\nevery = 0\n", "evaluation.every"),
]


@pytest.mark.parametrize("what,text,fragment", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_study_is_rejected_with_file_and_key(write_study, what, text, fragment):
    path = write_study(text)
    with pytest.raises(StudyError) as info:
        spec.load_study(path)
    message = str(info.value)
    assert str(path) in message
    assert fragment in message
    assert "\n" not in message.strip()


def test_cli_reports_a_malformed_study_in_one_line_with_exit_2(write_study):
    path = write_study(GOOD.replace("runs = 2", "runs = 0"))
    proc = subprocess.run([sys.executable, "-m", "evalkit.cli", "run", str(path), "--dry-run"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "runs: expected an integer >= 1" in lines[0] and str(path) in lines[0]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(StudyError, match="no such file"):
        spec.load_study(tmp_path / "absent.toml")


def test_expansion_counts_and_config_layers(write_study):
    study = spec.load_study(write_study(GOOD))
    runs = spec.expand(study)
    assert len(runs) == (2 + 1) * 2  # rand has two settings, fake one; two runs each
    fake = [r for r in runs if r.algorithm == "fake"]
    assert all(r.config["mean"] == 3.0 and r.config["episodes"] == 20 for r in fake)
    assert {r.config["repeat"] for r in runs if r.algorithm == "rand"} == {1, 2}
    assert all(r.phase == "eval" for r in runs)


def test_run_ids_stable_under_reordering_and_sensitive_to_hyperparameters(write_study):
    a = {r.run_id for r in spec.expand(spec.load_study(write_study(GOOD, "a.toml")))}
    parts = GOOD.split("[algorithms.rand]")
    reordered = parts[0] + "[algorithms.fake]" + parts[1].split("[algorithms.fake]")[1] + "\n[algorithms.rand]" + \
        parts[1].split("[algorithms.fake]")[0]
    b = {r.run_id for r in spec.expand(spec.load_study(write_study(reordered, "b.toml")))}
    assert a == b
    c = {r.run_id for r in spec.expand(spec.load_study(write_study(GOOD.replace("3.0", "3.5"), "c.toml")))}
    assert len(a & c) == 4 and len(c - a) == 2  # only the changed algorithm's runs get new ids


def test_seeds_shared_across_algorithms_and_disjoint_between_phases(write_study):
    study = spec.load_study(write_study(GOOD + "\n[tuning]\nruns = 3\n"))
    runs = spec.expand(study)
    by_index = {}
    for r in runs:
        by_index.setdefault(r.seed_index, set()).add(r.seed)
    assert all(len(s) == 1 for s in by_index.values())  # common random numbers
    tune = {r.seed for r in runs}
    evals = {seeding.run_seed(study.seed, "CartPole-v1", "eval", i) for i in range(100)}
    assert tune.isdisjoint(evals)
    assert len(evals) == 100


def test_seed_derivation_is_a_pure_function_of_its_inputs():
    s = seeding.run_seed(7, "CartPole-v1", "eval", 3)
    assert s == seeding.run_seed(7, "CartPole-v1", "eval", 3)
    assert s != seeding.run_seed(8, "CartPole-v1", "eval", 3)
    assert s != seeding.run_seed(7, "Acrobot-v1", "eval", 3)
    assert s != seeding.run_seed(7, "CartPole-v1", "tune", 3)
    assert 0 <= s < 2**63


def test_random_search_draws_are_reproducible_and_in_range(write_study):
    text = GOOD.replace("config = { mean = 3.0 }",
                        "samples = 5\nsweep = { mean = { loguniform = [0.001, 10.0] }, episodes = { randint = [1, 4] } }")
    a = spec.settings(*(lambda s: (s, s.algorithm("fake")))(spec.load_study(write_study(text, "a.toml"))))
    b = spec.settings(*(lambda s: (s, s.algorithm("fake")))(spec.load_study(write_study(text, "b.toml"))))
    assert a == b and len(a) == 5
    assert all(0.001 <= p["mean"] <= 10 and p["episodes"] in (1, 2, 3) for p in a)
