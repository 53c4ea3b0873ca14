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
from collections.abc import Mapping
from dataclasses import dataclass

from worker.calls import histogram

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
    an arm the variance estimate means nothing: the interval is then unbounded.

    The variance of the difference is at least the pooled one, s² (1/n_a + 1/n_b) with s² the
    variance of both arms' values together: under no difference the arms share one variance, and
    the large arm measures it far better than the small one. With shares of 90/10, the small arm's
    first 30-40 calls were often all successes (a variance of 0), and its own estimate declared a
    winner in 22 % of A/A runs; with the pooled floor, in as few as balanced arms do.
    """
    d = b.mean - a.mean
    if a.n < min_n or b.n < min_n:
        return Difference(d, -math.inf, math.inf)
    pooled = ArmStats(a.n + b.n, a.total + b.total, a.total_squares + b.total_squares).variance
    w = max(a.variance / a.n + b.variance / b.n, pooled * (1 / a.n + 1 / b.n))
    r = radius(w, tau, alpha)
    return Difference(d, d - r, d + r)


def mean_interval(
    stats: ArmStats, tau: float, alpha: float = ALPHA, min_n: int = 30, variance_floor: float = 0.0
) -> tuple[float, float]:
    """One arm's always-valid interval of its mean (the same mixture, for one sample). The variance
    is at least `variance_floor`: the caller knows what values the metric takes (a rate's first
    30 calls may all be successes; its variance is not 0 for that)."""
    if stats.n < min_n:
        return -math.inf, math.inf
    w = max(stats.variance, variance_floor) / stats.n
    r = radius(w, tau, alpha)
    return stats.mean - r, stats.mean + r


def rate_variance_floor(stats: ArmStats) -> float:
    """p(1 - p) at the Laplace estimate (s + 1) / (n + 2): never 0 for a rate, whatever was seen yet."""
    p = (stats.total + 1) / (stats.n + 2)
    return p * (1 - p)


def quantile_interval(
    counts: Mapping[int, int], q: float, tau: float, alpha: float = ALPHA, min_n: int = 30
) -> tuple[float, float]:
    """An always-valid interval of one arm's q-quantile (e.g. p95 latency) from its latency histogram.

    At the true quantile x_q, the indicator [latency <= x_q] has mean q and variance q * (1 - q),
    so the mixture's radius r around q bounds, at every look, the level at which x_q sits in the
    empirical distribution: x_q lies between the empirical (q - r)- and (q + r)-quantiles. This is
    the construction of Howard and Ramdas, "Sequential estimation of quantiles with applications to
    A/B-testing and best-arm identification" (Bernoulli, 2022), with the mSPRT's boundary. `tau`
    is in quantile level (0.02: a p93 or a p97 is worth finding). Each end is widened by the
    histogram's 1 % relative accuracy.
    """
    n = sum(counts.values())
    if n < min_n:
        return 0.0, math.inf
    r = radius(q * (1 - q) / n, tau, alpha)
    low = histogram.quantile(counts, q - r) if q - r > 0 else 0.0
    high = histogram.quantile(counts, q + r) if q + r < 1 else math.inf
    # a bucket's representative value is within RELATIVE_ACCURACY of its values: widen by it, or at a
    # few million calls the interval is narrower than the bucket and a p95 at a limit looks above it
    low = float(low or 0.0) * (1 - histogram.RELATIVE_ACCURACY)
    high = float(high if high is not None else math.inf) * (1 + histogram.RELATIVE_ACCURACY)
    return low, high
