"""Hyperparameter sensitivity (Adkins, Bowling & White 2024): hand-computed tables, a brute-force
oracle written the way the reference code computes it, degenerate cases and bad input."""

from __future__ import annotations

import itertools
import time
from fractions import Fraction as Fr

import numpy as np
import pandas as pd
import pytest

from evalkit import sensitivity as sens
from evalkit.sensitivity import hyperparameter_sensitivity, sensitivity_curves


def runs_table(cells, algorithm="a", hp_names=("lr",), phase="tune"):
    """cells: {(setting values tuple, env): [run scores]} -> per-run table (metrics layer shape)."""
    rows = []
    for (values, env), scores in cells.items():
        setting = "s" + "_".join(map(str, values))
        for i, x in enumerate(scores):
            row = {"run_id": f"{algorithm}-{setting}-{env}-{i}", "algorithm": algorithm, "agent": algorithm,
                   "env": env, "phase": phase, "seed_index": i, "seed": 100 + i, "setting": setting,
                   "score": float(x), "diverged": not np.isfinite(x)}
            row.update({f"hp.{n}": v for n, v in zip(hp_names, values)})
            rows.append(row)
    return pd.DataFrame(rows)


# env A: settings lr=1,2,3 -> means 2, 5, 1; env B -> 6, 0, 4 (two runs each)
HAND = {((1,), "A"): [1, 3], ((2,), "A"): [4, 6], ((3,), "A"): [0, 2],
        ((1,), "B"): [5, 7], ((2,), "B"): [0, 0], ((3,), "B"): [3, 5]}


def test_hand_table_without_normalization():
    r = hyperparameter_sensitivity(runs_table(HAND), reps=200, normalize=False)["a"]
    # per-env tuned = mean(max(2,5,1), max(6,0,4)) = 5.5; cross = max(mean(2,6), mean(5,0), mean(1,4)) = 4
    assert r.per_env_tuned.point == pytest.approx(5.5)
    assert r.cross_env_tuned.point == pytest.approx(4.0)
    assert r.sensitivity.point == pytest.approx(1.5)
    assert r.cross_env_setting == "s1" and r.per_env_best_setting == {"A": "s2", "B": "s1"}
    # one hyperparameter: interpolate between k=0 (4) and k=1 (5.5) to 0.95 * 5.5
    assert r.dimensionality.point == pytest.approx((0.95 * 5.5 - 4) / (5.5 - 4))
    assert r.important_hyperparameters == ("lr",)
    assert r.per_env["A"].point == pytest.approx(5.0) and r.per_env["B"].point == pytest.approx(6.0)


def test_hand_table_with_percentile_normalization():
    res = hyperparameter_sensitivity(runs_table(HAND), reps=200)
    r = res["a"]
    # env A pooled runs 0,1,2,3,4,6: 5th pct at position 0.25 -> 0.25; 95th at 4.75 -> 4 + .75*2 = 5.5
    # env B pooled runs 0,0,3,5,5,7: 5th -> 0; 95th at 4.75 -> 5 + .75*2 = 6.5
    assert res.bounds["A"] == pytest.approx((0.25, 5.5)) and res.bounds["B"] == pytest.approx((0.0, 6.5))
    gA = {1: Fr(7, 4) / Fr(21, 4), 2: Fr(19, 4) / Fr(21, 4), 3: Fr(3, 4) / Fr(21, 4)}
    gB = {1: Fr(6) / Fr(13, 2), 2: Fr(0), 3: Fr(4) / Fr(13, 2)}
    per = (max(gA.values()) + max(gB.values())) / 2
    cross = max((gA[h] + gB[h]) / 2 for h in (1, 2, 3))
    assert r.per_env_tuned.point == pytest.approx(float(per))
    assert r.cross_env_tuned.point == pytest.approx(float(cross))
    assert r.sensitivity.point == pytest.approx(float(per - cross))
    assert r.dimensionality.point == pytest.approx(float((Fr(95, 100) * per - cross) / (per - cross)))
    for est in (r.per_env_tuned, r.cross_env_tuned, r.sensitivity):
        assert est.low <= est.point <= est.high


