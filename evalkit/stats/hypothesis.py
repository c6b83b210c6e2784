"""Two-sample tests of H0 "the algorithms perform the same", as compared by Colas, Sigaud & Oudeyer
(2019), "A Hitchhiker's Guide to Statistical Comparisons of Reinforcement Learning Algorithms",
plus paired versions for runs that share seeds (common random numbers) and multiple-comparison
corrections (Holm 1979; Benjamini & Hochberg 1995).

Every test takes 1-d arrays of final run scores ``x`` (n_x,) and ``y`` (n_y,) and returns a frozen
:class:`~evalkit.stats.results.TestResult`; all tests are two-sided. Colas et al. measured the
false-positive rates of these tests: Welch's t and the bootstrap are anti-conservative at small n
on non-normal data, the permutation and rank tests less so.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats as sps

from evalkit.stats.inputs import as_sample, check_confidence, check_reps
from evalkit.stats.results import TestResult


def _alpha(alpha: float) -> float:
    return check_confidence(alpha, "alpha")


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Welch's t statistic and two-sided p-value with Welch-Satterthwaite degrees of freedom."""
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:
        raise ValueError("x: both samples are constant; a t test is undefined")
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    return float(t), float(2 * sps.t.sf(abs(t), df))


def welch_t_test(x: object, y: object, alpha: float = 0.05, nan_policy: str = "raise") -> TestResult:
    """Welch's unequal-variance t test (Welch 1947); Colas et al. 2019's recommended default."""
    a, b = as_sample(x, "x", nan_policy=nan_policy), as_sample(y, "y", nan_policy=nan_policy)
    t, p = _welch(a, b)
    return TestResult("Welch t", t, p, a.size, b.size, _alpha(alpha))


def mann_whitney_test(x: object, y: object, alpha: float = 0.05, nan_policy: str = "raise") -> TestResult:
    """Mann-Whitney U test; statistic U counts pairs with x > y (ties 1/2); exact p-value when
    there are no ties and both samples are small, normal approximation with tie correction otherwise."""
    a, b = as_sample(x, "x", nan_policy=nan_policy), as_sample(y, "y", nan_policy=nan_policy)
    res = sps.mannwhitneyu(a, b, alternative="two-sided", method="auto")
    return TestResult("Mann-Whitney U", float(res.statistic), float(res.pvalue), a.size, b.size, _alpha(alpha))


def ranked_t_test(x: object, y: object, alpha: float = 0.05, nan_policy: str = "raise") -> TestResult:
    """Student's t test on the joint ranks of all runs (rank transform; Conover & Iman 1981)."""
    a, b = as_sample(x, "x", nan_policy=nan_policy), as_sample(y, "y", nan_policy=nan_policy)
    ranks = sps.rankdata(np.concatenate([a, b]))
    ra, rb = ranks[:a.size], ranks[a.size:]
    df = a.size + b.size - 2
    pooled = ((a.size - 1) * ra.var(ddof=1) + (b.size - 1) * rb.var(ddof=1)) / df
    if pooled == 0:
        raise ValueError("x: all runs of x and y tie; a rank test is undefined")
    t = (ra.mean() - rb.mean()) / np.sqrt(pooled * (1 / a.size + 1 / b.size))
    return TestResult("ranked t", float(t), float(2 * sps.t.sf(abs(t), df)), a.size, b.size, _alpha(alpha))


def _percentile_p(boot: np.ndarray) -> float:
    """Two-sided p-value from inverting the percentile interval: the smallest alpha at which 0 lies
    outside the (1 - alpha) percentile interval of the bootstrap distribution ``boot``."""
    less = np.mean(boot <= 0)
    greater = np.mean(boot >= 0)
    return float(min(1.0, 2 * min(less, greater)))


def bootstrap_test(x: object, y: object, alpha: float = 0.05, reps: int = 10_000, seed: int = 0,
                   nan_policy: str = "raise") -> TestResult:
    """Bootstrap test of equal means (Colas et al. 2019, sec. 4): runs of x and y are resampled
    independently; H0 is rejected when 0 lies outside the percentile interval of mean(x*) - mean(y*).
    The statistic is the observed difference of means."""
    a, b = as_sample(x, "x", nan_policy=nan_policy), as_sample(y, "y", nan_policy=nan_policy)
    reps, rng = check_reps(reps), np.random.default_rng(seed)
    boot = np.empty(reps)
    for start in range(0, reps, 20_000):
        n = min(20_000, reps - start)
        boot[start:start + n] = (a[rng.integers(0, a.size, (n, a.size))].mean(axis=1)
                                 - b[rng.integers(0, b.size, (n, b.size))].mean(axis=1))
    return TestResult("bootstrap (percentile)", float(a.mean() - b.mean()), _percentile_p(boot), a.size, b.size,
                      _alpha(alpha))


