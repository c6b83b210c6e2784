"""Property-based tests of the accounting rule (issue 17) on messy studies built without training.

Generated studies have ragged seeds, diverged runs at random places, runs without episodes, failed
and missing runs, several phases, successive-halving rungs, constant scores, one env, one run. The
invariants: every output accounts for every planned run (n planned = n used + n excluded); a
printed estimate is never NaN without a note; an algorithm's result does not depend on which other
algorithms are present (where the method does not pool them by definition); no CLI traceback.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit import accounting, metrics, report, stats

KINDS = ("ok", "ok", "ok", "constant", "no-episode", "diverged", "failed", "missing")
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def messy(draw, halving: bool = False):
    """(catalog, episodes) of a messy study."""
    algs = draw(st.lists(st.sampled_from(["alpha", "beta", "gamma"]), min_size=1, max_size=3, unique=True))
    envs = draw(st.lists(st.sampled_from(["E1", "E2"]), min_size=1, max_size=2, unique=True))
    phases = ["tune"] if halving else draw(st.sampled_from([["eval"], ["tune", "eval"]]))
    cat, eps = [], []
    for a in sorted(algs):
        n_settings = draw(st.integers(1, 3 if halving else 2))
        for e in envs:
            scale = 1000.0 if e == "E2" else 1.0
            for ph in phases:
                for s in range(n_settings):
                    rungs = [(0, 50)] + ([(1, 100)] if s == 0 else []) if halving else [(-1, 100)]
                    n_seeds = draw(st.integers(1, 4))  # ragged seeds (the same seeds at every rung)
                    for rung, budget in rungs:
                        for i in range(n_seeds):
                            rid = f"{a}-{e}-{ph}-{s}-{rung}-{i}"
                            kind = draw(st.sampled_from(KINDS))
                            status = {"failed": "failed", "missing": "missing"}.get(kind, "done")
                            cat.append({"run_id": rid, "algorithm": a, "agent": a, "env": e, "phase": ph,
                                        "seed_index": i, "seed": i, "setting": f"s{s}", "budget": budget,
                                        "full_budget": 100, "rung": rung, "status": status, "stale": False,
                                        "n_episodes": 0, "n_eval_episodes": 0, "diverged_flag": kind == "diverged",
                                        "hp.x": s})
                            if status != "done" or kind == "no-episode":
                                continue
                            values = [1.0, 1.0] if kind == "constant" else \
                                [scale * draw(st.floats(-5, 5)), scale * draw(st.floats(-5, 5))]
                            if kind == "diverged":
                                values[-1] = math.nan
                            for k, v in enumerate(values):
                                eps.append({"run_id": rid, "algorithm": a, "agent": a, "env": e, "phase": ph,
                                            "seed_index": i, "seed": i, "setting": f"s{s}", "budget": budget,
                                            "mode": "train", "step": (k + 1) * budget // 2, "episode": k,
                                            "return": v, "length": budget // 2, "hp.x": s})
    cols = ["run_id", "algorithm", "agent", "env", "phase", "seed_index", "seed", "setting", "budget", "mode",
            "step", "episode", "return", "length", "hp.x"]
    return pd.DataFrame(cat), pd.DataFrame(eps, columns=cols)


def _check_accounts(runs: pd.DataFrame) -> None:
    a = accounting.of(runs)
    assert a.planned == len(runs) == a.used + a.n_excluded
    assert set(runs.loc[~runs["used"], "reason"]) <= set(accounting.REASONS)
    assert (runs.loc[runs["used"], "reason"] == "").all()
    assert np.isfinite(runs.loc[runs["used"], "score"].to_numpy(float)).all()
    assert runs.loc[~runs["used"], "score"].isna().all()


@FAST
@given(messy())
def test_every_planned_run_is_one_row_used_or_excluded_with_a_reason(study):
    catalog, episodes = study
    runs = metrics.run_scores(episodes, "auc", catalog=catalog)
    assert sorted(runs["run_id"]) == sorted(catalog["run_id"])  # never dropped by a join
    _check_accounts(runs)
    failed = set(catalog.loc[catalog["status"] == "failed", "run_id"])
    assert set(runs.loc[runs["reason"] == "failed", "run_id"]) == failed
    table = accounting.account(runs, ("algorithm", "env", "phase"))
    assert (table["planned"] == table["used"] + table[list(accounting.REASONS)].sum(axis=1)).all()


@FAST
@given(messy(halving=True))
def test_successive_halving_units_are_accounted_at_the_compared_budget(study):
    catalog, episodes = study
    units = catalog.drop_duplicates(["algorithm", "env", "phase", "setting", "seed_index"])
    for rung in (None, 0):
        runs = metrics.run_scores(episodes, "auc", catalog=catalog, rung=rung)
        assert len(runs) == len(units)  # one row per (setting, env, seed): a stopped run is not missing
        _check_accounts(runs)
        if rung == 0:
            assert "stopped-at-rung" not in set(runs["reason"])  # every setting ran rung 0
        else:
            stopped = runs[runs["reason"] == "stopped-at-rung"]
            assert (stopped["budget"] < 100).all() and (stopped["setting"] != "s0").all()


@FAST
@given(messy())
def test_score_table_shows_n_used_and_a_note_for_every_excluded_run(study):
    catalog, episodes = study
    runs = metrics.run_scores(episodes, "auc", catalog=catalog)
    runs = runs[runs["phase"] == runs["phase"].iloc[0]]
    table = report.score_table(runs, reps=50)
    for _, r in table.iterrows():
        excluded = sum(int(x.split()[0]) for x in r["excluded"].split(", ")) if r["excluded"] else 0
        assert r["planned"] == r["n"] + excluded
        if not np.isfinite(r["mean"]):  # a NaN estimate only with a note saying why
            assert r["n"] == 0 and r["excluded"]


@FAST
@given(messy(), st.integers(0, 2**31 - 1))
def test_an_algorithms_aggregate_does_not_depend_on_the_other_algorithms(study, seed):
    catalog, episodes = study
    runs = metrics.run_scores(episodes, "auc", catalog=catalog)
    runs = runs[(runs["phase"] == "eval") & (runs["env"] == "E1")]  # one env: raw scores may be aggregated
    if runs.empty:
        return
    together, _, _ = accounting.score_matrices(runs, by="algorithm")
    for alg in together:
        alone, _, _ = accounting.score_matrices(runs[runs["algorithm"] == alg], by="algorithm")
        np.testing.assert_array_equal(alone[alg], together[alg])
    usable = {k: v for k, v in together.items() if v.shape[0] >= 2}
    from evalkit.stats import bootstrap
    # streams by algorithm name: branch issue-19 (bootstrap.algorithm_rng); checked once it is merged
    if len(usable) >= 2 and hasattr(bootstrap, "algorithm_rng"):
        est = stats.interval_estimates(usable, "mean", reps=60, seed=seed)
        for alg, m in usable.items():
            solo = stats.interval_estimates({alg: m}, "mean", reps=60, seed=seed)[alg]
            assert (solo.point, solo.low, solo.high) == (est[alg].point, est[alg].low, est[alg].high)


@FAST
@given(messy())
def test_tuning_objective_and_audit_rules_follow_one_divergence_policy(study):
    from evalkit import audit, tuning
    catalog, episodes = study
    runs = metrics.run_scores(episodes, "auc", catalog=catalog)
    for alg, g in runs[runs["phase"] == runs["phase"].iloc[0]].groupby("algorithm"):
        objective = tuning.setting_objective(g)
        diverged = g.groupby("setting")["diverged"].any()
        assert (objective[diverged[diverged].index] == -math.inf).all()
    algorithms = sorted(runs["algorithm"].unique())
    curves, notes = audit._curves(runs, algorithms, reps=20, seed=0)
    if len(curves):  # expected max per env, never pooled over envs
        assert curves.groupby(["algorithm", "env"])["budget"].max().le(4).all()
    audit._rule_runs(runs, algorithms)
    audit._rule_edge(runs, algorithms, None)


CLI_STUDY = """
name = "messy"
seed = 11
runs = 3
{envs}
[algorithms.a]
agent = "tests.fake_agents:train"
sweep = {{ mean = [1.0, 2.0, 3.0] }}
[algorithms.b]
agent = "tests.fake_agents:train"
sweep = {{ mean = [1.0, 2.0, 3.0] }}
{tuning}
"""


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_cli_command_ends_in_a_traceback_on_a_messy_study(data):
    """status, report, compare, audit, sensitivity, chs on a messy store: exit 0, or 2 with one line."""
    import contextlib
    import io
    import tempfile
    from pathlib import Path

    from evalkit import cli, spec
    from tests.messy import rows, write_run

    envs = data.draw(st.sampled_from([["CartPole-v1"], ["CartPole-v1", "Acrobot-v1"]]))
    tuned = data.draw(st.booleans())
    text = CLI_STUDY.format(envs="\n".join(f"[envs.{e}]\nsteps = 100" for e in envs),
                            tuning="[tuning]\nruns = 2\nselect = \"cross_env\"" if tuned else "")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "messy.toml"
        path.write_text(text)
        study = spec.load_study(path)
        d = spec.results_dir(study, Path(tmp) / "results")
        def write(runs):
            for r in runs:
                kind = data.draw(st.sampled_from(KINDS))
                episodes = {"failed": "fail", "missing": None, "no-episode": []}.get(kind)
                if kind in ("ok", "constant", "diverged"):
                    v = 1.0 if kind == "constant" else r.config["mean"] + r.seed_index
                    episodes = rows([v, math.nan if kind == "diverged" else v], 100)
                write_run(d, r, episodes)
        write(spec.expand(study))
        if tuned:  # the selection, then messy evaluation runs of the chosen settings (as the runner does)
            import json

            from evalkit import selection
            from evalkit.errors import EvalkitError
            try:
                chosen = selection.select(study, d)
            except EvalkitError:
                chosen = None
            if chosen is not None:
                (d / "selection.json").write_text(json.dumps(chosen.as_dict(), default=str))
                write(spec.evaluation_runs(study, chosen.values))
        root = ["--root", str(Path(tmp) / "results")]
        commands = [["status"], ["report", "--text-only", "--reps", "50"], ["audit", "--reps", "20"],
                    ["sensitivity", "--reps", "20"], ["chs", "--reps", "20"],
                    ["compare", "--algorithms", "a" if tuned else "a[mean=1]", "b" if tuned else "b[mean=1]",
                     "--reps", "20"]]
        for cmd in commands:
            err, out = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                code = cli.main([cmd[0], str(path), *root, *cmd[1:]])
            assert code in (0, 2), (cmd, code, err.getvalue())
            if code == 2:
                lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
                assert len(lines) == 1 and lines[0].startswith("evalkit: error:"), (cmd, err.getvalue())
            else:
                assert "Traceback" not in err.getvalue()
                printed = out.getvalue()
                if cmd[0] in ("report", "compare") and "nan" in printed.lower():
                    assert "excluded" in printed or "note" in printed, (cmd, printed)


def _reference_scores(table: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """The per-run loop evalkit used before run_scores was vectorised: the oracle for it."""
    name, _, frac = metric.partition(":")
    fraction = float(frac) if frac else 0.1
    hp_cols = [c for c in table.columns if c.startswith("hp.")]
    extra = [c for c in table.columns if c not in metrics.RUN_KEYS + hp_cols + ["budget", "mode", "step", "episode",
                                                                                "return", "length", "label"]]
    rows = []
    for run_id, g in table.groupby("run_id", sort=True):
        sel = g[g["mode"] == mode]
        score, fallback = metrics._score_one(sel["return"].to_numpy(float), sel["length"].to_numpy(float),
                                             sel["step"].to_numpy(float), int(g.iloc[0]["budget"]), name,
                                             fraction, mode)
        diverged = metrics._diverged(g, extra)
        rows.append({"run_id": run_id, "score": math.nan if diverged else score, "diverged": diverged,
                     "n_episodes": len(sel), "fallback": fallback})
    return pd.DataFrame(rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["train", "eval"]), st.integers(1, 100),
                          st.one_of(st.floats(-100, 100), st.just(math.nan), st.just(math.inf)),
                          st.one_of(st.floats(0, 5), st.just(math.nan), st.just(math.inf))), min_size=1, max_size=40),
       st.sampled_from(["auc", "auc_steps", "final", "final:0.5"]), st.sampled_from(["train", "eval"]))
def test_vectorised_run_scores_equal_the_per_run_loop(episodes, metric, mode):
    recs = [{"run_id": f"r{k}", "algorithm": "a", "agent": "a", "env": "E", "phase": "eval", "seed_index": k,
             "seed": k, "setting": "s", "budget": 100, "mode": m, "step": step, "episode": i, "return": ret,
             "length": 10, "loss": loss} for i, (k, m, step, ret, loss) in enumerate(episodes)]
    table = pd.DataFrame(recs)
    got = metrics.run_scores(table, metric, mode=mode).set_index("run_id")
    want = _reference_scores(table, metric, mode).set_index("run_id")
    assert list(got.index) == list(want.index)
    np.testing.assert_allclose(got["score"].to_numpy(float), want["score"].to_numpy(float), rtol=1e-12, atol=1e-12)
    for c in ("diverged", "n_episodes", "fallback"):
        assert list(got[c]) == list(want[c]), c
