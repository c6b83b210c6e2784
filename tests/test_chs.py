"""CHS (Patterson et al. 2024): hand-computed stage-1/stage-2 tables, the reference's cdfScale
semantics (strictly below, diverged runs), selection, evaluation intervals, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.chs import chs_evaluate, chs_normalizer, chs_scores, select_chs


def stage_table(cells, phase="tune"):
    """cells: {(algorithm, setting, env): [scores]}; NaN marks a diverged run (as metrics does)."""
    rows = []
    for (alg, setting, env), scores in cells.items():
        for i, x in enumerate(scores):
            rows.append({"run_id": f"{alg}{setting}{env}{i}{phase}", "algorithm": alg, "agent": alg, "env": env,
                         "phase": phase, "seed_index": i, "seed": i, "setting": setting, "score": float(x),
                         "diverged": bool(np.isnan(x)), "hp.lr": {"s1": 0.1, "s2": 0.01, "t1": 0.5}[setting]})
    return pd.DataFrame(rows)


STAGE1 = {("A", "s1", "X"): [1, 3], ("A", "s2", "X"): [2, 5], ("B", "t1", "X"): [0, 4],
          ("A", "s1", "Y"): [10, 20], ("A", "s2", "Y"): [np.nan, 30], ("B", "t1", "Y"): [15, 25]}


def test_normalizer_by_hand():
    N = chs_normalizer(stage_table(STAGE1))
    # N_X(g) = (#A_X < g / 4 + #B_X < g / 2) / 2 with A_X = {1,3,2,5}, B_X = {0,4}
    assert N("X", 3) == pytest.approx((2 / 4 + 1 / 2) / 2)  # strictly below: 3 itself does not count
    assert N("X", 0) == 0.0 and N("X", 100) == 1.0
    # A_Y = {10, 20, diverged, 30}: the diverged run counts in the denominator, never below
    assert N("Y", 100) == pytest.approx((3 / 4 + 1) / 2)
    assert N("Y", np.nan) == 0.0 and N("Y", -np.inf) == 0.0
    np.testing.assert_allclose(N("Y", [20, 30]), [(1 / 4 + 1 / 2) / 2, (2 / 4 + 1) / 2])


def test_setting_scores_and_selection_by_hand():
    t = stage_table(STAGE1)
    a = chs_scores(t, "A").set_index("setting")
    # s1: X runs 1, 3 -> .25, .5; Y runs 10, 20 -> 0, .375; score = (.375 + .1875) / 2
    assert a.loc["s1", "score[X]"] == pytest.approx(0.375) and a.loc["s1", "score[Y]"] == pytest.approx(0.1875)
    assert a.loc["s1", "score"] == pytest.approx(0.28125)
    # s2: X runs 2, 5 -> .375, .875; Y runs diverged, 30 -> 0, .75; score = (.625 + .375) / 2
    assert a.loc["s2", "score"] == pytest.approx(0.5)
    assert a.loc["s2", "n_diverged"] == 1 and a.loc["s2", "n_runs"] == 4
    assert list(chs_scores(t, "A")["setting"]) == ["s2", "s1"]  # best first
    b = chs_scores(t, "B").set_index("setting")
    assert b.loc["t1", "score"] == pytest.approx(0.3125)
    chosen = select_chs(t)
    assert chosen == {"A": "s2", "B": "t1"}
    # the shape the selection layer reads: chs_scores(runs, alg).set_index("setting")["score"]
    assert chs_scores(t, "A").set_index("setting")["score"][chosen["A"]] == pytest.approx(0.5)
    assert chs_scores(t, "A").set_index("setting").loc["s2", "hp.lr"] == 0.01


def shb_cdf_scale(data: dict, env: str, g: float) -> float:
    """The reference's SHB.cdfScale, transcribed: data[alg][env] is an (n_settings, runs) array."""
    fractions = [np.sum(data[a][env] < g) / data[a][env].size for a in data]
    return float(np.mean(fractions))


def test_scores_equal_reference_cdf_scale_on_random_data():
    rng = np.random.default_rng(4)
    cells, data = {}, {}
    for alg, settings in (("A", ("s1", "s2")), ("B", ("t1",)), ("C", ("s1", "s2", "t1"))):
        data[alg] = {}
        for env in ("X", "Y", "Z"):
            arr = np.round(rng.normal(size=(len(settings), 3)), 1)  # rounding makes ties
            arr[rng.random(arr.shape) < 0.1] = np.nan
            data[alg][env] = arr
            for i, s in enumerate(settings):
                cells[(alg, s, env)] = list(arr[i])
    t = stage_table(cells)
    for alg, settings in (("A", ("s1", "s2")), ("C", ("s1", "s2", "t1"))):
        got = chs_scores(t, alg).set_index("setting")["score"]
        for i, s in enumerate(settings):
            want = np.mean([np.mean([shb_cdf_scale(data, env, g) for g in data[alg][env][i]]) for env in "XYZ"])
            assert got[s] == pytest.approx(want, rel=1e-12)