# 2 x 2 grid (a, b), one env each favouring a different a; runs identical within a cell
GRID = {((0, 0), "E1"): [1.0, 1.0], ((0, 1), "E1"): [0.2, 0.2], ((1, 0), "E1"): [0.0, 0.0],
        ((1, 1), "E1"): [0.4, 0.4], ((0, 0), "E2"): [0.0, 0.0], ((0, 1), "E2"): [0.2, 0.2],
        ((1, 0), "E2"): [0.9, 0.9], ((1, 1), "E2"): [0.4, 0.4]}


def test_dimensionality_by_hand_on_a_grid():
    r = hyperparameter_sensitivity(runs_table(GRID, hp_names=("a", "b")), reps=100, normalize=False)["a"]
    # per-env tuned = (1 + .9)/2 = .95; cross: (0,0) .5, (0,1) .2, (1,0) .45, (1,1) .4 -> .5 at (0,0)
    # tune a (b held at 0): (max(1,0) + max(0,.9))/2 = .95; tune b (a held at 0): (1 + .2)/2 = .6
    assert r.cross_env_setting == "s0_0"
    assert r.tuning_curve == pytest.approx((0.5, 0.95, 0.95))
    assert r.tuned_subsets == ((), ("a",), ("a", "b"))
    assert r.dimensionality.point == pytest.approx((0.95 * 0.95 - 0.5) / (0.95 - 0.5))
    assert r.important_hyperparameters == ("a",)
    # identical runs: every resample is the data itself, the interval is the point
    assert r.dimensionality.low == pytest.approx(r.dimensionality.point) == pytest.approx(r.dimensionality.high)


def test_dimensionality_zero_when_cross_env_reaches_95_percent():
    cells = {((0, 0), "E1"): [1.0, 1.0], ((1, 0), "E1"): [0.97, 0.97], ((0, 1), "E1"): [0.1, 0.1],
             ((1, 1), "E1"): [0.1, 0.1], ((0, 0), "E2"): [0.96, 0.96], ((1, 0), "E2"): [1.0, 1.0],
             ((0, 1), "E2"): [0.1, 0.1], ((1, 1), "E2"): [0.1, 0.1]}
    r = hyperparameter_sensitivity(runs_table(cells, hp_names=("a", "b")), reps=50, normalize=False)["a"]
    # per-env 1.0, cross .985 >= .95
    assert r.sensitivity.point == pytest.approx(0.015)
    assert r.dimensionality.point == 0.0 and r.important_hyperparameters == ()


def test_diverged_setting_is_left_out_of_cross_env_but_not_of_other_envs():
    cells = dict(HAND)
    cells[((1,), "B")] = [5, np.nan]  # lr=1 diverged in B (one run)
    r = hyperparameter_sensitivity(runs_table(cells), reps=100, normalize=False)["a"]
    # env B max over lr=2,3 -> 4; env A max 5 (lr=2) -> per-env 4.5; cross over lr=2,3: max(2.5, 2.5) -> 2.5
    assert r.per_env["B"].point == pytest.approx(4.0)
    assert r.per_env_tuned.point == pytest.approx(4.5)
    assert r.cross_env_tuned.point == pytest.approx(2.5)
    assert r.cross_env_setting == "s2"  # tie 2.5/2.5: first in setting-id order
    assert r.n_settings_diverged == 1


def test_setting_missing_in_an_env_counts_as_diverged_there():
    cells = {k: v for k, v in HAND.items() if k != ((1,), "B")}
    r = hyperparameter_sensitivity(runs_table(cells), reps=50, normalize=False)["a"]
    assert r.per_env_tuned.point == pytest.approx(4.5) and r.cross_env_tuned.point == pytest.approx(2.5)