def permutation_test(x: object, y: object, alpha: float = 0.05, reps: int = 10_000, seed: int = 0,
                     nan_policy: str = "raise") -> TestResult:
    """Randomised permutation test of the difference of means (Colas et al. 2019, sec. 4).

    p-value as ``scipy.stats.permutation_test``: ``min(1, 2 min(P_less, P_greater))`` with
    ``P = (#{d* <= d} + 1) / (reps + 1)``, which keeps it valid (Phipson & Smyth 2010).
    """
    a, b = as_sample(x, "x", nan_policy=nan_policy), as_sample(y, "y", nan_policy=nan_policy)
    reps, rng = check_reps(reps), np.random.default_rng(seed)
    pooled = np.concatenate([a, b])
    observed = a.mean() - b.mean()
    less = greater = 0
    # compare with a relative tolerance so that permutations equal to the observed split count
    eps = 1e-12 * max(1.0, abs(observed))
    for start in range(0, reps, 10_000):
        n = min(10_000, reps - start)
        perm = rng.permuted(np.broadcast_to(pooled, (n, pooled.size)), axis=1)
        d = perm[:, :a.size].mean(axis=1) - perm[:, a.size:].mean(axis=1)
        less += int(np.sum(d <= observed + eps))
        greater += int(np.sum(d >= observed - eps))
    p = min(1.0, 2 * min((less + 1) / (reps + 1), (greater + 1) / (reps + 1)))
    return TestResult("permutation", float(observed), float(p), a.size, b.size, _alpha(alpha))


def _paired(x: object, y: object, nan_policy: str) -> np.ndarray:
    """Differences x - y of runs paired by seed; NaN in either member drops the pair under 'omit'."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"y: paired tests need 1-d x and y of equal length, found shapes {a.shape} and {b.shape}")
    return as_sample(a - b, "x - y", nan_policy=nan_policy)


def paired_t_test(x: object, y: object, alpha: float = 0.05, nan_policy: str = "raise") -> TestResult:
    """Paired t test on per-seed differences x_i - y_i (runs sharing seed i)."""
    d = _paired(x, y, nan_policy)
    sd = d.std(ddof=1)
    if sd == 0:
        raise ValueError("x: the paired differences are constant; a t test is undefined")
    t = d.mean() / (sd / np.sqrt(d.size))
    return TestResult("paired t", float(t), float(2 * sps.t.sf(abs(t), d.size - 1)), d.size, d.size,
                      _alpha(alpha), paired=True)


def wilcoxon_test(x: object, y: object, alpha: float = 0.05, nan_policy: str = "raise") -> TestResult:
    """Wilcoxon signed-rank test on paired differences (zero differences dropped, Wilcoxon 1945);
    statistic min(W+, W-); exact null distribution for small n without ties."""
    d = _paired(x, y, nan_policy)
    if not np.any(d != 0):
        raise ValueError("x: every paired difference is zero; the signed-rank test is undefined")
    res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided", method="auto")
    return TestResult("Wilcoxon signed-rank", float(res.statistic), float(res.pvalue), d.size, d.size,
                      _alpha(alpha), paired=True)


def paired_bootstrap_test(x: object, y: object, alpha: float = 0.05, reps: int = 10_000, seed: int = 0,
                          nan_policy: str = "raise") -> TestResult:
    """Bootstrap test on paired differences: seeds are resampled with their pair; p-value from
    inverting the percentile interval of the mean difference."""
    d = _paired(x, y, nan_policy)
    reps, rng = check_reps(reps), np.random.default_rng(seed)
    boot = np.empty(reps)
    for start in range(0, reps, 20_000):
        n = min(20_000, reps - start)
        boot[start:start + n] = d[rng.integers(0, d.size, (n, d.size))].mean(axis=1)
    return TestResult("paired bootstrap (percentile)", float(d.mean()), _percentile_p(boot), d.size, d.size,
                      _alpha(alpha), paired=True)


def _pvalues(pvalues: Sequence[float]) -> np.ndarray:
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"pvalues: expected a non-empty 1-d sequence, found shape {p.shape}")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("pvalues: expected values in [0, 1] (NaN found or out of range)")
    return p


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, (m,) in the input order; controls the family-wise
    error rate. Reject where the adjusted p-value is below alpha."""
    p = _pvalues(pvalues)
    m = p.size
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini & Hochberg (1995) step-up adjusted p-values (q-values), (m,) in input order;
    controls the false discovery rate for independent or positively dependent tests."""
    p = _pvalues(pvalues)
    m = p.size
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    return out
