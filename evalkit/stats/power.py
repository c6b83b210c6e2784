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


def runs_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Fewest runs per algorithm for the two-sided t-test to detect ``effect`` with ``power``."""
    _check(alpha, power)
    if not sd > 0 or not math.isfinite(sd):
        raise ValueError(f"sd: expected a positive standard deviation, found {sd!r}")
    if effect == 0 or not math.isfinite(effect):
        raise ValueError(f"effect: expected a non-zero finite difference, found {effect!r}")
    n = 2
    while t_test_power(abs(effect), sd, n, n, alpha) < power:
        n += 1
        if n > 1_000_000:
            raise ValueError("effect: too small to detect with fewer than a million runs")
    return n


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