def test_one_env_gives_zero_sensitivity_and_dimensionality():
    cells = {k: v for k, v in HAND.items() if k[1] == "A"}
    r = hyperparameter_sensitivity(runs_table(cells), reps=200)["a"]
    assert r.sensitivity.point == 0.0 and r.sensitivity.low == 0.0 and r.sensitivity.high == 0.0
    assert r.dimensionality.point == 0.0


def test_algorithm_with_one_setting_has_zero_sensitivity_and_dimensionality():
    swept = runs_table(HAND)
    single = runs_table({((7,), "A"): [2, 3], ((7,), "B"): [1, 6]}, algorithm="b")
    res = hyperparameter_sensitivity(pd.concat([swept, single]), reps=200)
    b = res["b"]
    assert b.n_settings == 1 and b.hyperparameters == ()
    assert b.sensitivity.point == 0.0 and b.sensitivity.high == 0.0
    assert b.dimensionality.point == 0.0 and b.dimensionality.high == 0.0
    # percentile pool covers both algorithms' runs: env A pooled 0,1,2,3,4,6,2,3
    assert res.bounds["A"] == pytest.approx(tuple(np.percentile([0, 1, 2, 3, 4, 6, 2, 3], [5, 95])))


# ---------------------------------------------------------------------------------------------
# brute-force oracle, written like the reference code (pandas group-bys, explicit subset loops)
# ---------------------------------------------------------------------------------------------

def oracle(table: pd.DataFrame, normalize=True, fraction=0.95):
    df = table.copy()
    df["div"] = df["diverged"] | ~np.isfinite(df["score"])
    if normalize:
        b = {e: np.percentile(g.loc[~g["div"], "score"], [5, 95]) for e, g in df.groupby("env")}
    cells = df.groupby(["algorithm", "setting", "env"]).agg(p=("score", "mean"), div=("div", "any")).reset_index()
    cells["g"] = [(p - b[e][0]) / (b[e][1] - b[e][0]) if normalize else p for p, e in zip(cells["p"], cells["env"])]
    envs = sorted(df["env"].unique())
    out = {}
    for alg, c in cells.groupby("algorithm"):
        ok = c[~c["div"]]
        per = ok.groupby("env")["g"].max().reindex(envs).mean()
        present = ok.groupby("setting")["env"].nunique()
        good = present[present == len(envs)].index
        means = ok[ok["setting"].isin(good)].groupby("setting")["g"].mean()
        cross, hstar = means.max(), means.idxmax()
        hp = [h for h in df.columns if h.startswith("hp.")]
        vals = df[df["algorithm"] == alg].groupby("setting")[hp].first()
        swept = [h for h in hp if vals[h].nunique() > 1]
        H = len(swept)
        curve = [cross] + [-np.inf] * (H - 1) + [per] if H else [cross]
        g_ok = ok[ok["setting"].isin(good)]
        for k in range(1, H):
            for tuned in itertools.combinations(swept, k):
                held = [h for h in swept if h not in tuned]
                match = vals.index[(vals[held] == vals.loc[hstar, held]).all(axis=1)]
                sc = g_ok[g_ok["setting"].isin(match)].groupby("env")["g"].max().mean()
                curve[k] = max(curve[k], sc)
        target = fraction * per
        if cross >= target or H == 0:
            d = 0.0
        else:
            i = next(i for i in range(H) if curve[i] < target <= curve[i + 1])
            d = i + (target - curve[i]) / (curve[i + 1] - curve[i])
        out[alg] = dict(per=per, cross=cross, phi=per - cross, dim=d, hstar=hstar, curve=curve)
    return out


