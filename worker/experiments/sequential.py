"""Always-valid inference for the difference between two arms: watch it after every call, stop any time.

The method is the normal-mixture sequential probability ratio test (mSPRT) of Johari, Koomen,
Pekelis and Walsh, "Peeking at A/B Tests: Why it matters, and what to do about it" (KDD 2017),
the one Optimizely ships. With d the difference of the arms' means, W its variance
(var_a / n_a + var_b / n_b, from the observed variances) and a mixing variance tau**2, the mixture
likelihood ratio against a true difference theta,

    L(theta) = sqrt(W / (W + tau**2)) * exp(tau**2 * (d - theta)**2 / (2 * W * (W + tau**2))),

stays below 1 / alpha at every look at once with probability at least 1 - alpha (Ville's
inequality; with the variances estimated, asymptotically). Inverting it gives a confidence
sequence: every theta with L(theta) < 1 / alpha, the interval d +- radius below. A difference is
declared when the interval leaves 0. tau is set to the smallest effect worth finding: the test
is most powerful near it (the paper's section 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class ArmStats:
    """Sufficient statistics of one arm's outcomes (a success is 1, a failure 0; or a latency, a cost)."""

    n: int
    total: float
    total_squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n < 2:
            return 0.0
        return max(0.0, (self.total_squares - self.total**2 / self.n) / (self.n - 1))

    @classmethod
    def of(cls, values) -> ArmStats:
        values = list(values)
        return cls(len(values), float(sum(values)), float(sum(v * v for v in values)))


@dataclass(frozen=True, slots=True)
class Difference:
    estimate: float  # mean of b minus mean of a
    low: float
    high: float

    @property
    def declared(self) -> bool:
        """The interval excludes no difference: b differs from a (with the sign of the estimate)."""
        return self.low > 0 or self.high < 0


def radius(w: float, tau: float, alpha: float = ALPHA) -> float:
    """Half-width of the always-valid interval for a difference whose estimate has variance w."""
    if w <= 0:
        return 0.0
    t2 = tau * tau
    return math.sqrt(2 * w * (w + t2) / t2 * math.log(math.sqrt((w + t2) / w) / alpha))


def difference(a: ArmStats, b: ArmStats, tau: float, alpha: float = ALPHA, min_n: int = 30) -> Difference:
    """The confidence sequence's interval for mean(b) - mean(a) at this look. Below `min_n` calls in
    an arm the variance estimate means nothing: the interval is then unbounded."""
    d = b.mean - a.mean
    if a.n < min_n or b.n < min_n:
        return Difference(d, -math.inf, math.inf)
    w = a.variance / a.n + b.variance / b.n
    if w <= 0:  # both arms constant so far: no evidence of spread, none of a difference either
        w = (0.25 / a.n + 0.25 / b.n) if min(a.mean, b.mean) >= 0 and max(a.mean, b.mean) <= 1 else 1e-12
    r = radius(w, tau, alpha)
    return Difference(d, d - r, d + r)
