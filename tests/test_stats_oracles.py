"""evalkit.stats against outside oracles: rliable 1.2.0, scipy.stats, statsmodels, closed forms, Monte Carlo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rliable import library as rly
from rliable import metrics as rlm
from scipy import stats as sps

from evalkit import stats
from evalkit.stats import aggregates, bootstrap

RNG = np.random.default_rng(12345)


def _matrices(n_alg=3, runs=10, tasks=6, seed=0):
    rng = np.random.default_rng(seed)
    return {f"alg{i}": rng.gamma(2.0, 0.5, size=(runs, tasks)) + i * 0.1 for i in range(n_alg)}


@pytest.mark.parametrize("shape", [(10, 26), (7, 3), (5, 1), (33, 4)])
def test_point_estimates_equal_rliable(shape):
    x = RNG.normal(size=shape) * RNG.uniform(0.1, 10)
    for ours, theirs in [(stats.iqm, rlm.aggregate_iqm), (stats.mean, rlm.aggregate_mean),
                         (stats.median, rlm.aggregate_median), (stats.optimality_gap, rlm.aggregate_optimality_gap)]:
        assert ours(x) == pytest.approx(theirs(x), rel=1e-12, abs=1e-14)


def test_resample_count_aggregates_equal_materialised_resamples():
    x = RNG.normal(size=(9, 5))
    counts = bootstrap.resample_counts(np.random.default_rng(3), 9, 5, 50)
    for k in range(50):
        sample = np.column_stack([np.repeat(x[:, t], counts[k, t * 9:(t + 1) * 9]) for t in range(5)])
        for name in ("iqm", "mean", "median", "optimality_gap"):
            assert aggregates.COUNT_AGGREGATES[name](counts[k:k + 1], x)[0] == pytest.approx(
                aggregates.AGGREGATES[name](sample), rel=1e-12, abs=1e-14)
        assert (counts[k].reshape(5, 9).sum(1) == 9).all()  # stratified: each task keeps its runs


def test_bootstrap_intervals_agree_with_rliable_within_a_tenth_of_the_width():
    scores = _matrices()
    names = ["iqm", "mean", "median", "optimality_gap"]
    ours = stats.interval_estimates(scores, names, reps=5000, seed=1)
    fn = lambda x: np.array([rlm.aggregate_iqm(x), rlm.aggregate_mean(x), rlm.aggregate_median(x),
                             rlm.aggregate_optimality_gap(x)])
    points, intervals = rly.get_interval_estimates(scores, fn, reps=5000, random_state=np.random.RandomState(7))
    for alg in scores:
        for i, name in enumerate(names):
            est = ours[alg][name]
            assert est.point == pytest.approx(points[alg][i], rel=1e-12)
            width = intervals[alg][1, i] - intervals[alg][0, i]
            assert abs(est.low - intervals[alg][0, i]) <= 0.1 * width
            assert abs(est.high - intervals[alg][1, i]) <= 0.1 * width
            assert est.reps == 5000 and est.n == 10 and "stratified" in est.method


def test_bca_intervals_agree_with_rliable_bca():
    scores = _matrices(n_alg=1, runs=12, tasks=4, seed=5)
    ours = stats.interval_estimates(scores, "mean", reps=5000, method="bca", seed=2)["alg0"]
    _, iv = rly.get_interval_estimates(scores, lambda x: np.array([rlm.aggregate_mean(x)]), method="bca", reps=5000,
                                       random_state=np.random.RandomState(3))
    width = iv["alg0"][1, 0] - iv["alg0"][0, 0]
    assert abs(ours.low - iv["alg0"][0, 0]) <= 0.1 * width and abs(ours.high - iv["alg0"][1, 0]) <= 0.1 * width


def test_single_sample_intervals_match_scipy():
    x = RNG.lognormal(size=15)
    t = stats.t_interval(x, 0.9)
    lo, hi = sps.t.interval(0.9, 14, loc=x.mean(), scale=sps.sem(x))
    assert (t.low, t.high) == pytest.approx((lo, hi), rel=1e-12)
    for method, scipy_method in (("percentile", "percentile"), ("bca", "BCa")):
        ours = stats.bootstrap_interval(x, np.mean, reps=20_000, method=method, seed=4)
        ref = sps.bootstrap((x,), np.mean, n_resamples=20_000, method=scipy_method,
                            rng=np.random.default_rng(9)).confidence_interval
        width = ref.high - ref.low
        assert abs(ours.low - ref.low) < 0.05 * width and abs(ours.high - ref.high) < 0.05 * width
    med = stats.bootstrap_interval(x, np.median, reps=2000, seed=1)
    assert med.low <= np.median(x) <= med.high and med.name == "median"


def test_probability_of_improvement_equals_rliable_and_mann_whitney():
    x, y = RNG.normal(0.3, 1, size=(8, 4)), RNG.normal(0, 1, size=(11, 4))
    y[0, 0] = x[0, 0]  # a tie counts one half
    est = stats.probability_of_improvement(x, y, reps=2000, seed=0)
    assert est.point == pytest.approx(rlm.probability_of_improvement(x, y), rel=1e-12)
    u = np.mean([sps.mannwhitneyu(x[:, t], y[:, t]).statistic / (8 * 11) for t in range(4)])
    assert est.point == pytest.approx(u, rel=1e-12)
    assert est.low <= est.point <= est.high


def test_performance_profile_point_equals_rliable():
    x = RNG.normal(size=(10, 5))
    taus = np.linspace(-2, 2, 9)
    ours = stats.performance_profile(x, taus, reps=500, seed=0)
    ref = rlm.run_score_distributions if hasattr(rlm, "run_score_distributions") else None
    expected = np.array([np.mean([np.mean(x[:, t] > tau) for t in range(5)]) for tau in taus])
    assert np.allclose(ours["point"], expected)
    if ref is not None:
        assert np.allclose(ours["point"], ref(x, taus))
    assert (ours["low"] <= ours["point"] + 1e-12).all() and (ours["point"] <= ours["high"] + 1e-12).all()


# Krishnamoorthy & Mathew (2009), "Statistical Tolerance Regions", Tables B1 (two-sided, exact
# Odeh-Owen factors) and B2/B3 (one-sided, exact noncentral-t factors); the same values appear in
# ISO 16269-6:2014 Tables C. Every cell is also confirmed by Monte Carlo below.
ONE_SIDED = {(5, .90, .95): 3.407, (5, .95, .95): 4.203, (5, .99, .95): 5.741, (10, .90, .95): 2.355,
             (10, .95, .95): 2.911, (10, .99, .95): 3.981, (10, .95, .99): 3.738, (20, .90, .95): 1.926,
             (20, .95, .95): 2.396, (20, .99, .95): 3.295, (30, .90, .95): 1.777, (30, .95, .95): 2.220}
TWO_SIDED = {(5, .90, .95): 4.291, (5, .95, .95): 5.077, (10, .90, .95): 2.856, (10, .95, .95): 3.393,
             (10, .99, .95): 4.437, (10, .95, .99): 4.294, (20, .90, .95): 2.319, (20, .95, .95): 2.760,
             (20, .99, .95): 3.621, (30, .90, .95): 2.145, (30, .95, .95): 2.555, (30, .99, .95): 3.355}


@pytest.mark.parametrize("cell", list(ONE_SIDED), ids=lambda c: f"one-{c}")
def test_one_sided_tolerance_factor_matches_exact_table(cell):
    assert stats.tolerance_factor(*cell, sides=1) == pytest.approx(ONE_SIDED[cell], abs=5e-4)


@pytest.mark.parametrize("cell", list(TWO_SIDED), ids=lambda c: f"two-{c}")
def test_two_sided_tolerance_factor_matches_exact_table(cell):
    assert stats.tolerance_factor(*cell, sides=2) == pytest.approx(TWO_SIDED[cell], abs=5e-4)


@pytest.mark.parametrize("n,p,g", [(10, .95, .95), (5, .90, .95), (20, .99, .95)])
def test_tolerance_factors_have_their_confidence_by_monte_carlo(n, p, g):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(200_000, n))
    m, s = x.mean(1), x.std(1, ddof=1)
    se = np.sqrt(g * (1 - g) / len(m))
    k2, k1 = stats.tolerance_factor(n, p, g, 2), stats.tolerance_factor(n, p, g, 1)
    assert abs(np.mean(sps.norm.cdf(m + k2 * s) - sps.norm.cdf(m - k2 * s) >= p) - g) < 4 * se
    assert abs(np.mean(sps.norm.sf(m - k1 * s) >= p) - g) < 4 * se
    # Howe's approximation is not what we compute: for n = 10, p = gamma = .95 it gives 3.38x
    if (n, p, g) == (10, .95, .95):
        howe = sps.norm.ppf(0.975) * np.sqrt(9 * 1.1 / sps.chi2.ppf(0.05, 9))
        assert abs(howe - k2) > 0.01


def test_nonparametric_minimum_runs_are_the_classic_values():
    assert stats.nonparametric_min_runs(0.90, 0.95, sides=2) == 46
    assert stats.nonparametric_min_runs(0.95, 0.95, sides=2) == 93
    assert stats.nonparametric_min_runs(0.95, 0.95, sides=1) == 59


def test_nonparametric_interval_refuses_rather_than_narrows():
    x = RNG.normal(size=30)
    ti = stats.tolerance_interval(x, 0.9, 0.95, method="nonparametric")
    assert ti.refused and np.isnan(ti.low) and "at least 46 runs" in ti.message
    big = stats.tolerance_interval(RNG.normal(size=200), 0.9, 0.95, method="nonparametric")
    assert not big.refused and big.achieved_confidence >= 0.95 and big.low < big.high


def test_nonparametric_confidence_by_monte_carlo():
    rng = np.random.default_rng(1)
    x = np.sort(rng.normal(size=(50_000, 46)), axis=1)
    content = sps.norm.cdf(x[:, -1]) - sps.norm.cdf(x[:, 0])
    from evalkit.stats.tolerance import nonparametric_confidence
    assert np.mean(content >= 0.9) == pytest.approx(nonparametric_confidence(46, 0.9, 1, 2), abs=0.005)


def test_tests_match_scipy_and_their_false_positive_rate_is_near_alpha():
    x, y = RNG.normal(0, 1, 12), RNG.normal(0.5, 2, 9)
    assert stats.welch_t_test(x, y).p_value == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue)
    assert stats.mann_whitney_test(x, y).p_value == pytest.approx(sps.mannwhitneyu(x, y).pvalue)
    ranks = sps.rankdata(np.concatenate([x, y]))
    assert stats.ranked_t_test(x, y).p_value == pytest.approx(sps.ttest_ind(ranks[:12], ranks[12:]).pvalue)
    z = RNG.normal(0, 1, 12)
    assert stats.paired_t_test(x, z).p_value == pytest.approx(sps.ttest_rel(x, z).pvalue)
    assert stats.wilcoxon_test(x, z).p_value == pytest.approx(sps.wilcoxon(x, z).pvalue)
    perm = stats.permutation_test(x, y, reps=5000, seed=0)
    assert perm.p_value == pytest.approx(sps.ttest_ind(x, y).pvalue, abs=0.1)
    rng = np.random.default_rng(0)
    rejects = np.mean([stats.bootstrap_test(rng.normal(size=10), rng.normal(size=10), reps=1000, seed=i).reject
                       for i in range(300)])
    assert rejects < 0.12  # H0 true: about alpha (Colas et al. measured ~0.06-0.08 at n = 10)
    assert stats.paired_bootstrap_test(x + 5, x + 5.01 + RNG.normal(0, 0.001, 12), reps=2000).reject


def test_multiple_comparison_corrections_match_statsmodels():
    from statsmodels.stats.multitest import multipletests
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.001, 0.04])
    assert np.allclose(stats.holm(p), multipletests(p, method="holm")[1])
    assert np.allclose(stats.benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1])


def test_runs_needed_and_minimum_detectable_effect_match_statsmodels():
    from statsmodels.stats.power import TTestIndPower
    solver = TTestIndPower()
    n = stats.runs_needed(effect=0.5, sd=1.0, alpha=0.05, power=0.8)
    assert n == int(np.ceil(solver.solve_power(effect_size=0.5, alpha=0.05, power=0.8)))
    mde = stats.minimum_detectable_effect(10, 10, sd=2.0, alpha=0.05, power=0.8)
    assert mde / 2.0 == pytest.approx(solver.solve_power(nobs1=10, alpha=0.05, power=0.8), rel=1e-6)


def test_normalizations_and_their_tie_rules():
    ref = np.array([1.0, 2.0, 2.0, 3.0])
    assert stats.cdf_normalize([2.0], ref, tie="leq").tolist() == [0.75]  # Jordan et al.: P(X <= x)
    assert stats.cdf_normalize([2.0], ref, tie="strict").tolist() == [0.25]  # CHS: strictly below
    scores = np.array([[0.0, 10.0], [5.0, 20.0]])
    assert np.allclose(stats.min_max_normalize(scores, [0.0, 10.0], [10.0, 20.0]), [[0, 0], [0.5, 1]])


def test_score_dict_from_a_run_table():
    table = pd.DataFrame({"algorithm": ["a"] * 4 + ["b"] * 4, "env": ["E2", "E1"] * 4,
                          "seed_index": [0, 0, 1, 1] * 2, "score": np.arange(8.0)})
    d = stats.score_dict(table)
    assert d["a"].tolist() == [[1.0, 0.0], [3.0, 2.0]]  # tasks in sorted order
    est = stats.interval_estimates(table, "mean", reps=200)
    assert set(est) == {"a", "b"} and est["b"].point == pytest.approx(5.5)


BAD = [
    (lambda: stats.interval_estimates({}, "iqm"), "scores"),
    (lambda: stats.interval_estimates({"a": np.ones((1, 3))}, "iqm"), "at least 2 runs"),
    (lambda: stats.interval_estimates({"a": [[1, 2], [3]]}, "iqm"), "ragged"),
    (lambda: stats.interval_estimates({"a": np.ones((3, 2)), "b": np.ones((3, 3))}, "iqm"), "same tasks"),
    (lambda: stats.interval_estimates({"a": np.array([[1.0, np.nan], [2, 3]])}, "iqm"), "NaN"),
    (lambda: stats.interval_estimates({"a": np.ones((3, 2))}, "iqm", confidence=1.5), "confidence"),
    (lambda: stats.interval_estimates({"a": np.ones((3, 2))}, "best"), "aggregate"),
    (lambda: stats.interval_estimates({"a": np.ones((3, 2))}, "iqm", reps=0), "reps"),
    (lambda: stats.t_interval([1.0]), "at least 2 runs"),
    (lambda: stats.t_interval([]), "at least 2 runs"),
    (lambda: stats.tolerance_factor(1, 0.9, 0.95), "n: expected"),
    (lambda: stats.tolerance_interval([1, 2, 3], coverage=1.0), "coverage"),
    (lambda: stats.probability_of_improvement(np.ones((3, 2)), np.ones((3, 3))), "same number of tasks"),
    (lambda: stats.paired_t_test([1, 2, 3], [1, 2]), "paired"),
    (lambda: stats.runs_needed(0.0, 1.0), "effect"),
    (lambda: stats.cdf_normalize([1], [1], tie="between"), "tie"),
    (lambda: stats.holm([0.5, 1.5]), "pvalues"),
]


@pytest.mark.parametrize("call,fragment", BAD)
def test_bad_input_is_a_value_error_naming_the_argument(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


def test_nan_policy_omit_drops_with_a_warning():
    with pytest.warns(UserWarning, match="dropped 1"):
        est = stats.t_interval([1.0, 2.0, np.nan, 3.0], nan_policy="omit")
    assert est.n == 3


def test_results_render_as_rows():
    est = stats.interval_estimates({"a": RNG.normal(size=(5, 2))}, "iqm", reps=100)["a"]
    row = est.as_row()
    assert {"point", "low", "high", "method", "confidence", "n", "reps"} <= set(row)
    assert "n=5" in str(est) and "reps=100" in str(est)
    assert stats.coverage_warning("percentile", 5) and stats.coverage_warning("t", 30) is None


# A second, independently printed table of two-sided factors at 95% confidence, to 2 decimals:
# Berthouex & Brown, "Statistics for Environmental Engineers", 2nd ed., Table 21.1.
PRINTED_2DP = {4: (5.37, 6.34, 8.22), 5: (4.29, 5.08, 6.60), 10: (2.86, 3.39, 4.44), 15: (2.49, 2.96, 3.89),
               20: (2.32, 2.76, 3.62), 30: (2.15, 2.55, 3.35), 60: (1.96, 2.34, 3.07)}


@pytest.mark.parametrize("n", list(PRINTED_2DP))
def test_two_sided_factors_match_a_second_printed_table(n):
    for p, printed in zip((0.90, 0.95, 0.99), PRINTED_2DP[n]):
        assert round(stats.tolerance_factor(n, p, 0.95, 2), 2) == pytest.approx(printed, abs=0.0051)
