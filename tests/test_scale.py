"""Studies at scale (issue 18): compacted store, run catalog, one load per command, packed runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from evalkit.importers import tables
from evalkit import catalog, cli, importer, packing, results, runner, seeding, spec, status, store

DATA = Path(__file__).resolve().parent / "data"

STUDY = """
name = "sc"
seed = 3
runs = {runs}
[envs.CartPole-v1]
steps = 100
[envs.Acrobot-v1]
steps = 100
[algorithms.a]
agent = "tests.fake_agents:train"
config = {{ episodes = 4 {config} }}
sweep = {{ mean = [1.0, 2.0] }}
[algorithms.b]
agent = "tests.fake_agents:train"
config = {{ episodes = 3 }}
"""

SERIAL = runner.Options(backend="serial", progress=False)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    df = df[sorted(df.columns)].sort_values(["run_id", "mode", "episode"]).reset_index(drop=True)
    return df.astype({c: object for c in df.columns if df[c].dtype == object or str(df[c].dtype) == "category"})


def _run(write_study, root: Path, runs: int = 3, config: str = "") -> tuple[spec.Study, Path]:
    study = spec.load_study(write_study(STUDY.format(runs=runs, config=config)))
    assert runner.run_study(study, root, SERIAL).ok
    return study, root / "sc"


def test_compaction_keeps_every_run_and_the_store_stays_readable_by_other_tools(write_study, tmp_path):
    study, d = _run(write_study, tmp_path)
    before = _sorted(store.load(d))
    st_before = status.study_status(study, d)
    assert store.compact(d, min_files=2) == 4  # 4 partitions (2 algorithms x 2 envs)
    assert store.loose_files(d) == [] and len(store.part_files(d)) == 4
    pd.testing.assert_frame_equal(_sorted(store.load(d)), before, check_dtype=False)
    pd.testing.assert_frame_equal(status.study_status(study, d), st_before)
    assert len(store.scan(d)) == 18
    # a rerun finds everything stored: nothing is run again
    assert runner.run_study(study, tmp_path, SERIAL).completed == 0
    n = len(before)
    t = ds.dataset(d / "runs", format="parquet", partitioning="hive").to_table()
    assert t.num_rows == n and set(t.column("algorithm").to_pylist()) == {"a", "b"}
    import duckdb
    import polars as pl
    q = f"select count(*), count(distinct run_id) from read_parquet('{d}/runs/*/*/*.parquet', hive_partitioning=true, union_by_name=true)"
    assert duckdb.sql(q).fetchall() == [(n, 18)]
    pl_df = pl.read_parquet(str(d / "runs" / "**" / "*.parquet"), hive_partitioning=True, missing_columns="insert")
    assert pl_df.height == n and pl_df["run_id"].n_unique() == 18


def test_a_kill_between_compaction_steps_reads_no_run_twice(write_study, tmp_path):
    study, d = _run(write_study, tmp_path, runs=2)
    before = _sorted(store.load(d))
    saved = tmp_path / "saved"
    shutil.copytree(d / "runs", saved)
    store.compact(d, min_files=2)
    # killed after the compacted file was committed, before the run files were deleted
    shutil.copytree(saved, d / "runs", dirs_exist_ok=True)
    # and catalog rows of a compacted file whose data file never got committed are ignored
    (d / "catalog" / "stored" / "part-00000000000000000000-dead.parquet").write_bytes(
        next((d / "catalog" / "stored").glob("*.parquet")).read_bytes())
    pd.testing.assert_frame_equal(_sorted(store.load(d)), before, check_dtype=False)
    assert len(store.stored_index(d)) == 12
    store.compact(d, min_files=1)  # the next compaction cleans up
    assert store.loose_files(d) == [] and len(store.part_files(d)) == 4
    pd.testing.assert_frame_equal(_sorted(store.load(d)), before, check_dtype=False)


def test_a_run_rewritten_after_compaction_wins_over_its_compacted_copy(write_study, tmp_path):
    study, d = _run(write_study, tmp_path, runs=2)
    store.compact(d, min_files=1)
    sr = next(iter(store.scan(d).values()))
    meta = dict(sr.meta, config=sr.meta["config"], steps=sr.meta["steps"])
    store.write_run(d, meta, [{"mode": "train", "step": 5, "episode": 0, "return": 123.0, "length": 5}])
    table = store.load(d)
    mine = table[table["run_id"] == sr.meta["run_id"]]
    assert mine["return"].tolist() == [123.0] and len(table["run_id"].unique()) == 12


def test_catalog_has_one_row_per_planned_run_with_status_and_hyperparameters(write_study, tmp_path):
    study, d = _run(write_study, tmp_path, runs=2)
    victim = next(iter(store.scan(d).values())).path
    victim.unlink()  # one run missing
    res = results.load(study, d)
    cat = res.catalog
    assert list(cat.columns[:len(catalog.COLUMNS)]) == catalog.COLUMNS
    assert len(cat) == 12 and cat["run_id"].is_unique
    assert (cat["status"] == "missing").sum() == 1 and (cat["status"] == "done").sum() == 11
    assert set(cat.loc[cat["algorithm"] == "a", "hp.mean"]) == {1.0, 2.0}
    assert (cat["rung"] == -1).all() and (cat["budget"] == 100).all() and (cat["full_budget"] == 100).all()
    done = cat[cat["status"] == "done"]
    assert (done["n_episodes"] == np.where(done["algorithm"] == "a", 4, 3)).all()
    assert (cat.loc[cat["status"] == "missing", "n_episodes"] == 0).all()
    assert set(res.episodes["run_id"]) == set(done["run_id"])
    tune = res.phase("eval")
    assert len(tune.catalog) == 12 and res.phase("tune").catalog.empty


def test_a_done_run_without_episodes_is_a_catalog_row(write_study, tmp_path):
    study, d = _run(write_study, tmp_path, runs=1)
    sr = next(iter(store.scan(d).values()))
    store.write_run(d, dict(sr.meta), [])
    res = results.load(study, d)
    row = res.catalog.set_index("run_id").loc[sr.meta["run_id"]]
    assert row["status"] == "done" and row["n_episodes"] == 0 and row["algorithm"] == sr.meta["algorithm"]


def test_status_knows_successive_halving_rung_runs(write_study, tmp_path):
    text = """
    name = "sh"
    seed = 4
    runs = 2
    [envs.CartPole-v1]
    steps = 90
    [algorithms.a]
    agent = "tests.fake_agents:train"
    sweep = { mean = [1.0, 2.0, 3.0] }
    [tuning]
    runs = 2
    search = "grid"
    scheduler = "successive_halving"
    eta = 3
    min_steps = 30
    """
    study = spec.load_study(write_study(text))
    assert runner.run_study(study, tmp_path, SERIAL).ok
    st = status.study_status(study, tmp_path / "sh")
    assert st.attrs["orphans"] == 0
    assert int(st["missing"].sum()) == 0 and int(st["failed"].sum()) == 0
    tune = st[st["phase"] == "tune"].iloc[0]
    assert tune["planned"] == tune["done"] == 3 * 2 + 1 * 2  # rung 0: 3 settings, rung 1: the best one
    cat = results.load(study, tmp_path / "sh").catalog
    rungs = cat[cat["phase"] == "tune"].groupby("rung")["budget"].agg(["size", "max"])
    assert rungs.to_dict("index") == {0: {"size": 6, "max": 30}, 1: {"size": 2, "max": 90}}
    assert (cat.loc[cat["phase"] == "eval", "rung"] == -1).all()


def test_one_load_per_command(write_study, tmp_path, monkeypatch, capsys):
    study = spec.load_study(write_study(STUDY.format(runs=3, config="")))
    runner.run_study(study, tmp_path, SERIAL)
    calls = []
    real = results.load
    monkeypatch.setattr(results, "load", lambda *a, **k: calls.append(1) or real(*a, **k))
    scans = []
    real_index = store.stored_index
    monkeypatch.setattr(store, "stored_index", lambda *a, **k: scans.append(1) or real_index(*a, **k))
    path = str(study.path)
    for args in (["report", path, "--reps", "100", "--no-figures"], ["audit", path, "--reps", "50"],
                 ["compare", path, "--algorithms", "a[mean=1]", "b", "--reps", "100"]):
        calls.clear(), scans.clear()
        code = cli.main([*args, "--root", str(tmp_path)])
        assert calls == [1] and scans == [1], (args, code, capsys.readouterr().err)


def test_import_writes_compacted_partitions_and_catalog_rows_atomically(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"algorithm": a, "env": e, "run": r, "step": 10 * (k + 1), "return": float(rng.normal()), "hp.lr": lr}
            for a in ("x", "y") for e in ("E1", "E2") for lr in (0.1, 0.2) for r in range(3) for k in range(4)]
    rows[5]["return"] = float("nan")
    csv = tmp_path / "long.csv"
    pd.DataFrame(rows).to_csv(csv, index=False, na_rep="nan")
    assert importer.import_file(csv, "imp", tmp_path / "res") == 24
    d = tmp_path / "res" / "imp"
    assert store.loose_files(d) == [] and len(store.part_files(d)) == 4
    assert not list((tmp_path / "res").glob(".imp.import-*"))  # the staging folder was renamed into place
    table = store.load(d)
    assert len(table) == 96 and table["run_id"].nunique() == 24
    study = spec.study_from_store(d)
    res = results.load(study, d)
    assert len(res.catalog) == 24 and (res.catalog["status"] == "done").all()
    assert int(res.catalog["diverged_flag"].sum()) == 1 and (res.catalog["n_episodes"] == 4).all()
    assert set(res.catalog["hp.lr"]) == {0.1, 0.2} and (res.catalog["budget"] == 40).all()
    st = status.study_status(study, d)
    assert st["done"].tolist() == [6, 6, 6, 6] and st["diverged"].sum() == 1
    # re-importing the same data is idempotent: the newer copy of each run wins
    importer.import_file(csv, "imp", tmp_path / "res")
    assert len(store.load(d)) == 96 and len(store.stored_index(d)) == 24


def test_import_matches_the_per_run_writer_it_replaces(tmp_path):
    """Same run ids, episodes and metadata as one run file per run (the writer of evalkit <= 0.x)."""
    df = pd.DataFrame({"algorithm": ["x"] * 6, "env": ["E"] * 6, "run": [0, 0, 0, 1, 1, 1],
                       "step": [30, 10, 20, 10, 20, 30], "return": [3.0, 1.0, 2.0, 4.0, 5.0, 6.0],
                       "hp.n": ["2", "2", "2", "2", "2", "2"], "phase": "eval", "mode": "train"})
    episodes, runs = tables.runs_of_table(df, "old", ["hp.n"])
    rid = seeding.short_hash(spec.canonical_json({"imported": "old", "algorithm": "x", "env": "E",
                                                  "phase": "eval", "run": 0, "config": {"n": 2}}))
    assert rid in set(runs["run_id"])
    first = episodes[episodes["run_id"] == rid]
    assert first["return"].tolist() == [1.0, 2.0, 3.0] and first["episode"].tolist() == [0, 1, 2]
    assert runs.set_index("run_id").loc[rid, "setting"] == spec.setting_id({"n": 2})
    assert first["hp.n"].tolist() == [2, 2, 2]


def test_a_store_written_by_evalkit_before_the_catalog_still_loads(tmp_path):
    """tests/data/store_v1: run files written by the evalkit of commit 7c7449b (no catalog, no
    episode counts in the footers)."""
    d = tmp_path / "old"
    shutil.copytree(DATA / "store_v1", d)
    study = spec.study_from_store(d)
    res = results.load(study, d)
    assert len(res.catalog) == 8 and (res.catalog["status"] == "done").all()
    assert (res.catalog["n_episodes"] == 5).all() and len(res.episodes) == 40
    assert list(res.episodes.columns[:9]) == store.FRONT
    store.compact(d, min_files=1)
    pd.testing.assert_frame_equal(_sorted(results.load(study, d).episodes), _sorted(res.episodes), check_dtype=False)


@pytest.mark.ray
def test_packs_store_every_run_alone_and_isolate_failures(write_study, tmp_path, ray_instance):
    bad = seeding.run_seed(3, "CartPole-v1", "eval", 1)
    study = spec.load_study(write_study(STUDY.format(runs=6, config=f", fail_seed = {bad}")))
    units = [(r,) for r in spec.expand(study)]
    packs = packing.make_packs(units, workers=2, size=4)
    assert sum(len(p) for p in packs) == len(units) and any(isinstance(p, packing.Pack) for p in packs)
    summary = runner.run_study(study, tmp_path, runner.Options(backend="ray", retries=1, progress=False, pack=4))
    assert summary.completed == 34 and len(summary.failed) == 2  # the bad seed of both settings of a
    failures = store.read_failures(tmp_path / "sc")
    assert {f["attempts"] for f in failures.values()} == {2}
    assert len(store.scan(tmp_path / "sc")) == 34


@pytest.mark.ray
def test_a_lost_pack_is_retried_run_by_run(write_study, tmp_path, ray_instance):
    bad = seeding.run_seed(3, "CartPole-v1", "eval", 2)
    study = spec.load_study(write_study(STUDY.format(runs=4, config=f', fail_seed = {bad}, crash = "segfault"')))
    summary = runner.run_study(study, tmp_path, runner.Options(backend="ray", retries=1, progress=False, pack=4))
    assert summary.lost_packs >= 1
    assert summary.completed == 22 and len(summary.failed) == 2
    failures = store.read_failures(tmp_path / "sc")
    assert all(f["attempts"] == 2 and f["cause"] == "worker died" for f in failures.values())


def test_pack_size_is_automatic_and_off_for_small_studies():
    assert packing.pack_size(24, 2) == 1 and packing.pack_size(10_000, 2) == packing.MAX_PACK


def test_write_runs_writes_each_run_atomically_and_finishes_the_others_when_one_fails(write_study, tmp_path):
    # the driver writes a pack's runs on several threads (overlapping fsyncs); each is still its own
    # complete file, a failing write raises only after the others are done, and no temporary is left
    _, d = _run(write_study, tmp_path, runs=2)
    good = {Path(p).stem for p in store.scan(d)}
    src = results.load(spec.load_study(write_study(STUDY.format(runs=2, config=""))), d).episodes
    items = []
    for rid, g in list(src.groupby("run_id"))[:6]:
        first = g.iloc[0]
        meta = {"run_id": f"copy-{rid}", "algorithm": first["algorithm"], "env": first["env"], "phase": "eval",
                "seed_index": int(first["seed_index"]), "seed": int(first["seed"]), "setting": first["setting"],
                "config": {}}
        rows = [{"mode": m, "step": int(s), "episode": int(e), "return": float(r), "length": int(n)}
                for m, s, e, r, n in zip(g["mode"], g["step"], g["episode"], g["return"], g["length"])]
        items.append((meta, rows))
    broken = ({**items[0][0], "run_id": "broken"}, [{"mode": "train"}])  # no step/return: cannot be written
    with pytest.raises(Exception):
        store.write_runs(d, items[:3] + [broken] + items[3:])
    written = {Path(p).stem for p in store.scan(d)} - good
    assert written == {m["run_id"] for m, _ in items}
    assert not list(d.rglob("*.tmp"))
