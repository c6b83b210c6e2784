"""Expected maximum performance (Dodge et al. 2019): closed-form small cases, Monte Carlo, bands,
ranking flips, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.expected_max import expected_max_curve, expected_max_performance, ranking_flips


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
    assert curve.std[0] == pytest.approx(mc.std(), rel=0.02)


def test_curve_is_non_decreasing_and_band_contains_point():
    v = np.random.default_rng(1).normal(size=30)
    c = expected_max_curve(v, reps=2_000, seed=3)
    assert list(c.budgets) == list(range(1, 31))
    assert np.all(np.diff(c.point) >= -1e-12)
    assert np.all(c.low <= c.point) and np.all(c.point <= c.high)
    assert c.point[0] == pytest.approx(v.mean())
    t = c.table()
    assert list(t.columns[:5]) == ["budget", "point", "low", "high", "std"]
    pd.testing.assert_frame_equal(pd.DataFrame(c), t)  # rows, so pd.DataFrame(curve) works too
    assert c.n == 30 and c.reps == 2_000 and len(c) == 30


def test_band_shrinks_with_more_settings():
    rng = np.random.default_rng(2)
    small = expected_max_curve(rng.normal(size=8), budgets=[1, 4], reps=2_000, seed=0)
    large = expected_max_curve(rng.normal(size=200), budgets=[1, 4], reps=2_000, seed=0)
    assert np.all((large.high - large.low) < 0.5 * (small.high - small.low))


def test_seeded_bands_are_reproducible():
    v = np.arange(10.0)
    a = expected_max_curve(v, reps=300, seed=5)
    b = expected_max_curve(v, reps=300, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(a.low, b.low)


def test_ranking_flips_when_a_high_variance_algorithm_wins_only_with_budget():
    risky = expected_max_curve([0.0, 0.0, 0.0, 10.0], reps=50)  # mean 2.5, best 10
    steady = expected_max_curve([3.0, 3.0, 3.0, 3.0], reps=50)
    r = ranking_flips({"risky": risky, "steady": steady})
    # budget 1: 2.5 < 3; budget 2: 10 * (1 - (3/4)^2) = 4.375 > 3
    assert r.flips and r.crossings == (("risky", "steady", 2),)
    assert r.rankings.set_index("budget").loc[1, "order"] == "steady > risky"
    assert r.rankings.set_index("budget").loc[4, "rank[risky]"] == 1
    no = ranking_flips({"steady": steady, "better": expected_max_curve([4.0, 5.0, 6.0, 7.0], reps=50)})
    assert not no.flips and no.crossings == ()


def test_ranking_uses_common_budgets_and_accepts_tables():
    a = expected_max_curve([1.0, 2.0, 3.0], reps=20)
    b = expected_max_curve([2.0, 2.0, 2.0, 2.0, 2.0], reps=20).table()
    r = ranking_flips({"a": a, "b": b})
    assert r.budgets == (1, 2, 3)
    # a: 2, 2.444, 2.667 vs b: 2 -> tie at budget 1 is not a flip
    assert not r.flips


def test_bad_input():
    with pytest.raises(ValueError, match="NaN/inf"):
        expected_max_performance([1.0, np.nan], 1)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        expected_max_performance([], 1)
    with pytest.raises(ValueError, match="positive integers"):
        expected_max_performance([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="positive integers"):
        expected_max_performance([1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="at least two algorithms"):
        ranking_flips({"a": expected_max_curve([1.0], reps=5)})
    with pytest.raises(ValueError, match="share no budget"):
        ranking_flips({"a": expected_max_curve([1.0], budgets=[1], reps=5),
                       "b": expected_max_curve([1.0], budgets=[2], reps=5)})


def test_ranking_flips_accepts_one_long_table():
    risky = expected_max_curve([0.0, 0.0, 0.0, 10.0], reps=20).table().assign(algorithm="risky")
    steady = expected_max_curve([3.0, 3.0, 3.0, 3.0], reps=20).table().assign(algorithm="steady")
    r = ranking_flips(pd.concat([risky, steady]))
    assert bool(r) and r.crossings == (("risky", "steady", 2),)
