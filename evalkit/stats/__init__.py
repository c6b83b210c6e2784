"""Statistics over run scores: aggregates, bootstrap intervals, tests, tolerance intervals, power.

Inputs are ``{algorithm: ndarray(runs, tasks)}`` score matrices (rliable's convention) or the
per-run table from :func:`evalkit.metrics.run_scores` (converted by :func:`score_dict`). Results
are frozen objects that carry their method, n, resamples and confidence.
"""

from evalkit.stats.aggregates import iqm, mean, median, optimality_gap
from evalkit.stats.bootstrap import interval_estimates
from evalkit.stats.coverage import coverage_warning
from evalkit.stats.hypothesis import (benjamini_hochberg, bootstrap_test, holm, mann_whitney_test,
                                      paired_bootstrap_test, paired_t_test, permutation_test, ranked_t_test,
                                      welch_t_test, wilcoxon_test)
from evalkit.stats.improvement import improvement_pairs, probability_of_improvement
from evalkit.stats.inputs import score_dict
from evalkit.stats.intervals import bootstrap_interval, t_interval
from evalkit.stats.normalization import cdf_normalize, min_max_normalize
from evalkit.stats.power import minimum_detectable_effect, runs_needed, t_test_power
from evalkit.stats.profiles import performance_profile
from evalkit.stats.results import Estimate, TestResult, ToleranceInterval
from evalkit.stats.tolerance import (nonparametric_min_runs, tolerance_factor, tolerance_interval)

__all__ = [
    "Estimate", "TestResult", "ToleranceInterval", "benjamini_hochberg", "bootstrap_interval", "bootstrap_test",
    "cdf_normalize", "coverage_warning", "holm", "improvement_pairs", "interval_estimates", "iqm", "mann_whitney_test", "mean",
    "median", "min_max_normalize", "minimum_detectable_effect", "nonparametric_min_runs", "optimality_gap",
    "paired_bootstrap_test", "paired_t_test", "performance_profile", "permutation_test",
    "probability_of_improvement", "ranked_t_test", "runs_needed", "score_dict", "t_interval", "t_test_power",
    "tolerance_factor", "tolerance_interval", "welch_t_test", "wilcoxon_test",
]
