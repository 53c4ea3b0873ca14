"""Hourly cost series of the kinds production sees, with the truth that follows them: the yardstick the
forecast's intervals are held to (tests/unit/costs/test_forecast.py, docs/experiments.md).

Each series is `HISTORY_HOURS` of history and a next day, with a daily and weekly pattern and noise.
Kinds: `additive` (the Holt-Winters model's own assumptions: a steady level, a season that adds),
`growth` (1 % a day, the pattern scaling with volume), `shift` (+50 % three days before the end),
`trend-change` (flat for four weeks, then growing 3 % a day), `damped` (fast growth that levels off),
`spikes` (1 % of hours at 3-6x).
"""

from __future__ import annotations

import math
import random

from worker.costs.projection import DAY_HOURS, HISTORY_HOURS

KINDS = ("additive", "growth", "shift", "trend-change", "damped", "spikes")


def _pattern(hour: int) -> float:
    """A working day's wave and quieter weekends, around 1."""
    day, weekday = hour % 24, (hour // 24) % 7
    wave = 1.0 + 0.6 * math.sin(2 * math.pi * (day - 8) / 24)
    return wave * (0.55 if weekday >= 5 else 1.1)


def series(kind: str, rng: random.Random, horizon: int = DAY_HOURS) -> tuple[list[float], list[float]]:
    """(history, the next `horizon` hours)."""
    n = HISTORY_HOURS + horizon
    level = rng.uniform(2.0, 40.0)
    out = []
    for t in range(n):
        days = t / 24
        if kind == "additive":
            value = level + level * 0.5 * (_pattern(t) - 1.0) + rng.gauss(0, 0.08 * level)
        else:
            scale = level
            if kind == "growth":
                scale *= 1.01**days
            elif kind == "shift" and t >= HISTORY_HOURS - 72:
                scale *= 1.5
            elif kind == "trend-change" and days > 28:
                scale *= 1.03 ** (days - 28)
            elif kind == "damped":
                scale *= 1 + 1.0 * (1 - math.exp(-days / 10))
            value = scale * _pattern(t) * math.exp(rng.gauss(0, 0.1))
            if kind == "spikes" and rng.random() < 0.01:
                value *= rng.uniform(3.0, 6.0)
        out.append(max(0.0, value))
    return out[:HISTORY_HOURS], out[HISTORY_HOURS:]
