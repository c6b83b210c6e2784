"""Second-line oracle checks of evalkit.stats: exact enumeration, scipy's resampling functions,
rliable's bootstrap bands, statsmodels and Monte Carlo (complements test_stats_oracles.py)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from rliable import library as rly
from rliable import metrics as rlm
from scipy import stats as sps

from evalkit import stats
from evalkit.stats import aggregates, bootstrap

NAMES = ("iqm", "mean", "median", "optimality_gap")


@pytest.mark.parametrize("shape", [(3, 1), (4, 3), (5, 2), (7, 5), (10, 26)])
def test_vectorised_resample_aggregates_equal_the_aggregates_of_each_resample(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape).round(1)  # rounding makes ties, which the rank sort must handle
    runs, tasks = shape
    idx = rng.integers(0, runs, size=(40, tasks, runs)) + (np.arange(tasks) * runs)[None, :, None]
    out = aggregates.resample_aggregates(x, idx, NAMES)
    values = np.ascontiguousarray(x.T).ravel()[idx]
    for k in range(40):
        sample = values[k].T  # (runs, tasks)
        expected = [rlm.aggregate_iqm(sample), rlm.aggregate_mean(sample), rlm.aggregate_median(sample),
                    rlm.aggregate_optimality_gap(sample)]
        np.testing.assert_allclose(out[:, k], expected, rtol=1e-12, atol=1e-14)


def test_bench_sized_intervals_agree_with_rliable_for_all_four_aggregates():
    rng = np.random.default_rng(7)
    scores = {f"a{i}": rng.gamma(2.0 + i, 0.3, size=(10, 26)) for i in range(2)}
    ours = stats.interval_estimates(scores, list(NAMES), reps=5000, seed=3)
    fn = lambda x: np.array([rlm.aggregate_iqm(x), rlm.aggregate_mean(x), rlm.aggregate_median(x),
                             rlm.aggregate_optimality_gap(x)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _, theirs = rly.get_interval_estimates(scores, fn, reps=5000, random_state=np.random.RandomState(11))
    for alg in scores:
        for i, name in enumerate(NAMES):
            lo, hi = theirs[alg][:, i]
            est = ours[alg][name]
            assert abs(est.low - lo) <= 0.1 * (hi - lo) and abs(est.high - hi) <= 0.1 * (hi - lo), (alg, name)


def test_a_callable_aggregate_gives_the_same_interval_as_its_name():
    rng = np.random.default_rng(2)
    scores = {"a": rng.normal(size=(8, 4))}
    named = stats.interval_estimates(scores, "iqm", reps=4000, seed=5)["a"]
    called = stats.interval_estimates(scores, lambda m: rlm.aggregate_iqm(m), reps=4000, seed=5)["a"]
    assert named.point == pytest.approx(called.point, rel=1e-12)
    width = named.high - named.low
    assert abs(named.low - called.low) < 0.1 * width and abs(named.high - called.high) < 0.1 * width


def test_probability_of_improvement_interval_agrees_with_rliable():
    rng = np.random.default_rng(4)
    x, y = rng.normal(0.4, 1, size=(8, 2)), rng.normal(0, 1, size=(8, 2))
    ours = stats.probability_of_improvement(x, y, reps=5000, seed=1)  # rliable's loop: 2,000 keeps this ~1 s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        points, ivs = rly.get_interval_estimates({"x,y": (x, y)}, rlm.probability_of_improvement, reps=2000,
                                                 random_state=np.random.RandomState(2))
    lo, hi = np.ravel(ivs["x,y"])[:2]
    assert ours.point == pytest.approx(float(np.ravel(points["x,y"])[0]), rel=1e-12)
    assert abs(ours.low - lo) <= 0.1 * (hi - lo) and abs(ours.high - hi) <= 0.1 * (hi - lo)


def test_performance_profile_band_agrees_with_rliable():
    """rliable's create_performance_profile draws from the global RNG; its own inner call, seeded,
    is used instead. The profile moves in steps of 1/(runs*tasks), so endpoints may differ by one
    step (rliable differs from itself across seeds by as much)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(12, 4))
    taus = np.linspace(-1.5, 1.5, 7)
    ours = stats.performance_profile(x, taus, reps=5000, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        points, bands = rly.get_interval_estimates({"a": x}, lambda m: rly.score_distributions(m, taus), reps=5000,
                                                   random_state=np.random.RandomState(0))
    np.testing.assert_allclose(ours["point"], points["a"], rtol=1e-12)
    step = 1 / x.size
    assert np.all(np.abs(ours["low"] - bands["a"][0]) <= step + 1e-12)
    assert np.all(np.abs(ours["high"] - bands["a"][1]) <= step + 1e-12)


def _exact_two_sample_p(x, y, statistic):
    """Two-sided p-value by enumerating every split of the pooled runs (the exact permutation null)."""
    pooled = np.concatenate([x, y])
    observed = statistic(x, y)
    null = []
    for chosen in itertools.combinations(range(pooled.size), x.size):
        mask = np.zeros(pooled.size, bool)
        mask[list(chosen)] = True
        null.append(statistic(pooled[mask], pooled[~mask]))
    null = np.array(null)
    return min(1.0, 2 * min(np.mean(null <= observed + 1e-12), np.mean(null >= observed - 1e-12)))


def test_mann_whitney_exact_p_value_equals_enumeration():
    x, y = np.array([3.1, 4.7, 5.2, 6.0, 8.8]), np.array([1.0, 2.2, 3.5, 4.0])
    u = lambda a, b: np.sum(a[:, None] > b[None, :]) + 0.5 * np.sum(a[:, None] == b[None, :])
    res = stats.mann_whitney_test(x, y)
    assert res.statistic == u(x, y)
    assert res.p_value == pytest.approx(_exact_two_sample_p(x, y, u), rel=1e-10)


def test_wilcoxon_exact_p_value_equals_sign_flip_enumeration():
    d = np.array([0.9, -0.3, 1.7, 2.4, -1.1, 0.6, 3.0, 1.4])
    x, y = d + 10.0, np.full(d.size, 10.0)
    ranks = sps.rankdata(np.abs(d))
    w_plus = lambda signs: ranks[signs > 0].sum()
    null = np.array([w_plus(np.array(s)) for s in itertools.product((-1, 1), repeat=d.size)])
    observed = w_plus(np.sign(d))
    expected = min(1.0, 2 * min(np.mean(null <= observed), np.mean(null >= observed)))
    res = stats.wilcoxon_test(x, y)
    assert res.p_value == pytest.approx(expected, rel=1e-10)
    assert res.statistic == min(observed, ranks.sum() - observed) and res.paired


def test_permutation_test_agrees_with_enumeration_and_scipy():
    x, y = np.array([2.3, 3.1, 4.8, 5.0, 6.2]), np.array([1.2, 1.9, 2.8, 3.3, 2.0])
    diff = lambda a, b: a.mean() - b.mean()
    res = stats.permutation_test(x, y, reps=20_000, seed=0)
    assert res.statistic == pytest.approx(diff(x, y))
    assert res.p_value == pytest.approx(_exact_two_sample_p(x, y, diff), abs=0.01)
    ref = sps.permutation_test((x, y), lambda a, b, axis: a.mean(axis) - b.mean(axis), n_resamples=20_000,
                               permutation_type="independent", rng=np.random.default_rng(1), vectorized=True)
    assert res.p_value == pytest.approx(ref.pvalue, abs=0.01)


def _percentile_p(dist):
    return min(1.0, 2 * min(np.mean(dist <= 0), np.mean(dist >= 0)))


def test_bootstrap_tests_agree_with_scipy_bootstrap_distributions():
    rng = np.random.default_rng(8)
    x, y = rng.normal(0.6, 1, 12), rng.normal(0, 1.5, 10)
    ref = sps.bootstrap((x, y), lambda a, b, axis: a.mean(axis) - b.mean(axis), n_resamples=20_000,
                        method="percentile", rng=np.random.default_rng(0), vectorized=True)
    ours = stats.bootstrap_test(x, y, reps=20_000, seed=3)
    assert ours.p_value == pytest.approx(_percentile_p(ref.bootstrap_distribution), abs=0.01)
    assert ours.reject == (not ref.confidence_interval.low <= 0 <= ref.confidence_interval.high)
    z = x[:10] - 0.4 + rng.normal(0, 0.3, 10)
    ref = sps.bootstrap((x[:10] - z,), np.mean, n_resamples=20_000, method="percentile",
                        rng=np.random.default_rng(0))
    ours = stats.paired_bootstrap_test(x[:10], z, reps=20_000, seed=3)
    assert ours.p_value == pytest.approx(_percentile_p(ref.bootstrap_distribution), abs=0.01)


def test_welch_and_paired_t_equal_scipy_closed_forms():
    rng = np.random.default_rng(9)
    x, y = rng.normal(0, 1, 7), rng.normal(1, 3, 13)
    ref = sps.ttest_ind(x, y, equal_var=False)
    res = stats.welch_t_test(x, y)
    assert (res.statistic, res.p_value) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)
    ref = sps.ttest_rel(x, y[:7])
    res = stats.paired_t_test(x, y[:7])
    assert (res.statistic, res.p_value) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)
    assert res.as_row()["reject"] == (ref.pvalue < 0.05) and "p =" in str(res)


