"""Cost forecasts: additive Holt-Winters (level, trend, season) with a prediction interval.

The method and its interval are those of the ETS(A,A,A) model in Hyndman and Athanasopoulos,
"Forecasting: Principles and Practice" (3rd ed., sections 8.3 and 8.7): with smoothing weights
alpha, beta, gamma and one-step residual variance s2, the h-step forecast variance is

    s2 * (1 + sum over j = 1 .. h-1 of c(j) ** 2),  c(j) = alpha * (1 + beta * j) + gamma * [j % m == 0],

and the same innovations give the variance of a sum over the horizon, which is what a cost
forecast needs (a day's or a month's total, not one hour's).

The weights are chosen by least squares of the one-step errors over a small grid (18 fits). With less than
two full seasons of history the season is left out (Holt's linear trend, gamma = 0), and with
fewer than `MIN_POINTS` points there is no forecast at all: saying nothing beats a guess.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_POINTS = 12
Z95 = 1.959963984540054
ALPHAS, BETAS, GAMMAS = (0.1, 0.3, 0.6), (0.05, 0.2), (0.05, 0.2, 0.5)


@dataclass(frozen=True, slots=True)
class Forecast:
    total: float  # the sum over the horizon
    low: float  # 95 % interval of the sum
    high: float
    seasonal: bool


@dataclass(frozen=True, slots=True)
class _Fit:
    alpha: float
    beta: float
    gamma: float
    level: float
    trend: float
    season: tuple[float, ...]
    sse: float
    n: int


def _fit(y: Sequence[float], m: int, alpha: float, beta: float, gamma: float) -> _Fit:
    seasonal = m > 1
    if seasonal:
        first, second = sum(y[:m]) / m, sum(y[m : 2 * m]) / m
        level, trend = first, (second - first) / m
        season = [y[i] - first for i in range(m)]
        start = m
    else:
        level, trend, season, start = y[0], y[1] - y[0], [0.0], 1
    sse, burn_in = 0.0, start + max(m, 4)  # the first steps' errors mostly reflect the rough initial states
    for t in range(start, len(y)):
        s = season[t % m] if seasonal else 0.0
        error = y[t] - (level + trend + s)
        if t >= burn_in:
            sse += error * error
        level = level + trend + alpha * error
        trend = trend + alpha * beta * error
        if seasonal:
            season[t % m] = s + gamma * error
    return _Fit(alpha, beta, gamma, level, trend, tuple(season), sse, len(y) - burn_in)


def forecast(y: Sequence[float], horizon: int, season: int = 0) -> Forecast | None:
    """The sum of the next `horizon` points of `y` (e.g. hourly costs; season 168 for a week)."""
    if len(y) < MIN_POINTS or horizon < 1:
        return None
    m = season if season > 1 and len(y) >= 2 * season + MIN_POINTS else 1
    gammas = GAMMAS if m > 1 else (0.0,)
    best = min(
        (_fit(y, m, a, b, g) for a, b, g in itertools.product(ALPHAS, BETAS, gammas)),
        key=lambda f: f.sse,
    )
    s2 = best.sse / max(1, best.n - 3)
    points = []
    for h in range(1, horizon + 1):
        s = best.season[(len(y) + h - 1) % m] if m > 1 else 0.0
        points.append(best.level + h * best.trend + s)
    total = sum(points)
    # the innovation of step k moves every later step j - k steps on by c(j - k): the sum's error is
    # sum over k of (1 + c(1) + ... + c(horizon - k)) * innovation(k), with independent innovations
    c = [best.alpha * (1 + best.beta * j) + (best.gamma if m > 1 and j % m == 0 else 0.0) for j in range(horizon)]
    reach, weights = 1.0, []
    for j in range(horizon):
        reach += c[j] if j else 0.0
        weights.append(reach)
    half = Z95 * math.sqrt(s2 * sum(w * w for w in weights))
    return Forecast(total, max(0.0, total - half), total + half, m > 1)
