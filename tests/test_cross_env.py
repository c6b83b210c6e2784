"""Cross-environment comparisons: rank tables and the CDF-normalized aggregate of Jordan et al.
(2020), on hand-computed tables, against a loop transcription of the authors' game, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from evalkit import cross_env
from evalkit.cross_env import rank_table, tuning_agnostic_aggregate


def runs(cells, setting="agnostic"):
    """cells: {(algorithm, env): [scores]}; NaN marks a diverged run."""
    return pd.DataFrame([{"run_id": f"{a}{e}{i}", "algorithm": a, "agent": a, "env": e, "phase": "eval",
                          "seed_index": i, "seed": i, "setting": setting, "score": float(x),
                          "diverged": bool(np.isnan(x))}
                         for (a, e), xs in cells.items() for i, x in enumerate(xs)])


def test_rank_table_by_hand_with_ties_and_an_all_diverged_cell():
    t = runs({("a", "E1"): [3, 3], ("b", "E1"): [1, 3], ("c", "E1"): [2, 2],
              ("a", "E2"): [1, 1], ("b", "E2"): [4, 6], ("c", "E2"): [np.nan, np.nan]})
    r = rank_table(t)
    table = r.table().set_index("algorithm")
    # E1 means 3, 2, 2 -> ranks 1, 2.5, 2.5; E2 means 1, 5, (all diverged) -> 2, 1, 3
    assert table.loc["a", "rank[E1]"] == 1 and table.loc["b", "rank[E1]"] == 2.5 == table.loc["c", "rank[E1]"]
    assert (table.loc["a", "rank[E2]"], table.loc["b", "rank[E2]"], table.loc["c", "rank[E2]"]) == (2, 1, 3)
    assert table["mean_rank"].to_dict() == {"a": 1.5, "b": 1.75, "c": 2.75}
    assert list(r.table()["algorithm"]) == ["a", "b", "c"]  # best first
    assert r.scores.set_index(["algorithm", "env"]).loc[("c", "E2"), "n_diverged"] == 2


def test_rank_table_rejects_several_settings_and_missing_envs():
    t = pd.concat([runs({("a", "E1"): [1]}, setting="s1"), runs({("a", "E1"): [2]}, setting="s2"),
                   runs({("b", "E1"): [2]})])
    with pytest.raises(ValueError, match="algorithm 'a' has 2 settings in env 'E1'"):
        rank_table(t)
    with pytest.raises(ValueError, match="algorithm 'b' has no runs in env\\(s\\) E2"):
        rank_table(runs({("a", "E1"): [1], ("a", "E2"): [1], ("b", "E1"): [2]}))


HAND = {("x", "E1"): [1, 3], ("y", "E1"): [2, 4], ("x", "E2"): [5, 5], ("y", "E2"): [5, 5]}


def test_cdf_aggregate_by_hand():
    r = tuning_agnostic_aggregate(runs(HAND), reps=500)
    per = r.per_env.set_index(["algorithm", "env"])["point"]
    # E1: A[x,y] = mean(F_y(1), F_y(3)) = mean(0, 1/2) = 1/4; A[y,x] = mean(F_x(2), F_x(4)) = 3/4; A[i,i] = 1/2
    assert per[("x", "E1")] == pytest.approx((0.25 + 0.5) / 2) and per[("y", "E1")] == pytest.approx(0.625)
    # E2: all runs tie: F(5) = P(X <= 5) = 1
    assert per[("x", "E2")] == pytest.approx(0.75) and per[("y", "E2")] == pytest.approx(0.75)
    table = r.table().set_index("algorithm")
    assert table.loc["x", "point"] == pytest.approx((0.375 + 0.75) / 2)
    assert table.loc["y", "point"] == pytest.approx((0.625 + 0.75) / 2)
    assert table.loc["y", "rank"] == 1 and table.loc["x", "n"] == 4
    assert (r.weights["weight"] == 0.25).all()
    for _, row in r.table().iterrows():
        assert row["low"] <= row["point"] <= row["high"]


def test_pooled_cdf_aggregate_by_hand():
    # E1 pooled runs 1,3 (x) and 2,4,6 (y): F(x) = #{<= x} / 5
    cells = {("x", "E1"): [1, 3], ("y", "E1"): [2, 4, 6], ("x", "E2"): [5, 5], ("y", "E2"): [5, 7, 9]}
    r = tuning_agnostic_aggregate(runs(cells), reps=400, weighting="pooled")
    per = r.per_env.set_index(["algorithm", "env"])["point"]
    assert per[("x", "E1")] == pytest.approx((1 / 5 + 3 / 5) / 2)
    assert per[("y", "E1")] == pytest.approx((2 / 5 + 4 / 5 + 5 / 5) / 3)
    # E2 pooled 5,5,5,7,9: F(5) = 3/5, F(7) = 4/5, F(9) = 1
    assert per[("x", "E2")] == pytest.approx(3 / 5) and per[("y", "E2")] == pytest.approx((3 / 5 + 4 / 5 + 1) / 3)
    t = r.table().set_index("algorithm")
    assert t.loc["x", "point"] == pytest.approx((0.4 + 0.6) / 2)
    assert t.loc["y", "point"] == pytest.approx((11 / 15 + 12 / 15) / 2)
    assert (t["low"] <= t["point"]).all() and (t["point"] <= t["high"]).all()
    # one algorithm alone is allowed with the pooled CDF: its runs against themselves
    solo = tuning_agnostic_aggregate(runs({("x", "E"): [1, 2, 3, 4]}), reps=50, weighting="pooled")
    assert solo.table()["point"].item() == pytest.approx((1 + 2 + 3 + 4) / 16)


def test_diverged_runs_are_worst_and_tie_with_each_other():
    r = tuning_agnostic_aggregate(runs({("x", "E"): [np.nan, 3], ("y", "E"): [np.nan, 2]}), reps=50)
    per = r.per_env.set_index("algorithm")["point"]
    # A[x,y] = mean(F_y(-inf) = 1/2, F_y(3) = 1) = 3/4; A[y,x] = mean(1/2, F_x(2) = 1/2) = 1/2
    assert per["x"] == pytest.approx((0.75 + 0.5) / 2) and per["y"] == pytest.approx(0.5)


def test_bootstrap_interval_shrinks_with_more_runs():
    rng = np.random.default_rng(0)
    widths = []
    for n in (5, 100):
        t = runs({(a, e): list(rng.normal(loc=0.3 * i, size=n)) for i, a in enumerate("xyz") for e in ("E1", "E2")})
        row = tuning_agnostic_aggregate(t, reps=400, seed=1).table().set_index("algorithm").loc["y"]
        assert row["low"] <= row["point"] <= row["high"]
        widths.append(row["high"] - row["low"])
    assert widths[1] < 0.5 * widths[0]


def equilibrium_oracle(A):
    """Loop transcription of compute_aggregate in the authors' AggregatePerformance.ipynb."""
    n, m, _ = A.shape
    moves2 = [(k, e) for k in range(n) for e in range(m)]  # their order: algorithm slow, env fast
    profiles = list(itertools.product(range(n), range(len(moves2))))
    index = {s: i for i, s in enumerate(profiles)}
    S = len(profiles)
    eta = 1.0 / ((n - 1) + (len(moves2) - 1))

    def payoff(player, s):
        a, q = s
        k, e = moves2[q]
        return A[a, e, k] if player == 1 else -A[a, e, k]

    C = np.zeros((S, S))
    for s in profiles:
        alts = [(a2, s[1]) for a2 in range(n)], [(s[0], q2) for q2 in range(len(moves2))]
        for player, options in ((1, alts[0]), (2, alts[1])):
            for t in options:
                if t == s:
                    continue
                f1, f2 = payoff(player, t), payoff(player, s)
                if f1 > f2:
                    C[index[s], index[t]] = eta
                elif np.isclose(f1, f2, rtol=np.sqrt(np.finfo(float).eps), atol=0):
                    C[index[s], index[t]] = eta / 50
    C[np.arange(S), np.arange(S)] = 1.0 - C.sum(axis=1)
    g = (S - 1.0) / S
    inv = np.linalg.inv(np.eye(S) - g * C)
    out = []
    for i in range(n):
        R = np.array([A[i, moves2[q][1], moves2[q][0]] for _, q in profiles])
        out.append((1 - g) * np.mean(np.abs(inv @ R)))
    return np.array(out)