def test_corrections_match_statsmodels_on_random_and_tied_pvalues():
    from statsmodels.stats.multitest import multipletests
    rng = np.random.default_rng(10)
    for p in (rng.uniform(0, 0.2, 25), np.array([0.02, 0.02, 0.5, 0.001, 0.02, 1.0]), np.array([0.3])):
        np.testing.assert_allclose(stats.holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
        np.testing.assert_allclose(stats.benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)


@pytest.mark.parametrize("effect,sd,alpha,power", [(1.0, 2.0, 0.05, 0.8), (0.3, 1.0, 0.05, 0.9),
                                                   (2.0, 1.0, 0.01, 0.8), (50.0, 80.0, 0.1, 0.7)])
def test_runs_needed_matches_statsmodels(effect, sd, alpha, power):
    from statsmodels.stats.power import TTestIndPower
    expected = int(np.ceil(TTestIndPower().solve_power(effect_size=effect / sd, alpha=alpha, power=power)))
    assert stats.runs_needed(effect, sd, alpha=alpha, power=power) == max(expected, 2)


@pytest.mark.parametrize("effect,sd", [(1.0, 2.0), (0.3, 1.0), (2.0, 1.0)])
def test_paired_runs_needed_matches_statsmodels(effect, sd):
    from statsmodels.stats.power import TTestPower
    expected = int(np.ceil(TTestPower().solve_power(effect_size=effect / sd, alpha=0.05, power=0.8)))
    assert stats.runs_needed(effect, sd, test="paired") == max(expected, 2)
    assert stats.runs_needed(effect, sd, test="paired") < stats.runs_needed(effect, sd, test="welch")
    with pytest.raises(ValueError, match="test"):
        stats.runs_needed(effect, sd, test="anova")


@pytest.mark.parametrize("n_a,n_b", [(5, 5), (10, 20), (3, 30)])
def test_minimum_detectable_effect_matches_statsmodels(n_a, n_b):
    from statsmodels.stats.power import TTestIndPower
    d = TTestIndPower().solve_power(nobs1=n_a, ratio=n_b / n_a, alpha=0.05, power=0.8)
    assert stats.minimum_detectable_effect(n_a, n_b, sd=3.0, alpha=0.05, power=0.8) == pytest.approx(3.0 * d,  # statsmodels solves to ~1e-6
                                                                                                         rel=1e-5)


def test_minimum_detectable_effect_has_its_power_by_monte_carlo():
    rng = np.random.default_rng(11)
    mde = stats.minimum_detectable_effect(8, 8, sd=1.0, alpha=0.05, power=0.8)
    x, y = rng.normal(mde, 1, (40_000, 8)), rng.normal(0, 1, (40_000, 8))
    power = np.mean(sps.ttest_ind(x, y, axis=1).pvalue < 0.05)
    assert power == pytest.approx(0.8, abs=4 * np.sqrt(0.8 * 0.2 / 40_000))


def test_cdf_normalization_equals_scipy_percentileofscore():
    rng = np.random.default_rng(12)
    ref = rng.integers(0, 10, 50).astype(float)  # many ties: the two rules differ
    values = np.arange(-1.0, 11.0, 0.5)
    leq = stats.cdf_normalize(values, ref, tie="leq")
    strict = stats.cdf_normalize(values, ref, tie="strict")
    np.testing.assert_allclose(leq, [sps.percentileofscore(ref, v, kind="weak") / 100 for v in values])
    np.testing.assert_allclose(strict, [sps.percentileofscore(ref, v, kind="strict") / 100 for v in values])


def test_one_sided_tolerance_interval_has_its_confidence_by_monte_carlo():
    rng = np.random.default_rng(13)
    n, p, g = 6, 0.9, 0.9
    draws = rng.normal(size=(2000, n))
    lows = np.array([stats.tolerance_interval(d, p, g, sides=1).low for d in draws])
    hit = np.mean(sps.norm.sf(lows) >= p)
    assert hit == pytest.approx(g, abs=4 * np.sqrt(g * (1 - g) / 2000))


def test_nonparametric_interval_uses_inner_order_statistics_when_n_allows():
    x = np.arange(300.0)
    ti = stats.tolerance_interval(x, 0.9, 0.95, method="nonparametric")
    from evalkit.stats.tolerance import nonparametric_confidence
    r = int(ti.low) + 1  # x is 0..299, so X(r) = r - 1
    assert r > 1 and ti.high == 299 - (r - 1)
    assert nonparametric_confidence(300, 0.9, r, 2) >= 0.95 > nonparametric_confidence(300, 0.9, r + 1, 2)


def test_score_dict_rejects_missing_envs_and_unequal_runs_and_omits_nan_with_a_warning():
    base = pd.DataFrame({"algorithm": ["a", "a", "a", "a", "b", "b", "b", "b"],
                         "env": ["E1", "E1", "E2", "E2"] * 2, "seed_index": [0, 1] * 4,
                         "score": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], "step": 0})
    with pytest.raises(ValueError, match="no runs in"):
        stats.score_dict(base[~((base.algorithm == "b") & (base.env == "E2"))])
    with pytest.raises(ValueError, match="unequal runs"):
        stats.score_dict(base.drop(index=0))
    nan = base.assign(score=[1.0, 2.0, 3.0, np.nan, 5.0, 6.0, 7.0, 8.0])
    with pytest.raises(ValueError, match="NaN"):
        stats.interval_estimates(nan, "mean", reps=100)
    with pytest.warns(UserWarning, match="dropped 1"):
        est = stats.interval_estimates(pd.concat([nan, base.assign(seed_index=base.seed_index + 2)]), "mean",
                                       reps=100, nan_policy="omit")
    assert est["a"].n == 3 and est["b"].n == 4


