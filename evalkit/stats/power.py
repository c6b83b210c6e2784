"""How many runs: sample sizes and minimum detectable effects for a two-sided two-sample t-test.

Colas et al. (2019) and Patterson et al. (2023) recommend planning the number of runs before the
experiment, and reporting the effect a study *could* detect rather than post-hoc power.
Power of the two-sided test with n_a, n_b runs, pooled sd and difference d: noncentral t with
``df = n_a + n_b - 2`` and ``ncp = d / (sd sqrt(1/n_a + 1/n_b))``.
"""

from __future__ import annotations

import math

from scipy import optimize
from scipy import stats as sps


def _check(alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number in (0, 1), found {alpha!r}")
    if not 0 < power < 1:
        raise ValueError(f"power: expected a number in (0, 1), found {power!r}")


def t_test_power(effect: float, sd: float, n_a: int, n_b: int, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample t-test to detect a difference ``effect``."""
    df = n_a + n_b - 2
    ncp = effect / (sd * math.sqrt(1 / n_a + 1 / n_b))
    t = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(t, df, ncp) + sps.nct.cdf(-t, df, ncp))


def paired_t_test_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test (``sd``: of the per-seed differences) with ``n`` pairs."""
    df = n - 1
    ncp = effect / (sd / math.sqrt(n))
    t = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(t, df, ncp) + sps.nct.cdf(-t, df, ncp))


TESTS = ("welch", "paired")


def runs_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8, test: str = "welch") -> int:
    """Fewest runs per algorithm for the two-sided t-test to detect ``effect`` with ``power``.

    ``test="welch"``: two independent samples of equal size and equal ``sd`` (Welch's degrees of
    freedom are then exactly ``2n - 2``, so the pooled noncentral t is exact; equals statsmodels'
    ``TTestIndPower``). ``test="paired"``: runs sharing seeds, ``sd`` the standard deviation of the
    per-seed differences (statsmodels' ``TTestPower``); returns the number of pairs.
    """
    _check(alpha, power)
    if test not in TESTS:
        raise ValueError(f"test: expected one of {TESTS}, found {test!r}")
    if not sd > 0 or not math.isfinite(sd):
        raise ValueError(f"sd: expected a positive standard deviation, found {sd!r}")
    if effect == 0 or not math.isfinite(effect):
        raise ValueError(f"effect: expected a non-zero finite difference, found {effect!r}")
    power_at = ((lambda n: t_test_power(abs(effect), sd, n, n, alpha)) if test == "welch"
                else (lambda n: paired_t_test_power(abs(effect), sd, n, alpha)))
    if power_at(2) >= power:
        return 2
    lo, hi = 2, 4  # power grows with n: double to bracket, then bisect (O(log n) power evaluations)
    while power_at(hi) < power:
        lo, hi = hi, hi * 2
        if hi > 2_000_000:
            raise ValueError("effect: too small to detect with fewer than a million runs")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power_at(mid) >= power else (mid, hi)
    if hi > 1_000_000:
        raise ValueError("effect: too small to detect with fewer than a million runs")
    return hi


def minimum_detectable_effect(n_a: int, n_b: int, sd: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest difference of means the two-sided t-test detects with ``power`` given the runs."""
    _check(alpha, power)
    if n_a < 2 or n_b < 2:
        raise ValueError(f"n_a, n_b: expected at least 2 runs each, found {n_a}, {n_b}")
    if not sd > 0 or not math.isfinite(sd):
        raise ValueError(f"sd: expected a positive standard deviation, found {sd!r}")
    hi = sd
    while t_test_power(hi, sd, n_a, n_b, alpha) < power:
        hi *= 2
    return float(optimize.brentq(lambda d: t_test_power(d, sd, n_a, n_b, alpha) - power, 0.0, hi, xtol=1e-12 * sd))
