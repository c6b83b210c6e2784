"""The fast bootstrap paths (the compiled kernels of evalkit.stats.kernels, the numpy count paths of
evalkit.stats.resample, count-form PoI and profiles, closed-form jackknife, tolerance factors)
against the straightforward definitions, on random shapes with ties and constant tasks; the
kernels' draws against their definition written out in numpy; per-algorithm streams derived from
names."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rliable import metrics as rlm
from scipy import integrate, special

from evalkit import stats
from evalkit.stats import aggregates, improvement, kernels, profiles, resample, tolerance
from tests.test_stats_crosschecks import lemire_draws

NAMES = ("iqm", "mean", "median", "optimality_gap")


def make_scores(rng: np.random.Generator, runs: int, tasks: int, kind: str) -> np.ndarray:
    if kind == "ties":
        return rng.integers(0, 4, size=(runs, tasks)).astype(float) / 2  # many equal scores
    x = rng.normal(size=(runs, tasks)) * 0.5 + 0.8  # straddles the optimality gap's 1.0
    if kind == "constant":
        x[:, 0] = 0.7  # a task where every run scores the same
        x[:, -1] = x[0, -1]
    return x


def materialised(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(n, runs, tasks) resampled matrices from draws idx (n, tasks, runs): the plain definition."""
    return x[idx.transpose(0, 2, 1).astype(np.intp), np.arange(x.shape[1])]


def plain_aggregates(sample: np.ndarray) -> list[float]:
    return [rlm.aggregate_iqm(sample), rlm.aggregate_mean(sample), rlm.aggregate_median(sample),
            rlm.aggregate_optimality_gap(sample)]


SHAPES = [(2, 1), (3, 4), (5, 26), (10, 3), (11, 2), (40, 3), (300, 1), (17, 5)]  # both count paths


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
def test_count_aggregates_equal_the_aggregates_of_each_materialised_resample(shape, kind):
    rng = np.random.default_rng(hash((shape, kind)) % 2**32)
    x = make_scores(rng, *shape, kind)
    idx = resample.draw(rng, *shape, 60)
    c = resample.counts(idx, shape[0])
    assert c.shape == (x.size, 60) and (c.reshape(shape[0], shape[1], 60).sum(axis=0) == shape[0]).all()
    got = resample.Aggregates(x, NAMES)(c)
    forced = resample.Aggregates(x, NAMES, window_sds=0)(c)  # every IQM through the full pass
    expected = np.array([plain_aggregates(s) for s in materialised(x, idx)]).T
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(forced, expected, rtol=1e-12, atol=1e-13)


def plain_jackknife(x: np.ndarray, name: str) -> np.ndarray:
    """Leave run r of task t out, as ragged columns: the stratified jackknife by definition."""
    runs, tasks = x.shape
    out = []
    for t in range(tasks):
        for r in range(runs):
            cols = [np.delete(x[:, j], r) if j == t else x[:, j] for j in range(tasks)]
            pooled = np.concatenate(cols)
            means = np.array([c.mean() for c in cols])
            out.append({"iqm": lambda: aggregates.iqm(pooled), "mean": lambda: means.mean(),
                        "median": lambda: float(np.median(means)),
                        "optimality_gap": lambda: 1.0 - np.minimum(pooled, 1.0).mean()}[name]())
    return np.array(out)


@pytest.mark.parametrize("shape", [(2, 1), (3, 1), (4, 2), (5, 7), (9, 4), (3, 10)])
@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
@pytest.mark.parametrize("name", NAMES)
def test_closed_form_jackknife_equals_leaving_each_run_out(shape, kind, name):
    x = make_scores(np.random.default_rng(sum(shape)), *shape, kind)
    np.testing.assert_allclose(aggregates.jackknife(x, name), plain_jackknife(x, name), rtol=1e-12, atol=1e-12)


def test_bca_runs_where_a_jackknife_matrix_would_not_fit():
    """66,000 scores: the former (N, N) count matrix would take 35 GB; the closed form takes O(N)."""
    x = np.random.default_rng(0).gamma(2.0, 1.0, size=(3, 22_000))
    est = stats.interval_estimates({"a": x}, list(NAMES), reps=50, method="bca", seed=1)["a"]
    for name in NAMES:
        assert np.isfinite([est[name].low, est[name].high]).all() and est[name].low < est[name].high
    # (the median of 22,000 noisy task means is biased low under resampling, so BCa may exclude its
    # point; the mean is unbiased)
    assert est["mean"].low <= est["mean"].point <= est["mean"].high


