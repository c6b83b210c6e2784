"""Tolerance intervals: where a fraction of all future runs will fall, not where the mean is.

Patterson, Neumann, White & White (2023), "Empirical design in reinforcement learning", argue for
tolerance intervals over standard errors when describing run-to-run variability. A (p, gamma)
tolerance interval contains at least a fraction ``p`` (coverage) of the run-score distribution with
confidence ``gamma``.

* Normal theory, one-sided: ``k = nct.ppf(gamma, n - 1, z_p sqrt(n)) / sqrt(n)`` (exact;
  Krishnamoorthy & Mathew 2009, eq. 2.2.3); the interval is ``[mean - k s, +inf)``.
* Normal theory, two-sided: the exact factor of Odeh & Owen (1980) / Krishnamoorthy & Mathew
  (2009, eq. 2.3.4), found by solving
  ``gamma = 2 sqrt(n / 2 pi) int_0^inf P(chi2_{n-1} > (n-1) r(z)^2 / k^2) exp(-n z^2 / 2) dz``
  where ``Phi(z + r) - Phi(z - r) = p``; Howe's (1969) approximation is not used.
* Nonparametric: order statistics. ``[X(r), X(n-r+1)]`` covers ``p`` with confidence
  ``1 - BetaCDF(p; n - 2r + 1, 2r)``; one-sided ``[X(r), inf)`` with ``1 - BetaCDF(p; n - r + 1, r)``.
  With too few runs even the extremes cannot give the confidence asked for: the result is then
  refused, naming the minimum number of runs (e.g. 59 one-sided and 93 two-sided for p = gamma =
  0.95; 46 two-sided for p = 0.90, gamma = 0.95).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special
from scipy import stats as sps

from evalkit.stats.inputs import as_sample, check_confidence
from evalkit.stats.results import ToleranceInterval


def _check(n: int, coverage: float, confidence: float, sides: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n: expected an integer >= 2, found {n!r}")
    check_confidence(coverage, "coverage")
    check_confidence(confidence)
    if sides not in (1, 2):
        raise ValueError(f"sides: expected 1 or 2, found {sides!r}")


_SQRT_2PI = math.sqrt(2 * math.pi)
_NODES = 64  # Gauss-Legendre nodes: factors agree with 400 nodes to 1e-10 for n = 2..5,000


def _half_widths(z: np.ndarray, p: float) -> np.ndarray:
    """r(z) with Phi(z + r) - Phi(z - r) = p, by vectorised Newton steps from the z = 0 solution."""
    r = np.full_like(z, special.ndtri((1 + p) / 2)) + np.abs(z)
    for _ in range(60):
        f = special.ndtr(z + r) - special.ndtr(z - r) - p
        step = f / ((np.exp(-0.5 * (z + r) ** 2) + np.exp(-0.5 * (z - r) ** 2)) / _SQRT_2PI)
        r = np.maximum(r - step, 1e-12)
        if np.max(np.abs(step)) < 1e-13:
            break
    return r


@lru_cache(maxsize=1)
def _legendre() -> tuple[np.ndarray, np.ndarray]:
    """Nodes u on [0, 10] and weights of the half-normal density: sum w g(u) = 2 int_0^10 phi(u) g(u) du."""
    x, w = np.polynomial.legendre.leggauss(_NODES)
    u = (x + 1) * 5.0
    return u, w * 5.0 * 2.0 * np.exp(-u * u / 2) / _SQRT_2PI


def _two_sided_factor(n: int, p: float, gamma: float) -> float:
    """Solve gamma = 2 int_0^inf phi(u) P(chi2_df > df r(u / sqrt n)^2 / k^2) du for k (z = u / sqrt n).

    Newton's method in k from Howe's (1969) approximation, with the derivative
    ``d/dk P(chi2_df > q / k^2) = f_df(q / k^2) 2 q / k^3``; every step is kept inside a bracket
    (bisection when a step leaves it), converging to 1e-12 in a few steps.
    """
    u, w = _legendre()
    df = n - 1
    q = df * _half_widths(u / math.sqrt(n), p) ** 2
    log_norm = -special.gammaln(df / 2) - (df / 2) * math.log(2)

    def conf(k: float) -> tuple[float, float]:
        x = q / (k * k)
        pdf = np.exp(log_norm + (df / 2 - 1) * np.log(x) - x / 2)
        return float(w @ special.chdtrc(df, x)) - gamma, float(w @ (pdf * 2 * q / k ** 3))

    lo = special.ndtri((1 + p) / 2)  # the factor for a known mean and sd: confidence below gamma
    hi = 2 * lo
    while conf(hi)[0] < 0:
        lo, hi = hi, 2 * hi
    chi = special.chdtri(df, gamma)  # Howe: k = z sqrt(df (1 + 1/n) / chi2_{1-gamma, df})
    k = min(max(special.ndtri((1 + p) / 2) * math.sqrt(df * (1 + 1 / n) / special.chdtri(df, gamma)), lo), hi) \
        if chi > 0 else (lo + hi) / 2
    for _ in range(100):
        f, d = conf(k)
        if f < 0:
            lo = k
        else:
            hi = k
        nxt = k - f / d if d > 0 else (lo + hi) / 2
        if not lo < nxt < hi:
            nxt = (lo + hi) / 2
        if abs(nxt - k) < 1e-12 * k:
            return float(nxt)
        k = nxt
    return float(k)


@lru_cache(maxsize=4096)
def tolerance_factor(n: int, coverage: float, confidence: float, sides: int = 2) -> float:
    """The normal-theory tolerance factor k: the interval is ``mean +- k s`` (or ``mean - k s``).

    About 0.1 ms uncached (special functions called directly, 64 quadrature nodes, Newton steps);
    repeated arguments are memoised.
    """
    _check(n, coverage, confidence, sides)
    if sides == 1:
        return float(special.nctdtrit(n - 1, special.ndtri(coverage) * math.sqrt(n), confidence) / math.sqrt(n))
    return _two_sided_factor(int(n), float(coverage), float(confidence))


def nonparametric_confidence(n: int, coverage: float, r: int = 1, sides: int = 2) -> float:
    """Confidence that ``[X(r), X(n-r+1)]`` (two-sided) or ``[X(r), inf)`` covers ``coverage``."""
    if sides == 2:
        m = n - 2 * r + 1
        return float(sps.beta.sf(coverage, m, 2 * r)) if m >= 1 else 0.0
    return float(sps.beta.sf(coverage, n - r + 1, r))


def nonparametric_min_runs(coverage: float, confidence: float, sides: int = 2) -> int:
    """Fewest runs for which the extreme order statistics give the requested coverage and confidence."""
    _check(2, coverage, confidence, sides)
    n = 2
    while nonparametric_confidence(n, coverage, 1, sides) < confidence:
        n += 1
    return n


def tolerance_interval(x: object, coverage: float = 0.9, confidence: float = 0.95, method: str = "normal",
                       sides: int = 2, nan_policy: str = "raise") -> ToleranceInterval:
    """A (coverage, confidence) tolerance interval of run scores ``x`` (see the module docstring).

    ``method="normal"`` assumes normally distributed run scores; ``"nonparametric"`` assumes only
    independent runs and uses the narrowest symmetric pair of order statistics that reaches the
    confidence, or refuses (``refused=True``) when even the extremes cannot.
    """
    a = as_sample(x, nan_policy=nan_policy)
    n = a.size
    _check(n, coverage, confidence, sides)
    if method == "normal":
        k = tolerance_factor(n, coverage, confidence, sides)
        m, s = a.mean(), a.std(ddof=1)
        high = m + k * s if sides == 2 else math.inf
        return ToleranceInterval(float(m - k * s), float(high), coverage, confidence, "normal theory (exact factor)",
                                 sides, n, confidence)
    if method != "nonparametric":
        raise ValueError(f"method: expected 'normal' or 'nonparametric', found {method!r}")
    srt = np.sort(a)
    best = 0
    for r in range(1, n // 2 + 1 if sides == 2 else n + 1):
        if nonparametric_confidence(n, coverage, r, sides) >= confidence:
            best = r
        else:
            break
    if best == 0:
        need = nonparametric_min_runs(coverage, confidence, sides)
        achieved = nonparametric_confidence(n, coverage, 1, sides)
        return ToleranceInterval(math.nan, math.nan, coverage, confidence, "nonparametric (order statistics)", sides,
                                 n, achieved, True,
                                 f"a nonparametric {sides}-sided interval covering {coverage:.0%} of runs with "
                                 f"{confidence:.0%} confidence needs at least {need} runs; {n} runs give at most "
                                 f"{achieved:.1%} confidence")
    high = float(srt[n - best]) if sides == 2 else math.inf
    return ToleranceInterval(float(srt[best - 1]), high, coverage, confidence,
                             f"nonparametric (order statistics X({best})" + (f", X({n - best + 1}))" if sides == 2 else ")"),
                             sides, n, nonparametric_confidence(n, coverage, best, sides))
