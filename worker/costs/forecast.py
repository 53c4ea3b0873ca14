"""Cost forecasts: damped Holt-Winters on the logarithm of the costs, with an interval calibrated on
the series' own past.

- **The model** is ETS(A,Ad,A) of Hyndman and Athanasopoulos, "Forecasting: Principles and Practice"
  (3rd ed., sections 8.3-8.5) on log(cost + offset): a season that adds on the log scale is one that
  scales with volume, as a growing gateway's daily wave does; growth of a few percent a day is a
  trend; the damped trend (phi < 1) does not extrapolate a spurt for a month. The weights (alpha,
  beta, gamma, phi) are chosen by least squares of the one-step errors over a small grid.
- **The interval** is not the model's own: that one assumes the model is right, and covered 20 % of
  next days on series growing 1 % a day. It is a split-conformal interval (Vovk et al.; Angelopoulos
  and Bates, "A Gentle Introduction to Conformal Prediction", 2021): the same model, run over the
  history, forecasts the horizon's total from every origin it can check over the last two weeks
  (a quarter horizon apart), and the interval spans the empirical quantiles of log(actual / forecast) at those origins,
  at the finite-sample rank. Its assumption, stated: the next horizon's error is like those of the
  checked past (level shifts and trend changes of the past are in it; one of a kind never seen is not).
- **No figure without a check**: with fewer than MIN_CHECKS origins whose horizon lies wholly in the
  history, there is no interval to trust, and the forecast is None with the reason
  (`why_not(...)`): a 30-day total needs more than five weeks of hourly history to be checked once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_POINTS = 12
MIN_CHECKS = 20  # origins whose horizon the history holds: fewer, and the interval is a guess
CALIBRATION_POINTS = 14 * 24  # how far back origins are checked: the last two weeks of hourly history
STEPS_PER_HORIZON = 4  # checked origins lie a quarter horizon apart (6 hours for a day); their horizons overlap
LEVEL = 0.95
ALPHAS, BETAS, GAMMAS, PHIS = (0.05, 0.2, 0.5), (0.02, 0.1), (0.05, 0.2), (0.9, 0.98)


@dataclass(frozen=True, slots=True)
class Forecast:
    total: float  # the sum over the horizon
    low: float  # 95 % interval of the sum
    high: float
    seasonal: bool
    checks: int = 0  # origins the interval was calibrated on


@dataclass(frozen=True, slots=True)
class _State:
    level: float
    trend: float
    season: tuple[float, ...]


def _run(z: Sequence[float], m: int, alpha: float, beta: float, gamma: float, phi: float, keep=()):
    """One pass of the filter: (sum of squared one-step errors after the burn-in, states at `keep`, final state)."""
    seasonal = m > 1
    if seasonal:
        # the first two seasons give the level, the trend, and each position's deviation from the
        # trend line (not from the first season's mean, which a growing series would leave in the season)
        first, second = sum(z[:m]) / m, sum(z[m : 2 * m]) / m
        trend = (second - first) / m
        line = [first + (i - (m - 1) / 2) * trend for i in range(2 * m)]
        season = [((z[i] - line[i]) + (z[i + m] - line[i + m])) / 2 for i in range(m)]
        level, start = line[m - 1], m
    else:
        level, trend, season, start = z[0], z[1] - z[0], [0.0], 1
    wanted, kept = set(keep), {}
    sse, burn_in = 0.0, start + max(m, 4)
    for t in range(start, len(z)):
        if t in wanted:
            kept[t] = _State(level, trend, tuple(season))
        s = season[t % m] if seasonal else 0.0
        error = z[t] - (level + phi * trend + s)
        if t >= burn_in:
            sse += error * error
        level = level + phi * trend + alpha * error
        trend = phi * trend + beta * error
        if seasonal:
            season[t % m] = s + gamma * error
    return sse, kept, _State(level, trend, tuple(season))


def _total(state: _State, at: int, horizon: int, m: int, phi: float, offset: float) -> float:
    """The forecast sum of the `horizon` points from position `at`, back on the cost scale."""
    total, damped = 0.0, 0.0
    for h in range(1, horizon + 1):
        damped += phi**h
        s = state.season[(at + h - 1) % m] if m > 1 else 0.0
        total += math.exp(state.level + damped * state.trend + s) - offset
    return max(0.0, total)


def why_not(points: int, horizon: int, season: int = 0) -> str | None:
    """Why a horizon gets no forecast from `points` of history; None when it does."""
    if points < MIN_POINTS:
        return f"{points} points of history; a forecast needs {MIN_POINTS}"
    m = season if season > 1 and points >= 2 * season + MIN_POINTS else 1
    checks = len(_origins(points, horizon, m))
    if checks < MIN_CHECKS:
        return (
            f"{points} points of history check a {horizon}-point total from {checks} origins; "
            f"an interval needs {MIN_CHECKS}"
        )
    return None


def _origins(points: int, horizon: int, m: int) -> list[int]:
    """The origins checked: a quarter horizon apart over the last CALIBRATION_POINTS whose horizon
    the history holds, after the filter has settled (recent errors say most about the next ones)."""
    first = max((2 * m if m > 1 else 1) + max(m, 4) + MIN_POINTS, points - horizon - CALIBRATION_POINTS)
    return list(range(points - horizon, first - 1, -max(1, horizon // STEPS_PER_HORIZON)))[::-1]


def forecast(y: Sequence[float], horizon: int, season: int = 0) -> Forecast | None:
    """The sum of the next `horizon` points of `y` (e.g. hourly costs; season 168 for a week), or None
    when the history cannot check an interval for it (`why_not`)."""
    if horizon < 1 or why_not(len(y), horizon, season) is not None:
        return None
    m = season if season > 1 and len(y) >= 2 * season + MIN_POINTS else 1
    positive = [v for v in y if v > 0]
    if not positive:
        return Forecast(0.0, 0.0, 0.0, m > 1)
    offset = 0.05 * sum(positive) / len(positive)  # hours without calls are zeros: log needs room for them
    z = [math.log(max(0.0, v) + offset) for v in y]
    gammas = GAMMAS if m > 1 else (0.0,)
    origins = _origins(len(y), horizon, m)
    best = min(itertools.product(ALPHAS, BETAS, gammas, PHIS), key=lambda p: _run(z, m, *p)[0])
    _, states, final = _run(z, m, *best, keep=origins)
    phi = best[3]
    errors = []
    for o in origins:
        predicted = _total(states[o], o, horizon, m, phi, offset)
        actual = sum(y[o : o + horizon])
        errors.append(math.log((actual + offset * horizon) / (predicted + offset * horizon)))
    errors.sort()
    n = len(errors)
    tail = (1 - LEVEL) / 2
    k_low = max(0, math.floor((n + 1) * tail) - 1)
    k_high = min(n - 1, math.ceil((n + 1) * (1 - tail)) - 1)
    total = _total(final, len(y), horizon, m, phi, offset)
    pad = offset * horizon
    low = max(0.0, (total + pad) * math.exp(errors[k_low]) - pad)
    high = (total + pad) * math.exp(errors[k_high]) - pad
    return Forecast(total, min(low, total), max(high, total), m > 1, n)
