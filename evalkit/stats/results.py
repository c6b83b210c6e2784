"""Result objects: every estimate knows how it was computed and renders as a table row."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval.

    ``method`` names the interval (e.g. "stratified bootstrap, percentile"), ``n`` the number of
    runs behind it (per task for score matrices), ``reps`` the bootstrap resamples (0 if none).
    """

    point: float
    low: float
    high: float
    method: str
    confidence: float
    n: int
    reps: int = 0
    name: str = ""

    @property
    def width(self) -> float:
        return self.high - self.low

    def as_row(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        label = f"{self.name}: " if self.name else ""
        return (f"{label}{self.point:.4g} [{self.low:.4g}, {self.high:.4g}] "
                f"({self.confidence:.0%} {self.method}, n={self.n}" + (f", reps={self.reps})" if self.reps else ")"))


@dataclass(frozen=True)
class TestResult:
    """A hypothesis test of H0: the two algorithms perform the same (Colas et al. 2019)."""

    __test__ = False  # not a pytest test class

    method: str
    statistic: float
    p_value: float
    n_x: int
    n_y: int
    alpha: float = 0.05
    paired: bool = False

    @property
    def reject(self) -> bool:
        return bool(self.p_value < self.alpha)

    def as_row(self) -> dict:
        return {**asdict(self), "reject": self.reject}

    def __str__(self) -> str:
        return (f"{self.method}: statistic {self.statistic:.4g}, p = {self.p_value:.4g} "
                f"({'reject' if self.reject else 'keep'} H0 at alpha {self.alpha}; n = {self.n_x}, {self.n_y})")


@dataclass(frozen=True)
class ToleranceInterval:
    """An interval holding at least ``coverage`` of the run-score distribution with ``confidence``.

    ``refused`` is true when the data cannot support the request (nonparametric intervals need a
    minimum number of runs); ``low``/``high`` are then NaN and ``message`` names the minimum n.
    """

    low: float
    high: float
    coverage: float
    confidence: float
    method: str
    sides: int
    n: int
    achieved_confidence: float = float("nan")
    refused: bool = False
    message: str = ""

    def as_row(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.refused:
            return f"tolerance interval refused: {self.message}"
        return (f"[{self.low:.4g}, {self.high:.4g}] holds {self.coverage:.0%} of runs with "
                f"{self.confidence:.0%} confidence ({self.method}, {self.sides}-sided, n={self.n})")