def random_table(rng, n_alg=2, n_env=3, runs=3, p_div=0.03, grid=((1e-3, 1e-2, 1e-1), (0, 1), (0.9, 0.99))):
    rows = []
    for a in range(n_alg):
        for values in itertools.product(*grid):
            effect = rng.normal(size=n_env) * 3
            for e in range(n_env):
                for r in range(runs):
                    x = effect[e] + rng.normal() + 10 * e
                    if rng.random() < p_div:
                        x = np.nan
                    rows.append({"algorithm": f"alg{a}", "env": f"env{e}", "phase": "tune", "seed_index": r,
                                 "setting": "s" + "_".join(map(str, values)), "score": x, "diverged": np.isnan(x),
                                 **{f"hp.{n}": v for n, v in zip(("lr", "flag", "gamma"), values)}})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("normalize", [True, False])
def test_point_estimates_match_brute_force_oracle(seed, normalize):
    table = random_table(np.random.default_rng(seed))
    res = hyperparameter_sensitivity(table, reps=20, normalize=normalize)
    want = oracle(table, normalize)
    for alg, w in want.items():
        r = res[alg]
        assert r.per_env_tuned.point == pytest.approx(w["per"], rel=1e-12)
        assert r.cross_env_tuned.point == pytest.approx(w["cross"], rel=1e-12)
        assert r.sensitivity.point == pytest.approx(w["phi"], rel=1e-9, abs=1e-12)
        assert r.cross_env_setting == w["hstar"]
        assert r.tuning_curve == pytest.approx(w["curve"], rel=1e-12)
        assert r.dimensionality.point == pytest.approx(w["dim"], rel=1e-9)


def test_each_resample_recomputes_the_whole_pipeline():
    """Resamples of the vectorised pipeline equal the oracle run on the materialised resampled runs."""
    table = random_table(np.random.default_rng(5), p_div=0.05)
    df = sens.check_run_table(table, "score", what="t")
    L = sens._layout(df, "t")
    idx = sens._resample_indices(L, np.random.default_rng(9), 4)
    gamma, div, _ = sens._normalized_cells(L, idx, True)
    ordered = df.assign(algorithm=df["algorithm"].astype(str)).sort_values(
        ["env", "algorithm", "setting"], kind="stable").reset_index(drop=True)
    for r in range(4):
        resampled = ordered.iloc[idx[r]].reset_index(drop=True)
        want = oracle(resampled)
        for alg in L.algorithms:
            G, D = sens._algorithm_view(L, alg, gamma[r:r + 1], div[r:r + 1])
            per, _, cross, _, _ = sens._tuned(G, D)
            assert per[0] == pytest.approx(want[alg]["per"], rel=1e-12)
            assert cross[0] == pytest.approx(want[alg]["cross"], rel=1e-12)


def test_row_percentiles_equal_numpy_linear_percentiles():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 17))
    x[rng.random(x.shape) < 0.2] = np.nan
    got = sens._row_percentiles(x, (5.0, 95.0))
    want = np.array([np.percentile(row[~np.isnan(row)], [5, 95]) for row in x])
    np.testing.assert_array_equal(got, want)


def test_intervals_contain_point_and_shrink_with_more_runs():
    def table(runs, seed):
        rng = np.random.default_rng(seed)
        cells = {}
        for lr, mu in zip((1, 2, 3), ((0, 3), (2, 1), (1, 2))):
            for e, m in zip(("A", "B"), mu):
                cells[((lr,), e)] = list(m + rng.normal(size=runs))
        return runs_table(cells)

    small = hyperparameter_sensitivity(table(4, 0), reps=500, seed=1)["a"]
    large = hyperparameter_sensitivity(table(64, 0), reps=500, seed=1)["a"]
    for name in ("per_env_tuned", "cross_env_tuned", "sensitivity"):
        s, big = getattr(small, name), getattr(large, name)
        assert s.low <= s.point <= s.high and big.low <= big.point <= big.high
        assert big.high - big.low < 0.6 * (s.high - s.low)


