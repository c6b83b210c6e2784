"""Runner side of seed batching: fixed blocks, atomic blocks, ids distinct from unbatched runs."""

from __future__ import annotations

from evalkit import runner, seeding, spec, store
from tests import fake_batched
from tests.test_runner import assert_identical, stored_returns

STUDY = """
name = "batched"
seed = 8
runs = 5
{extra}
[envs.CartPole-v1]
steps = 100
[algorithms.a]
agent = "tests.fake_batched:train"
config = {{ {config} }}
"""


def test_blocks_are_fixed_by_the_study_and_results_equal_unbatched(write_study, tmp_path):
    batched = spec.load_study(write_study(STUDY.format(extra="batch_seeds = 2", config="mean = 1.0"), "a.toml"))
    plain = spec.load_study(write_study(STUDY.format(extra="batch_seeds = 1", config="mean = 1.0"), "b.toml"))
    runs = spec.expand(batched)
    assert [r.batch for r in runs] == [2] * 5
    assert [r.block_key[-1] for r in runs] == [0, 0, 1, 1, 2]
    assert {r.run_id for r in runs}.isdisjoint({r.run_id for r in spec.expand(plain)})
    fake_batched.CALLS.clear()
    opts = runner.Options(backend="serial", progress=False)
    runner.run_study(batched, tmp_path / "b", opts)
    assert fake_batched.CALLS == [2, 2, 1]
    runner.run_study(plain, tmp_path / "p", opts)
    b, p = stored_returns(tmp_path / "b" / "batched"), stored_returns(tmp_path / "p" / "batched")
    by_seed = lambda d, root: {store.read_meta(f)["seed"]: d[f.stem] for f in (root / "batched" / "runs").glob("*/*/*.parquet")}
    assert_identical(by_seed(b, tmp_path / "b"), by_seed(p, tmp_path / "p"))


def test_a_block_with_a_missing_run_is_recomputed_whole(write_study, tmp_path):
    study = spec.load_study(write_study(STUDY.format(extra="batch_seeds = 3", config="mean = 1.0")))
    opts = runner.Options(backend="serial", progress=False)
    runner.run_study(study, tmp_path, opts)
    files = sorted((tmp_path / "batched" / "runs").glob("*/*/*.parquet"), key=lambda f: store.read_meta(f)["seed_index"])
    before = stored_returns(tmp_path / "batched")
    files[1].unlink()  # seed index 1 of block 0
    fake_batched.CALLS.clear()
    summary = runner.run_study(study, tmp_path, opts)
    assert fake_batched.CALLS == [3] and summary.completed == 3
    assert_identical(before, stored_returns(tmp_path / "batched"))


def test_a_failing_seed_fails_its_whole_block(write_study, tmp_path):
    bad = seeding.run_seed(8, "CartPole-v1", "eval", 4)
    study = spec.load_study(write_study(STUDY.format(extra="batch_seeds = 2", config=f"fail_seed = {bad}")))
    summary = runner.run_study(study, tmp_path, runner.Options(backend="serial", retries=0, progress=False))
    assert summary.completed == 4 and len(summary.failed) == 1
    summary = runner.run_study(spec.load_study(write_study(STUDY.format(extra="batch_seeds = 3",
                                                                         config=f"fail_seed = {bad}"), "c.toml")),
                               tmp_path / "c", runner.Options(backend="serial", retries=0, progress=False))
    assert summary.completed == 3 and len(summary.failed) == 2
    record = next(iter(store.read_failures(tmp_path / "c" / "batched").values()))
    assert len(record["batch"]) == 2


def test_unbatchable_agents_are_never_batched(write_study):
    text = STUDY.format(extra="batch_seeds = 4", config="mean = 1.0").replace("fake_batched", "fake_agents")
    assert {r.batch for r in spec.expand(spec.load_study(write_study(text)))} == {1}