def test_tie_goes_to_first_setting_id():
    cells = {("A", "s1", "X"): [1.0], ("A", "s2", "X"): [1.0]}
    assert select_chs(stage_table(cells))["A"] == "s1"


STAGE2 = {("A", "s2", "X"): [3, 6], ("A", "s2", "Y"): [20, 40], ("B", "t1", "X"): [4, 4], ("B", "t1", "Y"): [25, 25]}


def test_evaluation_by_hand():
    res = chs_evaluate(stage_table(STAGE1), stage_table(STAGE2, phase="eval"), reps=2_000, seed=0)
    t = res.table().set_index(["algorithm", "env"])
    # N_X(3) = .5, N_X(6) = 1 -> .75; N_Y(20) = .375, N_Y(40) = .875 -> .625; overall .6875
    assert t.loc[("A", "X"), "point"] == pytest.approx(0.75)
    assert t.loc[("A", "Y"), "point"] == pytest.approx(0.625)
    assert t.loc[("A", "all"), "point"] == pytest.approx(0.6875)
    assert t.loc[("A", "all"), "setting"] == "s2" and t.loc[("A", "all"), "n"] == 4
    # the resampled per-env means lie between the smallest and largest normalized run
    assert 0.5 <= t.loc[("A", "X"), "low"] <= 0.75 <= t.loc[("A", "X"), "high"] <= 1.0
    # B: identical runs -> zero-width intervals; N_X(4) = (3/4 + 1/2)/2, N_Y(25) = (2/4 + 1/2)/2
    assert t.loc[("B", "X"), "low"] == t.loc[("B", "X"), "high"] == pytest.approx(0.625)
    assert t.loc[("B", "all"), "point"] == pytest.approx((0.625 + 0.5) / 2)
    assert list(res.overall()["algorithm"]) == ["A", "B"]
    assert {"reps", "confidence", "method", "n_diverged"} <= set(res.table().columns)


def test_evaluation_intervals_shrink_with_more_stage2_runs():
    rng = np.random.default_rng(1)
    s1 = stage_table({("A", "s1", e): list(rng.normal(size=30)) for e in ("X", "Y")})
    widths = []
    for n in (5, 200):
        s2 = stage_table({("A", "s1", e): list(rng.normal(size=n)) for e in ("X", "Y")}, phase="eval")
        row = chs_evaluate(s1, s2, reps=1_000, seed=2).overall().iloc[0]
        assert row["low"] <= row["point"] <= row["high"]
        widths.append(row["high"] - row["low"])
    assert widths[1] < 0.4 * widths[0]


def test_diverged_stage2_runs_score_zero():
    s2 = stage_table({("A", "s2", "X"): [np.nan, 6], ("A", "s2", "Y"): [20, 40],
                      ("B", "t1", "X"): [4], ("B", "t1", "Y"): [25]}, phase="eval")
    t = chs_evaluate(stage_table(STAGE1), s2, reps=100).table().set_index(["algorithm", "env"])
    assert t.loc[("A", "X"), "point"] == pytest.approx(0.5) and t.loc[("A", "X"), "n_diverged"] == 1


def test_bad_input():
    s1 = stage_table(STAGE1)
    s2 = stage_table(STAGE2, phase="eval")
    with pytest.raises(ValueError, match="algorithm 'B' has no runs in env\\(s\\) Y"):
        chs_normalizer(s1[~((s1["algorithm"] == "B") & (s1["env"] == "Y"))])
    with pytest.raises(ValueError, match="stage 2 has no runs in env\\(s\\) Y"):
        chs_evaluate(s1, s2[s2["env"] == "X"], reps=10)
    with pytest.raises(ValueError, match="stage-2 algorithm\\(s\\) C have no stage-1 runs"):
        chs_evaluate(s1, pd.concat([s2, s2.assign(algorithm="C")]), reps=10)
    with pytest.raises(ValueError, match="stage-2 env\\(s\\) Z have no stage-1 runs"):
        chs_evaluate(s1, pd.concat([s2, s2.assign(env="Z")]), reps=10)
    with pytest.raises(ValueError, match="2 settings of algorithm 'A' in env 'X'"):
        chs_evaluate(s1, pd.concat([s2, stage_table({("A", "s1", "X"): [1]}, phase="eval")]), reps=10)
    with pytest.raises(ValueError, match="algorithm 'Q' not in the stage-1 table"):
        chs_scores(s1, "Q")
    dead = stage_table({**STAGE1, ("B", "t1", "X"): [np.nan, np.nan], ("B", "t1", "Y"): [np.nan]})
    with pytest.raises(ValueError, match="every stage-1 run of algorithm 'B' diverged"):
        select_chs(dead)
    with pytest.raises(ValueError, match="lacks column 'setting'"):
        chs_normalizer(s1.drop(columns="setting"))
    with pytest.raises(ValueError, match="mixes phases"):
        chs_normalizer(pd.concat([s1, s2]))