def test_seeded_results_are_reproducible_and_table_renders():
    table = random_table(np.random.default_rng(0))
    a = hyperparameter_sensitivity(table, reps=100, seed=7)
    b = hyperparameter_sensitivity(table, reps=100, seed=np.random.default_rng(7))
    pd.testing.assert_frame_equal(a.table(), b.table())
    t = a.table()
    assert list(t["algorithm"]) == ["alg0", "alg1"]
    assert {"sensitivity", "sensitivity_low", "sensitivity_high", "dimensionality", "reps", "method"} <= set(t.columns)
    assert set(a.per_env_table()["env"]) == {"env0", "env1", "env2"}
    assert len(a.curve_table()) == 2 * 4


def test_hyperparameters_argument_restricts_the_dimensionality():
    table = runs_table(GRID, hp_names=("a", "b"))
    r = hyperparameter_sensitivity(table, hyperparameters=["a"], reps=50, normalize=False)["a"]
    # b stays at h*'s value (0): curve is k=0 (cross) and k=1 (per-env tuned)
    assert r.hyperparameters == ("a",) and r.tuning_curve == pytest.approx((0.5, 0.95))
    assert r.important_hyperparameters == ("a",)


def test_ten_thousand_resamples_take_seconds():
    rng = np.random.default_rng(0)
    grid = list(itertools.product((1e-4, 1e-3, 1e-2, 1e-1), (0.9, 0.99), (1, 2, 4)))[:20]
    rows = [{"algorithm": f"alg{a}", "env": f"env{e}", "setting": f"s{s}", "score": rng.normal() + s * e % 7,
             "diverged": False, "hp.lr": g[0], "hp.gamma": g[1], "hp.n": g[2]}
            for a in range(3) for s, g in enumerate(grid) for e in range(5) for _ in range(10)]
    table = pd.DataFrame(rows)
    start = time.perf_counter()
    res = hyperparameter_sensitivity(table, reps=10_000)
    elapsed = time.perf_counter() - start
    assert res.reps == 10_000 and len(res.algorithms) == 3
    assert elapsed < 20, f"10,000 resamples on 3 x 20 x 5 x 10 runs took {elapsed:.1f} s"


# ---------------------------------------------------------------------------------------------
# sensitivity curves
# ---------------------------------------------------------------------------------------------

def test_sensitivity_curves_best_and_marginal_by_hand():
    table = runs_table(GRID, hp_names=("a", "b"))
    best = sensitivity_curves(table, "a", mode="best", reps=50, normalize=False)
    marg = sensitivity_curves(table, "hp.a", mode="marginal", reps=50, normalize=False)
    get = lambda df, e, v: df[(df["env"] == e) & (df["value"] == v)]["point"].item()
    # E1: a=0 -> settings (0,0)=1, (0,1)=.2; a=1 -> 0, .4
    assert get(best, "E1", 0) == pytest.approx(1.0) and get(best, "E1", 1) == pytest.approx(0.4)
    assert get(marg, "E1", 0) == pytest.approx(0.6) and get(marg, "E1", 1) == pytest.approx(0.2)
    assert get(best, "E2", 1) == pytest.approx(0.9) and get(marg, "E2", 1) == pytest.approx(0.65)
    assert (best["low"] <= best["point"] + 1e-12).all() and (best["point"] <= best["high"] + 1e-12).all()
    assert set(best.columns) >= {"algorithm", "env", "value", "point", "low", "high", "n_settings", "n_diverged"}


def test_sensitivity_curves_leave_out_diverged_settings():
    cells = dict(GRID)
    cells[((0, 0), "E1")] = [1.0, np.nan]
    c = sensitivity_curves(runs_table(cells, hp_names=("a", "b")), "a", reps=20, normalize=False)
    row = c[(c["env"] == "E1") & (c["value"] == 0)]
    assert row["point"].item() == pytest.approx(0.2) and row["n_diverged"].item() == 1


