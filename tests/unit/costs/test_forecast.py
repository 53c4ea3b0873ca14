"""Forecasts on synthetic cost series with a known trend and weekly season."""

import math
import random

from worker.costs.forecast import forecast


def series(rng: random.Random, days: int, trend: float, noise: float) -> list[float]:
    """Daily costs: a level, a linear trend, a weekly season (weekends quieter) and Gaussian noise."""
    week = [1.0, 1.1, 1.15, 1.1, 1.0, 0.6, 0.5]
    return [max(0.0, (100 + trend * d) * week[d % 7] + rng.gauss(0, noise)) for d in range(days)]


def test_the_interval_of_next_weeks_cost_covers_the_truth_at_least_at_the_stated_rate():
    rng, covered, runs = random.Random(7), 0, 300
    for _ in range(runs):
        y = series(rng, 63 + 7, trend=rng.uniform(-0.5, 1.5), noise=6.0)
        history, future = y[:63], y[63:]
        f = forecast(history, horizon=7, season=7)
        assert f is not None and f.seasonal
        covered += f.low <= sum(future) <= f.high
    assert covered / runs >= 0.95, f"covered {covered / runs:.3f}"


def test_the_forecast_follows_trend_and_season_closely():
    rng = random.Random(3)
    y = series(rng, 70, trend=1.0, noise=1.0)
    f = forecast(y[:63], horizon=7, season=7)
    truth = sum(y[63:])
    assert abs(f.total - truth) / truth < 0.05
    assert f.high - f.low < 0.5 * truth  # honest, but not uselessly wide


def test_short_histories_forecast_without_season_or_not_at_all():
    rng = random.Random(1)
    assert forecast([1.0] * 5, horizon=3) is None
    f = forecast(series(rng, 14, trend=0.0, noise=1.0), horizon=7, season=7)
    assert f is not None and not f.seasonal and math.isfinite(f.total)
