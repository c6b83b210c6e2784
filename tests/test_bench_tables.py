"""The benchmarks' own bookkeeping: the agents table accounts for every planned run, and the SB3
comparison keeps each finished run on disk so a stopped run resumes without redoing any."""

import importlib.util
import json
import sys
from pathlib import Path

from evalkit import runner, spec

REPO = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec_ = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec_)
    sys.modules[spec_.name] = mod  # dataclasses look their module up there
    spec_.loader.exec_module(mod)
    return mod


STUDY = """
name = "table"
seed = 3
runs = 5
metric = "final:0.1"
[envs.E]
id = "CartPole-v1"
steps = 100
[algorithms.a]
agent = "tests.fake_agents:train"
config = { fail_seed = %d, crash = "nan", episodes = 10 }
"""


def test_agents_table_shows_runs_used_of_planned_and_why_the_others_are_left_out(write_study, tmp_path, capsys):
    probe = spec.load_study(write_study(STUDY % -1))
    seeds = sorted({r.seed for r in spec.expand(probe)})
    path = write_study(STUDY % seeds[2])  # that seed's run logs a NaN return: diverged
    runner.run_study(spec.load_study(path), tmp_path, runner.Options(backend="serial", progress=False))
    _load("agents_table").main(str(path), str(tmp_path))
    row = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| a |")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "4 / 5"  # before: the diverged run vanished in an isfinite filter, n not shown
    assert "1 diverged left out" in cells[4]
    assert cells[6].startswith("n/a: 0 of 5 runs usable")  # no evaluation episodes: said, not dropped


def test_sb3_comparison_records_each_run_and_resumes_without_redoing_it(tmp_path, monkeypatch, capsys):
    bench = _load("bench_vs_sb3")
    calls = []

    def fake(side):
        def run(row, seed, steps):
            calls.append((side, row.name, seed))
            return {"final": 100.0 + seed, "eval": 200.0 + seed, "wall": 1.0}
        return run

    monkeypatch.setattr(bench, "run_ours", fake("ours"))
    monkeypatch.setattr(bench, "run_sb3", fake("sb3"))
    out = tmp_path / "runs.jsonl"
    args = ["--rows", "dqn-cartpole", "--seeds", "3", "--steps", "10", "--workers", "1", "--out", str(out)]
    monkeypatch.setattr(bench.cf, "ProcessPoolExecutor", bench.cf.ThreadPoolExecutor)  # the fakes in-process
    with open(out, "w") as f:  # one run finished before the stop
        f.write(json.dumps({"row": "dqn-cartpole", "side": "sb3", "seed": 1, "steps": 10,
                            "final": 101.0, "eval": 201.0, "wall": 1.0}) + "\n")
    bench.main(args)
    assert len(calls) == 5 and ("sb3", "dqn-cartpole", 1) not in calls
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert sorted((r["side"], r["seed"]) for r in lines) == sorted((s, i) for s in ("ours", "sb3") for i in range(3))
    table = capsys.readouterr().out
    assert "| dqn-cartpole | CartPole-v1 | 10 |" in table and "| 0.0 [" in table  # same scores: diff 0
    calls.clear()
    bench.main(args + ["--table-only"])
    assert calls == [] and capsys.readouterr().out.count("| dqn-cartpole |") == 2
    got = bench.load_results(str(out))
    assert got[("dqn-cartpole", "ours", 2, 10)] == {"final": 102.0, "eval": 202.0, "wall": 1.0}
    assert len(got) == 6


def test_sb3_verdict_tells_worse_from_too_few_seeds():
    v = _load("bench_vs_sb3").verdict
    assert v((3.0, -4.0, 9.0), 5.0, 20) == "yes"
    assert v((-30.0, -40.0, -20.0), 5.0, 20) == "no: worse by more than delta"
    assert v((-6.0, -20.0, 8.0), 5.0, 20) == "not shown: point estimate below -delta; CI includes 0"
    assert v((-6.0, -20.0, -1.0), 5.0, 20) == "not shown: point estimate below -delta"
    # point 0, lower end -20 at 20 seeds: a half-width of 20 must shrink below 5, 16x the seeds
    assert v((0.0, -20.0, 20.0), 5.0, 20) == "inconclusive (~320 seeds per side)"
    assert v((float("nan"),) * 3, 5.0, 20).startswith("NO")