def test_sensitivity_curves_unknown_hyperparameter():
    with pytest.raises(ValueError, match="no compared algorithm has hyperparameter 'nope'"):
        sensitivity_curves(runs_table(HAND), "nope", reps=10)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------

def test_study_without_sweeps_is_a_clear_error():
    single = runs_table({((1,), "A"): [1, 2], ((1,), "B"): [3, 4]})
    with pytest.raises(ValueError, match="no algorithm has more than one hyperparameter setting"):
        hyperparameter_sensitivity(single, reps=10)


def test_env_missing_for_an_algorithm_is_a_clear_error():
    other = runs_table({((1,), "A"): [1, 2], ((2,), "A"): [3, 4]}, algorithm="b")
    with pytest.raises(ValueError, match="algorithm 'b' has no runs in env\\(s\\) B"):
        hyperparameter_sensitivity(pd.concat([runs_table(HAND), other]), reps=10)


def test_all_settings_diverged_is_a_clear_error():
    cells = {k: ([np.nan, np.nan] if k[1] == "B" else v) for k, v in HAND.items()}
    other = runs_table({((1,), "A"): [1, 2], ((2,), "A"): [3, 4], ((1,), "B"): [1, 2], ((2,), "B"): [5, 6]},
                       algorithm="b")
    with pytest.raises(ValueError, match="every setting of algorithm 'a' diverged in env 'B'"):
        hyperparameter_sensitivity(pd.concat([runs_table(cells), other]), reps=10)
    # each setting diverged in some env: per-env defined, cross-env not
    cells = dict(HAND)
    cells.update({((1,), "A"): [np.nan, 1], ((2,), "B"): [np.nan, 0], ((3,), "B"): [np.inf, 0]})
    with pytest.raises(ValueError, match="every setting of algorithm 'a' diverged in at least one env"):
        hyperparameter_sensitivity(runs_table(cells), reps=10)
    # every run of an env diverged
    with pytest.raises(ValueError, match="every run in env 'B' diverged"):
        hyperparameter_sensitivity(runs_table({k: ([np.nan] if k[1] == "B" else v) for k, v in HAND.items()}))


@pytest.mark.parametrize("kwargs, message", [
    ({"hyperparameters": ["momentum"]}, "hyperparameter\\(s\\) momentum are not swept"),
    ({"reps": 0}, "reps must be a positive integer"),
    ({"confidence": 95}, "confidence must be in \\(0, 1\\)"),
    ({"score": "auc"}, "lacks column\\(s\\) 'auc'"),
    ({"algorithms": ["zzz"]}, "algorithm\\(s\\) zzz not in the table"),
    ({"max_hyperparameters": 1}, "capped at 1"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hyperparameter_sensitivity(runs_table(GRID, hp_names=("a", "b")), **kwargs)


def test_mixed_phases_and_inconsistent_settings_are_rejected():
    table = pd.concat([runs_table(HAND), runs_table(HAND, phase="eval")])
    with pytest.raises(ValueError, match="mixes phases"):
        hyperparameter_sensitivity(table, reps=10)
    bad = runs_table(HAND)
    bad.loc[0, "hp.lr"] = 99
    with pytest.raises(ValueError, match="have different hp.lr values"):
        hyperparameter_sensitivity(bad, reps=10)
    flat = runs_table({((1,), "A"): [1.0, 1.0], ((2,), "A"): [1.0, 1.0], ((1,), "B"): [2, 3], ((2,), "B"): [2, 5]})
    with pytest.raises(ValueError, match="5th and 95th percentiles .* equal"):
        hyperparameter_sensitivity(flat, reps=10)


def test_score_column_argument():
    table = runs_table(HAND).rename(columns={"score": "auc"})
    r = hyperparameter_sensitivity(table, score="auc", reps=20, normalize=False)["a"]
    assert r.sensitivity.point == pytest.approx(1.5)