def _mc_confidence(k, n, p, sides, trials, rng):
    hits = 0
    for _ in range(trials // 200_000):
        x = rng.normal(size=(200_000, n))
        m, s = x.mean(axis=1), x.std(axis=1, ddof=1)
        content = sps.norm.sf(m - k * s) if sides == 1 else sps.norm.cdf(m + k * s) - sps.norm.cdf(m - k * s)
        hits += int(np.sum(content >= p))
    return hits / trials


def test_every_typed_table_factor_has_its_confidence_by_monte_carlo():
    """The exact-table values typed in test_stats_oracles.py (Krishnamoorthy & Mathew 2009, Tables
    B1-B3; ISO 16269-6:2014 Annex C) are themselves checked by simulation (catches gross typos)."""
    from tests.test_stats_oracles import ONE_SIDED, TWO_SIDED
    rng = np.random.default_rng(2024)
    trials = 200_000
    for sides, table in ((1, ONE_SIDED), (2, TWO_SIDED)):
        for (n, p, g), k in table.items():
            se = np.sqrt(g * (1 - g) / trials)
            assert _mc_confidence(k, n, p, sides, trials, rng) == pytest.approx(g, abs=4 * se), (sides, n, p, g)


def test_exact_two_sided_factor_n10_is_3393_not_the_approximate_3379():
    """n = 10, p = gamma = 0.95: the exact factor 3.3934 has confidence 0.9500 by simulation; the
    often-quoted 3.379 (an approximation) has 0.9484 -- 10 Monte Carlo SEs short at 2 million trials."""
    k = stats.tolerance_factor(10, 0.95, 0.95, sides=2)
    assert k == pytest.approx(3.3934, abs=1e-4)
    rng = np.random.default_rng(10)
    trials = 2_000_000
    se = np.sqrt(0.95 * 0.05 / trials)
    assert _mc_confidence(k, 10, 0.95, 2, trials, rng) == pytest.approx(0.95, abs=4 * se)
    assert _mc_confidence(3.379, 10, 0.95, 2, trials, rng) < 0.95 - 4 * se


def lemire_draws(bg: np.random.BitGenerator, runs: int, n: int) -> np.ndarray:
    """The kernel's draws of one resample, written out in numpy (evalkit.stats.kernels.fill): fresh
    64-bit words, 16-bit lanes low to high (32-bit above 2**16 runs), Lemire's multiply-shift,
    low part below 2**bits mod runs rejected; the rest of the last word is discarded."""
    bits, lanes = (16, 4) if runs <= 2**16 else (32, 2)
    mask, thr = np.uint64(2**bits - 1), np.uint64(2**bits % runs)
    out = np.zeros(0, np.uint64)
    while out.size < n:
        words = bg.random_raw(-(-(n - out.size) // lanes))
        lane = ((words[:, None] >> (np.uint64(bits) * np.arange(lanes, dtype=np.uint64))) & mask).ravel()
        m = lane * np.uint64(runs)
        out = np.r_[out, (m >> np.uint64(bits))[(m & mask) >= thr]]
    return out[:n].astype(np.intp)


@pytest.mark.parametrize("shape", [(2, 3), (300, 2), (3, 22_000), (70_000, 1)])  # 16-bit / 32-bit lanes
def test_bootstrap_distribution_replays_exactly_from_its_draws(shape):
    """Re-draw the same stratified indices from the same generator (the kernel's draws written out
    in numpy) and aggregate each resample with rliable's functions: the compiled replicates must
    match to rounding, and a longer run must extend a shorter one (resample b's draws are its own)."""
    runs, tasks = shape
    reps = 45 if runs * tasks < 10_000 else 4
    x = np.random.default_rng(runs).normal(size=shape)
    boot = bootstrap.bootstrap_distribution(x, NAMES, reps, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    expected = []
    for _ in range(reps):
        d = lemire_draws(rng.bit_generator, runs, runs * tasks).reshape(tasks, runs)
        s = x[d.T, np.arange(tasks)]
        expected.append([rlm.aggregate_iqm(s), rlm.aggregate_mean(s), rlm.aggregate_median(s),
                         rlm.aggregate_optimality_gap(s)])
    np.testing.assert_allclose(boot, np.array(expected).T, rtol=1e-12, atol=1e-14)
    shorter = bootstrap.bootstrap_distribution(x, NAMES, reps // 2, np.random.default_rng(1))
    assert np.array_equal(shorter, boot[:, :reps // 2])
    assert np.array_equal(bootstrap.bootstrap_distribution(x, NAMES, reps, np.random.default_rng(1)), boot)


def test_coverage_warning_fires_where_simulation_shows_under_coverage():
    rng = np.random.default_rng(21)
    trials = 400
    x5, x30 = rng.normal(size=(trials, 5)), rng.normal(size=(trials, 30))
    pct5 = np.mean([(lambda e: e.low <= 0 <= e.high)(stats.bootstrap_interval(row, reps=1000, seed=i))
                    for i, row in enumerate(x5)])
    t30 = np.mean([(lambda e: e.low <= 0 <= e.high)(stats.t_interval(row)) for row in x30])
    assert pct5 < 0.90 and stats.coverage_warning("percentile", 5) is not None  # about 0.84 measured
    assert t30 > 0.92 and stats.coverage_warning("t", 30) is None
