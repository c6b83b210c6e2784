"""evalkit import refuses bad input in one line naming the file, skips or stops as asked, and an
import is atomic: a failed one leaves the study exactly as it was."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from evalkit import cli, importers, store
from evalkit.errors import EvalkitError
from evalkit.importers import identity

pytest.importorskip("tensorboard")


def monitor_file(path, returns, env="CartPole-v1"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{r},{10 + i},{0.1 * i}\n" for i, r in enumerate(returns))
    path.write_text(f'#{{"t_start": 1700000000.0, "env_id": "{env}"}}\nr,l,t\n' + rows)


def cleanrl_events(folder, seed):
    from torch.utils.tensorboard import SummaryWriter
    w = SummaryWriter(str(folder))
    w.add_text("hyperparameters", f"|param|value|\n|-|-|\n|exp_name|dqn|\n|seed|{seed}|\n|env_id|CartPole-v1|")
    for k in range(1, 20):
        w.add_scalar("charts/episodic_return", float(k), 10 * k)
    w.close()
    return next(folder.glob("events.out.tfevents.*"))


@pytest.fixture
def mixed(tmp_path):
    """Two good CleanRL runs, a corrupted event file, a monitor file with a bad cell, a zoo run
    whose evaluations.npz needs pickle."""
    logs = tmp_path / "logs"
    for seed in (1, 2):
        cleanrl_events(logs / "runs" / f"CartPole-v1__dqn__{seed}__1700000000", seed)
    bad = cleanrl_events(logs / "runs" / "CartPole-v1__dqn__3__1700000000", 3)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2: len(data) // 2 + 8] = b"garbage!"
    bad.write_bytes(bytes(data))
    monitor_file(logs / "sb3" / "ppo_seed1.monitor.csv", [1.0, 2.0])
    (logs / "sb3" / "ppo_seed1.monitor.csv").write_text((logs / "sb3" / "ppo_seed1.monitor.csv").read_text() + "=1+1,10,3\n")
    zoo = logs / "zoo" / "ppo" / "CartPole-v1_1"
    (zoo / "CartPole-v1").mkdir(parents=True)
    (zoo / "CartPole-v1" / "config.yml").write_text("n_steps: 32\n")
    (zoo / "CartPole-v1" / "args.yml").write_text("algo: ppo\nenv: CartPole-v1\nseed: 1\n")
    np.savez(zoo / "evaluations.npz", timesteps=np.array([10]), results=np.array([[object()]], dtype=object))
    return logs


def test_on_error_skip_imports_the_rest_and_names_each_bad_file_in_one_line(mixed, tmp_path, capsys):
    code = cli.main(["import", str(mixed), "--name", "m", "--root", str(tmp_path / "r"), "--on-error", "skip",
                     "--pattern", "{algorithm}_seed{seed}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 3, captured.err
    assert any("CartPole-v1__dqn__3__1700000000" in s and "corrupt or truncated record" in s for s in skipped)
    assert any("ppo_seed1.monitor.csv" in s and "column 'r' row 5: expected a number" in s for s in skipped)
    assert any("evaluations.npz: refused: the file needs pickle" in s for s in skipped)
    assert "Traceback" not in captured.err
    assert sorted(store.load(tmp_path / "r" / "m").drop_duplicates("run_id")["seed"]) == [1, 2]


def test_on_error_stop_imports_nothing(mixed, tmp_path, capsys):
    code = cli.main(["import", str(mixed), "--name", "m", "--root", str(tmp_path / "r"), "--pattern",
                     "{algorithm}_seed{seed}"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nothing imported" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "m").exists()
    assert not list((tmp_path / "r").glob(".m.*"))  # no staging folder left behind


def test_a_failed_import_leaves_the_existing_study_untouched(tmp_path, monkeypatch):
    monitor_file(tmp_path / "a" / "ppo" / "seed1.monitor.csv", [1.0, 2.0])
    importers.import_path(tmp_path / "a", "s", tmp_path / "r", pattern="{algorithm}/seed{seed}")
    before = {p.relative_to(tmp_path / "r"): p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    for seed in (2, 3):
        monitor_file(tmp_path / "a" / "ppo" / f"seed{seed}.monitor.csv", [3.0, float(seed)])
    calls = []
    real = store.write_run

    def crash_on_second(study_dir, meta, rows):
        calls.append(meta["run_id"])
        if len(calls) == 2:
            raise OSError("disk full")
        return real(study_dir, meta, rows)

    monkeypatch.setattr(store, "write_run", crash_on_second)
    with pytest.raises(OSError):
        importers.import_path(tmp_path / "a", "s", tmp_path / "r", pattern="{algorithm}/seed{seed}")
    after = {p.relative_to(tmp_path / "r"): p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    assert after == before and len(calls) == 2
    monkeypatch.setattr(store, "write_run", real)
    s = importers.import_path(tmp_path / "a", "s", tmp_path / "r", pattern="{algorithm}/seed{seed}")
    assert (s.added, s.unchanged) == (2, 1)


def test_a_crash_between_the_two_renames_is_repaired_by_the_next_import(tmp_path):
    monitor_file(tmp_path / "a" / "ppo" / "seed1.monitor.csv", [1.0])
    importers.import_path(tmp_path / "a", "s", tmp_path / "r", pattern="{algorithm}/seed{seed}")
    os.rename(tmp_path / "r" / "s", tmp_path / "r" / ".s.previous")  # the instant between the renames
    s = importers.import_path(tmp_path / "a", "s", tmp_path / "r", pattern="{algorithm}/seed{seed}")
    assert s.unchanged == 1 and store.load(tmp_path / "r" / "s")["return"].tolist() == [1.0]


def test_a_changed_source_replaces_its_runs(tmp_path):
    path = tmp_path / "a" / "ppo" / "seed1.monitor.csv"
    monitor_file(path, [1.0, 2.0])
    importers.import_path(tmp_path / "a", "s", tmp_path / "r", pattern="{algorithm}/seed{seed}")
    monitor_file(path, [1.0, 2.0, 5.0])  # the run went on
    s = importers.import_path(tmp_path / "a", "s", tmp_path / "r", pattern="{algorithm}/seed{seed}")
    assert (s.added, s.replaced) == (0, 1)
    assert store.load(tmp_path / "r" / "s")["return"].tolist() == [1.0, 2.0, 5.0]
    # a different pattern changes the identity: the old run goes, the new one comes
    s = importers.import_path(tmp_path / "a", "s", tmp_path / "r", pattern="{_}/{algorithm}/seed{seed}")
    assert s.unchanged == 0 and store.load(tmp_path / "r" / "s")["run_id"].nunique() == 1


def test_two_sources_with_one_identity_are_refused(tmp_path):
    monitor_file(tmp_path / "a" / "x" / "seed1" / "ppo.monitor.csv", [1.0])
    monitor_file(tmp_path / "a" / "y" / "seed1" / "ppo.monitor.csv", [2.0])
    with pytest.raises(EvalkitError, match=r"y/seed1/ppo.monitor.csv: same algorithm 'ppo', env 'CartPole-v1', seed 1.*"
                                           r"as a run of .*x/seed1/ppo.monitor.csv; tell them apart with --pattern"):
        importers.import_path(tmp_path / "a", "s", tmp_path / "r", pattern="seed{seed}/{algorithm}")
    with pytest.raises(EvalkitError, match=r"seed not recorded in the files; --pattern '{algorithm}' has no {seed} or {run}"):
        importers.import_path(tmp_path / "a", "s", tmp_path / "r", pattern="{algorithm}")


@pytest.mark.parametrize("pattern,message", [
    ("{algo}/{seed}", "--pattern: unknown field {algo}"),
    ("{seed}/{seed}", "field {seed} appears twice"),
    ("plain", "expected at least one field"),
])
def test_bad_patterns_are_one_line(pattern, message):
    with pytest.raises(EvalkitError, match=message):
        identity.compile_pattern(pattern)


def test_pattern_fields_and_hyperparameters():
    p = identity.compile_pattern("{algorithm}/lr{hp.learning_rate}_{env}__{seed}")
    assert p.match("/x/logs/dqn/lr0.001_CartPole-v1__3") == {"algorithm": "dqn", "hp.learning_rate": 0.001,
                                                            "env": "CartPole-v1", "seed": 3}
    assert p.match("/x/logs/dqn/lr0.001_CartPole-v1__three") is None


def test_missing_identity_names_what_is_missing(tmp_path, capsys):
    monitor_file(tmp_path / "a" / "run.monitor.csv", [1.0])
    assert cli.main(["import", str(tmp_path / "a"), "--name", "s", "--root", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "run.monitor.csv: algorithm, seed not recorded in the files; give --pattern" in err
    assert len(err.strip().splitlines()) == 1


def test_without_tensorboard_installed_the_error_says_what_to_install(tmp_path, monkeypatch):
    cleanrl_events(tmp_path / "runs" / "CartPole-v1__dqn__1__1700000000", 1)
    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing", None)
    with pytest.raises(EvalkitError, match=r'pip install "rl-evalkit\[import\]"'):
        importers.import_path(tmp_path / "runs", "s", tmp_path / "r")


@pytest.mark.parametrize("args,message", [
    (["/nonexistent/logs"], "expected an existing file or folder"),
    (["{tmp}", "--steps", "0"], "--steps: expected a step budget >= 1"),
    (["{tmp}", "--reference", "one.json"], "--reference: expected HIGH.json,LOW.json"),
    (["{tmp}"], "found no runs of a known format"),
])
def test_cli_mistakes_are_one_line(tmp_path, capsys, args, message):
    code = cli.main(["import", *[a.format(tmp=tmp_path) for a in args], "--name", "s", "--root", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_files_of_no_known_format_are_counted_not_read(tmp_path):
    monitor_file(tmp_path / "a" / "ppo" / "seed1.monitor.csv", [1.0])
    (tmp_path / "a" / "notes.txt").write_text("hello")
    (tmp_path / "a" / "other.json").write_text('{"lr": 0.1}')
    # an evalkit study store inside the folder: its run files and analysis tables are not logs to import
    importers.import_path(tmp_path / "a", "inner", tmp_path / "a" / "results", pattern="{algorithm}/seed{seed}")
    (tmp_path / "a" / "results" / "inner" / "analysis").mkdir()
    (tmp_path / "a" / "results" / "inner" / "analysis" / "audit.csv").write_text("algorithm,rule,verdict\na,b,pass\n")
    s = importers.import_path(tmp_path / "a", "outer", tmp_path / "r", pattern="{algorithm}/seed{seed}")
    assert (s.added, s.ignored) == (1, 5)  # txt, json, run parquet, imports.json, audit.csv
