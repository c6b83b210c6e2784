"""Expected maximum performance (Dodge et al. 2019): closed-form small cases, Monte Carlo, bands,
ranking flips, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.expected_max import budget_rankings, expected_max_curve, expected_max_performance, ranking_flips


def test_closed_form_small_cases():
    v = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert expected_max_performance(v, 1) == pytest.approx(2.5)  # n = 1: the mean
    # n = 2: sum_i v(i) [(i/4)^2 - ((i-1)/4)^2] = (1*1 + 2*3 + 3*5 + 4*7) / 16
    assert expected_max_performance(v, 2) == pytest.approx(50 / 16)
    # n = 3: (1*1 + 2*7 + 3*19 + 4*37) / 64
    assert expected_max_performance(v, 3) == pytest.approx(220 / 64)
    np.testing.assert_allclose(expected_max_performance(v, np.array([1, 2, 3])), [2.5, 50 / 16, 220 / 64])
    assert expected_max_performance(v, 500) == pytest.approx(4.0)  # many draws: the best setting
    assert expected_max_performance([2.0, 2.0, 2.0], 7) == pytest.approx(2.0)  # ties
    assert expected_max_performance([5.0], 3) == 5.0
    # two settings, n = 2: max is the better one unless both draws pick the worse (prob 1/4)
    assert expected_max_performance([0.0, 1.0], 2) == pytest.approx(0.75)


def test_matches_monte_carlo():
    rng = np.random.default_rng(0)
    v = rng.gamma(2.0, size=12)
    draws = v[rng.integers(0, 12, size=(200_000, 5))]
    mc = draws.max(axis=1)
    assert expected_max_performance(v, 5) == pytest.approx(mc.mean(), abs=4 * mc.std() / np.sqrt(len(mc)))
    curve = expected_max_curve(v, budgets=[5], reps=50)
    assert curve["std"].iloc[0] == pytest.approx(mc.std(), rel=0.02)
    # n larger than N (draws with replacement) too
    mc9 = v[rng.integers(0, 12, size=(200_000, 20))].max(axis=1)
    assert expected_max_performance(v, 20) == pytest.approx(mc9.mean(), abs=4 * mc9.std() / np.sqrt(len(mc9)))


def test_curve_is_non_decreasing_and_band_contains_point():
    v = np.random.default_rng(1).normal(size=30)
    c = expected_max_curve(v, reps=2_000, seed=3)
    assert isinstance(c, pd.DataFrame)
    assert list(c["budget"]) == list(range(1, 31))
    assert np.all(np.diff(c["point"]) >= -1e-12)
    assert np.all(c["low"] <= c["point"]) and np.all(c["point"] <= c["high"])
    assert c["point"].iloc[0] == pytest.approx(v.mean())
    assert c["point"].iloc[-1] == pytest.approx(expected_max_performance(v, 30))
    assert list(c.columns[:5]) == ["budget", "point", "low", "high", "std"]
    assert (c["n"] == 30).all() and (c["reps"] == 2_000).all() and c.attrs["confidence"] == 0.95


def test_band_shrinks_with_more_settings():
    rng = np.random.default_rng(2)
    small = expected_max_curve(rng.normal(size=8), budgets=[1, 4], reps=2_000, seed=0)
    large = expected_max_curve(rng.normal(size=200), budgets=[1, 4], reps=2_000, seed=0)
    assert np.all((large["high"] - large["low"]) < 0.5 * (small["high"] - small["low"]))


def test_seeded_bands_are_reproducible():
    v = np.arange(10.0)
    a = expected_max_curve(v, reps=300, seed=5)
    b = expected_max_curve(v, reps=300, seed=np.random.default_rng(5))
    pd.testing.assert_frame_equal(a, b)


def test_one_setting_band_is_the_point():
    c = expected_max_curve([3.5], budgets=[1, 5], reps=100)
    assert (c["point"] == 3.5).all() and (c["low"] == 3.5).all() and (c["high"] == 3.5).all()


def curves(**values):
    return pd.concat([expected_max_curve(v, reps=20).assign(algorithm=a) for a, v in values.items()])


def test_ranking_flips_when_a_high_variance_algorithm_wins_only_with_budget():
    table = curves(risky=[0.0, 0.0, 0.0, 10.0], steady=[3.0, 3.0, 3.0, 3.0])  # risky: mean 2.5, best 10
    assert ranking_flips(table) is True
    r = budget_rankings(table)
    # budget 1: 2.5 < 3; budget 2: 10 * (1 - (3/4)^2) = 4.375 > 3
    assert r.flips and r.crossings == (("risky", "steady", 2),)
    assert r.rankings.set_index("budget").loc[1, "order"] == "steady > risky"
    assert r.rankings.set_index("budget").loc[4, "rank[risky]"] == 1
    assert ranking_flips(curves(steady=[3.0] * 4, better=[4.0, 5.0, 6.0, 7.0])) is False


def test_ranking_uses_common_budgets_and_ties_are_not_flips():
    table = curves(a=[1.0, 2.0, 3.0], b=[2.0] * 5)
    r = budget_rankings(table)
    assert r.budgets == (1, 2, 3)
    # a: 2, 2.444, 2.667 vs b: 2 -> tie at budget 1 is not a flip
    assert not r.flips and ranking_flips(table) is False
    # the dict form is accepted too
    assert ranking_flips({"a": table[table.algorithm == "a"], "b": table[table.algorithm == "b"]}) is False


def test_bad_input():
    with pytest.raises(ValueError, match="NaN/inf"):
        expected_max_performance([1.0, np.nan], 1)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        expected_max_performance([], 1)
    with pytest.raises(ValueError, match="positive integers"):
        expected_max_performance([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="positive integers"):
        expected_max_performance([1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="reps must be"):
        expected_max_curve([1.0, 2.0], reps=0)
    with pytest.raises(ValueError, match="at least two algorithms"):
        ranking_flips(curves(a=[1.0]))
    with pytest.raises(ValueError, match="lacks column"):
        ranking_flips(expected_max_curve([1.0], reps=5))
    with pytest.raises(ValueError, match="share no budget"):
        ranking_flips(pd.concat([expected_max_curve([1.0], budgets=[1], reps=5).assign(algorithm="a"),
                                 expected_max_curve([1.0], budgets=[2], reps=5).assign(algorithm="b")]))
