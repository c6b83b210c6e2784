"""One sweep of malformed inputs: study files, CLI arguments, imported files and API calls.

Each must give a single clear line (CLI: on stderr, exit status 2, no traceback; API: an exception
whose message names what was wrong), never a crash or a half-written result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit import cli, importer, metrics, spec, store
from evalkit.errors import EvalkitError

GOOD = """name = "bad"
seed = 1
runs = 2
[envs.CartPole-v1]
steps = 100
[algorithms.rand]
agent = "random"
"""

# (id, kind, payload, fragment of the message)
CASES = [
    ("study: unknown key", "study", GOOD + "colour = 1\n", "unknown key 'colour'"),
    ("study: runs is a float", "study", GOOD.replace("runs = 2", "runs = 2.5"), "runs: expected an integer"),
    ("study: steps zero", "study", GOOD.replace("steps = 100", "steps = 0"), "steps: expected an integer >= 1"),
    ("study: env id typo", "study", GOOD.replace("CartPole-v1", "Cartpole-v1"), "did you mean CartPole-v1"),
    ("study: agent typo", "study", GOOD.replace('"random"', '"randon"'), "unknown agent 'randon'"),
    ("study: config not a table", "study", GOOD + 'config = 3\n', "config: expected a table"),
    ("study: sweep value not list", "study", GOOD + "sweep = { repeat = 3 }\n", "a list of values or a distribution"),
    ("study: bool for int", "study", GOOD + "config = { repeat = true }\n", "type int"),
    ("study: algorithms empty", "study", GOOD.split("[algorithms")[0] + "[algorithms]\n", "at least one algorithm"),
    ("study: env list wrong", "study", GOOD + 'envs = ["Acrobot-v1"]\n', "env names of this study"),
    ("study: tuning runs zero", "study", GOOD + "[tuning]\nruns = 0\n", "tuning.runs"),
    ("study: not UTF-8", "study_bytes", b"name = \"\xff\xfe\"\n", "UTF-8"),
    ("cli: missing study", "cli", ["run", "/nonexistent/study.toml"], "no such file"),
    ("cli: workers zero", "cli_study", ["run", "{study}", "--workers", "0"], "--workers: expected an integer >= 1"),
    ("cli: negative retries", "cli_study", ["run", "{study}", "--retries", "-1"], "--retries"),
    ("cli: timeout negative", "cli_study", ["run", "{study}", "--timeout", "-5"], "--timeout"),
    ("cli: workers not a number", "cli", ["run", "x.toml", "--workers", "many"], "invalid int value"),
    ("cli: unknown command", "cli", ["frobnicate"], "invalid choice"),
    ("cli: unknown option", "cli", ["status", "x.toml", "--colour"], "unrecognized arguments"),
    ("cli: report on a folder without runs", "cli_dir", ["report", "{dir}"], "stored runs, found none"),
    ("cli: clean without --failed", "cli_study", ["clean", "{study}"], "expected --failed"),
    ("cli: import without --name", "cli", ["import", "x.csv"], "--name"),
    ("cli: import unknown suffix", "cli_file", ["import", "{file}.txt", "--name", "x"], "expected a .csv, .parquet"),
    ("csv: missing columns", "csv", "algorithm,env,step\na,CartPole-v1,1\n", "missing ['run', 'return']"),
    ("csv: non-numeric step", "csv", "algorithm,env,run,step,return\na,E,0,ten,1\n", "column 'step' row 2"),
    ("csv: bad phase", "csv", "algorithm,env,run,step,return,phase\na,E,0,1,1,test\n", "column 'phase'"),
    ("csv: bad mode", "csv", "algorithm,env,run,step,return,mode\na,E,0,1,1,greedy\n", "column 'mode'"),
    ("csv: empty file", "csv", "", "expected a readable CSV"),
    ("csv: path in env name", "csv", "algorithm,env,run,step,return\na,../E,0,1,1\n", "column 'env'"),
    ("json: ragged tasks", "json", '{"scores": {"a": [[1, 2]], "b": [[1, 2, 3]]}}', "same number of tasks"),
    ("json: strings as scores", "json", '{"scores": {"a": [["x"]]}}', "numeric"),
    ("json: no scores", "json", '{"tasks": ["a"]}', "expected JSON"),
    ("api: unknown metric", "api", lambda: metrics.run_scores(_table(), "best"), "metric: expected"),
    ("api: unknown mode", "api", lambda: metrics.run_scores(_table(), "auc", mode="test"), "mode: expected"),
    ("api: empty score matrices", "api", lambda: metrics.score_matrices(pd.DataFrame()), "no completed runs"),
    ("api: parse a non-table", "api", lambda: spec.parse_study({"name": "x", "envs": 3, "algorithms": {}}),
     "envs: expected a table"),
    ("api: load a non-study folder", "api", lambda: spec.study_from_store("/nonexistent"), "found none"),
]


def _table() -> pd.DataFrame:
    return pd.DataFrame({"run_id": ["r"], "algorithm": ["a"], "agent": ["x"], "env": ["E"], "phase": ["eval"],
                         "seed_index": [0], "seed": [1], "setting": ["default"], "budget": [10], "mode": ["train"],
                         "step": [10], "episode": [0], "return": [1.0], "length": [10]})


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(case, tmp_path, capsys, monkeypatch):
    name, kind, payload, fragment = case
    monkeypatch.chdir(tmp_path)
    if kind in ("study", "study_bytes"):
        path = tmp_path / "s.toml"
        path.write_bytes(payload if isinstance(payload, bytes) else payload.encode())
        code = cli.main(["run", str(path), "--dry-run"])
        message = capsys.readouterr().err
    elif kind.startswith("cli"):
        study = tmp_path / "s.toml"
        study.write_text(GOOD)
        (tmp_path / "empty").mkdir()
        (tmp_path / "f.txt").write_text("x")
        args = [a.format(study=study, dir=tmp_path / "empty", file=tmp_path / "f") for a in payload]
        try:
            code = cli.main(args)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        message = capsys.readouterr().err
    elif kind in ("csv", "json"):
        path = tmp_path / f"in.{kind}"
        path.write_text(payload)
        with pytest.raises(EvalkitError) as info:
            importer.import_file(path, "imp", tmp_path / "results")
        code, message = 2, str(info.value)
        assert not (tmp_path / "results" / "imp" / "runs").exists()  # nothing half-written
    else:
        with pytest.raises((EvalkitError, ValueError)) as info:
            payload()
        code, message = 2, str(info.value)
    assert code == 2, message
    assert fragment in message, message
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1, message


def test_the_sweep_covers_at_least_thirty_inputs():
    assert len(CASES) >= 30
