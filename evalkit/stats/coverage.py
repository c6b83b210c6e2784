"""Warnings for run counts at which an interval method under-covers, from the measured coverage study.

Measured by ``benchmarks/coverage_study.py`` (2,000 trials per cell, 1,000 resamples; table in the
README): nominal 95% intervals for the mean of run scores.

* percentile / BCa bootstrap: 0.75 / 0.70 at n = 3, 0.84 at n = 5, 0.89 at n = 10, 0.93 at n = 30
  even for normal scores; 0.49-0.66 at n <= 5 when some seeds fail (bimodal).
* Student t: 0.95 for normal scores at every n, but 0.55 (n = 3), 0.68 (n = 5), 0.88 (n = 10) when
  some seeds fail, and 0.82-0.88 for lognormal scores up to n = 30.
"""

from __future__ import annotations

THRESHOLDS = {"percentile": 30, "bca": 30, "t": 10}
MEASURED = {
    "percentile": "0.75 / 0.84 / 0.89 / 0.93 at n = 3 / 5 / 10 / 30 for normal run scores",
    "bca": "0.70 / 0.84 / 0.89 / 0.93 at n = 3 / 5 / 10 / 30 for normal run scores",
    "t": "0.55 / 0.68 / 0.88 at n = 3 / 5 / 10 when some seeds fail",
}


def coverage_warning(method: str, n: int) -> str | None:
    """A warning when ``n`` runs are in a regime where ``method``'s 95% interval under-covers."""
    key = "bca" if "bca" in method.lower() else "t" if method.lower() in ("t", "student t") else (
        "percentile" if "bootstrap" in method.lower() or method.lower() == "percentile" else None)
    if key is None or n >= THRESHOLDS[key]:
        return None
    return (f"{n} runs: nominal 95% {key} intervals under-cover here (measured coverage {MEASURED[key]}); "
            f"use more runs or read the interval as optimistic")