@pytest.mark.parametrize("shapes", [((5, 3), (7, 3)), ((12, 2), (11, 2)), ((3, 1), (3, 1)), ((30, 4), (4, 4))])
@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
def test_rank_sum_poi_replicates_equal_all_pairs_comparisons(shapes, kind):
    rng = np.random.default_rng(len(kind) + sum(map(sum, shapes)))
    x, y = make_scores(rng, *shapes[0], kind), make_scores(rng, *shapes[1], kind)
    ix, iy = resample.draw(rng, *shapes[0], 50), resample.draw(rng, *shapes[1], 50)
    below = improvement._Below(y)
    got = improvement._replicates(resample.counts(ix, x.shape[0]), below.totals(resample.counts(iy, y.shape[0])),
                                  below.rows_for(x), x.shape[0] * y.shape[0] * x.shape[1])
    sx, sy = materialised(x, ix), materialised(y, iy)
    expected = [rlm.probability_of_improvement(a, b) for a, b in zip(sx, sy)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_all_pairs_agree_with_the_single_pair_interval_and_rliable_points():
    rng = np.random.default_rng(4)
    scores = {f"a{i}": rng.gamma(2 + i, 0.3, size=(10, 6)) for i in range(3)}
    both = stats.improvement_pairs(scores, reps=4000, seed=2)
    assert len(both) == 6
    for (x, y), est in both.items():
        assert est.point == pytest.approx(rlm.probability_of_improvement(scores[x], scores[y]), rel=1e-12)
        single = stats.probability_of_improvement(scores[x], scores[y], reps=4000, seed=3)
        width = single.high - single.low
        assert abs(est.low - single.low) < 0.1 * width and abs(est.high - single.high) < 0.1 * width
    with pytest.raises(ValueError, match="pairs"):
        stats.improvement_pairs(scores, [("a0", "zz")])


@pytest.mark.parametrize("shape", [(3, 1), (6, 4), (15, 2), (10, 26)])
@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
def test_profile_replicates_equal_the_fraction_above_each_threshold(shape, kind):
    rng = np.random.default_rng(sum(shape) + len(kind))
    x = make_scores(rng, *shape, kind)
    taus = np.r_[np.unique(x)[:3], 0.25, -9.0, 9.0, 0.7, 0.25]  # thresholds at scores, repeated, unsorted
    idx = resample.draw(rng, *shape, 40)
    got = profiles.Profile(x, taus)(resample.counts(idx, shape[0]))
    expected = np.array([np.mean(s[..., None] > taus, axis=(0, 1)) for s in materialised(x, idx)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_an_algorithm_sorting_earlier_leaves_the_others_intervals_unchanged():
    rng = np.random.default_rng(8)
    scores = {"mid": rng.normal(size=(6, 3)), "zeta": rng.normal(size=(6, 3))}
    before = stats.interval_estimates(scores, list(NAMES), reps=300, seed=4)
    after = stats.interval_estimates({"aaa": rng.normal(size=(6, 3)), **scores}, list(NAMES), reps=300, seed=4)
    assert after["mid"] == before["mid"] and after["zeta"] == before["zeta"]
    other = stats.interval_estimates(scores, list(NAMES), reps=300, seed=5)
    assert other["mid"]["iqm"].low != before["mid"]["iqm"].low  # the seed still matters


def _exact_two_sided_confidence(k: float, n: int, p: float) -> float:
    """Odeh & Owen's integral by adaptive quadrature, r(z) by root finding: an independent oracle."""
    from scipy import optimize

    def r_of(z: float) -> float:
        return optimize.brentq(lambda r: special.ndtr(z + r) - special.ndtr(z - r) - p, 1e-12, z + 40, xtol=1e-15)

    f = lambda z: special.chdtrc(n - 1, (n - 1) * r_of(z) ** 2 / k ** 2) * math.exp(-n * z * z / 2)
    return 2 * math.sqrt(n / (2 * math.pi)) * integrate.quad(f, 0, 12 / math.sqrt(n), epsabs=1e-14, epsrel=1e-13, limit=200)[0]


@pytest.mark.parametrize("n,p,g", [(3, 0.9, 0.95), (10, 0.95, 0.95), (25, 0.99, 0.9), (200, 0.75, 0.99)])
def test_two_sided_factor_solves_the_exact_integral(n, p, g):
    k = tolerance.tolerance_factor.__wrapped__(n, p, g, 2)
    assert _exact_two_sided_confidence(k, n, p) == pytest.approx(g, abs=1e-10)


# factors of the former implementation (400 Gauss-Legendre nodes, brentq to 1e-10, scipy.stats ppf)
FORMER = {(2, 0.9, 0.95, 2): 31.09222559979771, (5, 0.9, 0.95, 2): 4.290604070688356,
          (10, 0.95, 0.95, 2): 3.3934294787134833, (30, 0.99, 0.99, 2): 3.7424634972438526,
          (1000, 0.5, 0.9, 2): 0.6948944347300896, (10, 0.9, 0.95, 1): 2.354640131829059,
          (59, 0.95, 0.95, 1): 2.0258871787927673}


@pytest.mark.parametrize("cell", list(FORMER))
def test_tolerance_factor_keeps_its_values(cell):
    assert tolerance.tolerance_factor.__wrapped__(*cell) == pytest.approx(FORMER[cell], rel=1e-9, abs=1e-9)


# ------------------------------------------------------------------ compiled kernels


@pytest.mark.parametrize("shape", SHAPES + [(100, 26), (1000, 1), (5, 57)])
@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
def test_kernel_aggregates_equal_the_aggregates_of_each_materialised_resample(shape, kind):
    rng = np.random.default_rng(hash((shape, kind, 1)) % 2**32)
    x = make_scores(rng, *shape, kind)
    idx = resample.draw(rng, *shape, 40)
    expected = np.array([plain_aggregates(s) for s in materialised(x, idx)]).T
    np.testing.assert_allclose(resample.FusedAggregates(x, NAMES).given(idx), expected, rtol=1e-12, atol=1e-13)
    # the numpy count path on the same resamples (the reference the kernel replaced)
    np.testing.assert_allclose(resample.Aggregates(x, NAMES)(resample.counts(idx, shape[0])), expected,
                               rtol=1e-12, atol=1e-13)


@settings(max_examples=60, deadline=None)
@given(runs=st.integers(1, 40), tasks=st.integers(1, 7), seed=st.integers(0, 2**31), levels=st.integers(1, 6),
       names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
def test_kernel_aggregates_property(runs, tasks, seed, levels, names):
    """Any shape (one run per task included), any subset and order of names, scores on a few levels
    (ties everywhere, constant tasks): the kernel and the numpy count path both equal the definition."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, size=(runs, tasks)).astype(float) * 0.4
    idx = resample.draw(rng, runs, tasks, 20)
    expected = np.array([[aggregates.AGGREGATES[n](s) for n in names] for s in materialised(x, idx)]).T
    np.testing.assert_allclose(resample.FusedAggregates(x, tuple(names)).given(idx), expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(resample.Aggregates(x, tuple(names))(resample.counts(idx, runs)), expected,
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("runs", [1, 2, 3, 7, 100, 1000, 2**16, 2**16 + 1, 100_003])
def test_kernel_draws_are_lemire_on_fresh_words(runs):
    """kernels.fill against its definition in numpy: same generator, same indices, same words used."""
    a, b = np.random.default_rng(runs), np.random.default_rng(runs)
    out = np.empty(1001, np.uint32)
    for n in (1001, 5, 1, 64):
        kernels.fill(a.bit_generator, runs, out[:n])
        np.testing.assert_array_equal(out[:n], lemire_draws(b.bit_generator, runs, n))
    assert a.bit_generator.random_raw() == b.bit_generator.random_raw()  # both consumed the same words


@pytest.mark.parametrize("runs", [3, 10, 100, 1000])
def test_kernel_draws_are_uniform(runs):
    """Chi-square goodness of fit of 400,000 draws to the uniform on [0, runs)."""
    from scipy import stats as sps
    out = np.empty(400_000, np.uint32)
    kernels.fill(np.random.default_rng(7).bit_generator, runs, out)
    counts = np.bincount(out, minlength=runs)
    assert counts.size == runs
    assert sps.chisquare(counts).pvalue > 1e-4


@pytest.mark.parametrize("shape", [(1, 3), (3, 1), (6, 4), (15, 2), (10, 26), (300, 1)])
@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
def test_kernel_profiles_equal_the_fraction_above_each_threshold(shape, kind):
    rng = np.random.default_rng(sum(shape) + len(kind) + 1)
    x = make_scores(rng, *shape, kind)
    taus = np.r_[np.unique(x)[:3], 0.25, -9.0, 9.0, 0.7, 0.25]  # thresholds at scores, repeated, unsorted
    idx = resample.draw(rng, *shape, 40)
    expected = np.array([np.mean(s[..., None] > taus, axis=(0, 1)) for s in materialised(x, idx)])
    np.testing.assert_allclose(profiles.Profile(x, taus).given(idx), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shapes", [((5, 3), (7, 3), (2, 3)), ((12, 2), (11, 2), (12, 2)), ((1, 1), (3, 1), (2, 1)),
                                    ((30, 4), (4, 4), (100, 4))])
@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
def test_kernel_poi_replicates_equal_all_pairs_comparisons(shapes, kind):
    """Every ordered pair of three algorithms with different runs, from given draws."""
    rng = np.random.default_rng(len(kind) + sum(map(sum, shapes)) + 1)
    mats = [make_scores(rng, *s, kind) for s in shapes]
    if kind == "ties":  # also ties across algorithms in the same task
        mats[2][:, 0] = mats[0][0, 0]
    idx = [resample.draw(rng, *s, 30) for s in shapes]
    pairs = [(0, 1), (1, 0), (0, 2), (2, 1), (1, 2), (2, 0)]
    got = improvement.fused_replicates(mats, pairs, 30, idx=idx)
    samples = [materialised(m, i) for m, i in zip(mats, idx)]
    for row, (a, b) in zip(got, pairs):
        expected = [rlm.probability_of_improvement(u, v) for u, v in zip(samples[a], samples[b])]
        np.testing.assert_allclose(row, expected, rtol=1e-12, atol=1e-14)


def test_kernel_results_depend_on_the_seed_only():
    """Same inputs and seed: bitwise the same intervals; a longer run extends a shorter one."""
    rng = np.random.default_rng(3)
    scores = {f"a{i}": rng.gamma(2 + i, 0.3, size=(20, 4)) for i in range(3)}
    taus = np.linspace(0, 2, 9)
    for _ in range(2):
        assert stats.interval_estimates(scores, list(NAMES), reps=500, seed=9) == \
            stats.interval_estimates(scores, list(NAMES), reps=500, seed=9)
        assert stats.improvement_pairs(scores, reps=500, seed=9) == stats.improvement_pairs(scores, reps=500, seed=9)
        assert stats.performance_profile(scores["a0"], taus, reps=500, seed=9).equals(
            stats.performance_profile(scores["a0"], taus, reps=500, seed=9))
    mats = list(scores.values())
    long = improvement.fused_replicates(mats, [(0, 1), (2, 0)], 300, [resample_rng(i) for i in range(3)])
    short = improvement.fused_replicates(mats, [(0, 1), (2, 0)], 100, [resample_rng(i) for i in range(3)])
    assert np.array_equal(long[:, :100], short)
    # an algorithm in no pair draws nothing: the others' replicates do not change
    alone = improvement.fused_replicates(mats, [(0, 1)], 100, [resample_rng(i) for i in range(3)])
    assert np.array_equal(alone[0], short[0])
    f = profiles.Profile(mats[0], taus)
    assert np.array_equal(f.drawn(resample_rng(5), 300)[:100], f.drawn(resample_rng(5), 100))


def resample_rng(i: int) -> np.random.Generator:
    return np.random.default_rng(1000 + i)


@pytest.mark.parametrize("shapes", [((5, 3), (7, 3)), ((1, 1), (4, 1)), ((30, 4), (4, 4))])
@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
def test_rank_point_equals_all_pairs_comparisons(shapes, kind):
    rng = np.random.default_rng(len(kind) + sum(map(sum, shapes)) + 2)
    x, y = make_scores(rng, *shapes[0], kind), make_scores(rng, *shapes[1], kind)
    assert improvement._poi_point(x, y) == pytest.approx(float(improvement._poi_tasks(x, y).mean()), rel=1e-12)
    assert improvement._poi_point(x, y) == pytest.approx(rlm.probability_of_improvement(x, y), rel=1e-12)


def test_poi_refuses_pairs_beyond_32_bit_rank_sums():
    # runs_x * runs_y * tasks >= 2**31 would overflow the kernel's 32-bit rank sums: a one-line error
    big = np.zeros((46_341, 1))
    with pytest.raises(ValueError, match=r"below 2\*\*31"):
        improvement.improvement_pairs({"a": big, "b": big}, reps=10)
