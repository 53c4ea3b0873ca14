"""Cost projections per model and task type: the last complete hours as a series, and its forecasts.

Hourly totals come from the minute rows; hours without calls are zeros (no traffic costs nothing).
The series starts at the first hour with calls in the window (HISTORY_HOURS, five weeks: enough for
two weekly seasons and the forecast's minimum), so a model that arrived yesterday is not projected
from weeks of zeros before it existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from worker.costs.forecast import Forecast, forecast, why_not

HOUR = 3600
HISTORY_HOURS = 35 * 24
WEEK_HOURS = 168
DAY_HOURS, MONTH_HOURS = 24, 30 * 24


@dataclass(frozen=True, slots=True)
class CostProjection:
    model_id: str
    task_type: str
    history_hours: int
    last_day_usd: float
    next_day: Forecast | None  # None: too little history to say anything (the reason in `notes`)
    next_month: Forecast | None
    notes: dict[str, str]  # horizon ("next_day", "next_month") -> why it has no forecast


def hourly(points: Iterable[tuple[float, float]], until_hour: float) -> list[float]:
    """(hour start in epoch s, cost) -> one value per hour from the first point to the hour before `until_hour`."""
    by_hour = {int(h): c for h, c in points}
    if not by_hour:
        return []
    first, end = min(by_hour), int(until_hour)
    return [by_hour.get(h, 0.0) for h in range(first, end, HOUR)]


def project(model_id: str, task_type: str, series: list[float]) -> CostProjection:
    return CostProjection(
        model_id=model_id,
        task_type=task_type,
        history_hours=len(series),
        last_day_usd=sum(series[-DAY_HOURS:]),
        next_day=forecast(series, DAY_HOURS, WEEK_HOURS),
        next_month=forecast(series, MONTH_HOURS, WEEK_HOURS),
        notes={
            name: why
            for name, horizon in (("next_day", DAY_HOURS), ("next_month", MONTH_HOURS))
            if (why := why_not(len(series), horizon, WEEK_HOURS)) is not None
        },
    )