def test_equilibrium_weighting_equals_the_authors_game():
    rng = np.random.default_rng(7)
    t = runs({(a, e): list(np.round(rng.normal(loc=i * 0.2 * (1 if e != "E2" else -1), size=6), 1))
              for i, a in enumerate("xyz") for e in ("E1", "E2")})
    r = tuning_agnostic_aggregate(t, reps=30, weighting="equilibrium")
    # rebuild A[i, e, k] from the reported per-pair means via the uniform run (same point estimates)
    df = cross_env.check_run_table(t, "score", what="t")
    algs, envs = ["x", "y", "z"], ["E1", "E2"]
    A = np.full((3, 2, 3), 0.5)
    for (i, a), (j, e), (k, b) in itertools.product(enumerate(algs), enumerate(envs), enumerate(algs)):
        if i != k:
            xa = df[(df.algorithm == a) & (df.env == e)]["_score"].to_numpy()
            xb = df[(df.algorithm == b) & (df.env == e)]["_score"].to_numpy()
            A[i, j, k] = np.mean([(xb <= v).mean() for v in xa])
    want = equilibrium_oracle(A)
    got = r.table().set_index("algorithm").loc[algs, "point"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert r.weights["weight"].sum() == pytest.approx(1.0)
    assert r.weighting == "equilibrium"


def test_bad_input():
    with pytest.raises(ValueError, match="needs two; found only"):
        tuning_agnostic_aggregate(runs({("x", "E"): [1, 2]}), reps=10)
    with pytest.raises(ValueError, match="algorithm 'y' has no runs in env\\(s\\) E2"):
        tuning_agnostic_aggregate(runs({("x", "E1"): [1], ("x", "E2"): [1], ("y", "E1"): [2]}), reps=10)
    with pytest.raises(ValueError, match="weighting must be"):
        tuning_agnostic_aggregate(runs(HAND), weighting="nash")
    with pytest.raises(ValueError, match="expected a pandas DataFrame"):
        rank_table([1, 2, 3])
    with pytest.raises(ValueError, match="run table is empty"):
        rank_table(runs(HAND).iloc[:0])
    with pytest.raises(ValueError, match="must hold numbers"):
        rank_table(runs(HAND).assign(score="high"))
