"""Evidence rows for the routing engine: minutes, seconds and feedback per model and task type, bounded."""

from __future__ import annotations

import asyncpg
import orjson

from worker.calls import histogram
from worker.routing.evidence import FUTURE_TOLERANCE_S, MinuteRow, QualityRow, SecondRow

# Rows as worker.routing.evidence reads them; both bounded on both sides (a future-dated row judges nothing), and
# in breadth: per task type the $4 models with the most calls in the window, for the $5 busiest task
# types (ranked on plain counts first; histograms are read for the kept ones only), so that a flood of
# distinct ids costs PostgreSQL one scan, never the leader's memory or loop.
_KEPT = """
WITH per_model AS (
    SELECT task_type, model_id, sum(total_calls) AS calls,
           row_number() OVER (PARTITION BY task_type ORDER BY sum(total_calls) DESC, model_id) AS rank
    FROM {table} WHERE {window} GROUP BY task_type, model_id),
tasks AS (SELECT task_type FROM per_model GROUP BY task_type ORDER BY sum(calls) DESC, task_type LIMIT $5),
kept AS (SELECT task_type, model_id FROM per_model WHERE rank <= $4 AND task_type IN (SELECT task_type FROM tasks))
"""


_MINUTES = "minute >= to_timestamp($1::float8 - $2::float8) AND minute <= to_timestamp($1::float8 + $3::float8)"


_SECONDS = "bucket >= to_timestamp($1::float8 - $2::float8) AND bucket <= to_timestamp($1::float8 + $3::float8)"


MINUTE_ROWS = (
    _KEPT.format(table="model_performance_minutes", window=_MINUTES)
    + f"""
SELECT extract(epoch FROM minute)::float8 AS minute, model_id, task_type, layer, total_calls, success_count,
       cost_sum_usd, latency_histogram
FROM model_performance_minutes
WHERE {_MINUTES} AND (task_type, model_id) IN (SELECT * FROM kept)"""
)


# feedback on the answers of the same kept models (the names are bounded by FEEDBACK_MAX_NAMES), layers summed
QUALITY_ROWS = (
    _KEPT.format(table="model_performance_minutes", window=_MINUTES)
    + f"""
SELECT extract(epoch FROM minute)::float8 AS minute, model_id, task_type, name, sum(feedback_count) AS n,
       sum(score_sum)::float8 AS total
FROM model_quality_minutes
WHERE {_MINUTES} AND (task_type, model_id) IN (SELECT * FROM kept)
GROUP BY minute, model_id, task_type, name"""
)


SECOND_ROWS = (
    _KEPT.format(table="model_health", window=_SECONDS)
    + f"""
SELECT extract(epoch FROM bucket)::float8 AS second, model_id, task_type, sum(total_calls) AS total_calls,
       sum(failure_count) AS failures, hist_sum(latency_histogram) AS hist
FROM model_health
WHERE {_SECONDS} AND (task_type, model_id) IN (SELECT * FROM kept)
GROUP BY bucket, model_id, task_type"""
)


# How many models and task types the bounds above leave out (for the metric and the log).
BREADTH = """
SELECT count(DISTINCT task_type) AS task_types, coalesce(max(models), 0) AS widest FROM (
    SELECT task_type, count(DISTINCT model_id) AS models FROM model_performance_minutes
    WHERE minute >= to_timestamp($1::float8 - $2::float8) AND minute <= to_timestamp($1::float8 + $3::float8)
    GROUP BY task_type) t"""


def _hist(value: str | None) -> histogram.Histogram:
    return histogram.from_json_keys(orjson.loads(value)) if value else {}


async def minute_rows(
    conn: asyncpg.Connection, now: float, window_s: float, max_models: int, max_task_types: int
) -> list[MinuteRow]:
    return [
        MinuteRow(
            r["minute"],
            r["model_id"],
            r["task_type"],
            r["layer"],
            int(r["total_calls"]),
            int(r["success_count"]),
            float(r["cost_sum_usd"]),
            _hist(r["latency_histogram"]),
        )
        for r in await conn.fetch(MINUTE_ROWS, now, float(window_s), FUTURE_TOLERANCE_S, max_models, max_task_types)
    ]


async def quality_rows(
    conn: asyncpg.Connection, now: float, window_s: float, max_models: int, max_task_types: int
) -> list[QualityRow]:
    return [
        QualityRow(r["minute"], r["model_id"], r["task_type"], r["name"], int(r["n"]), float(r["total"]))
        for r in await conn.fetch(QUALITY_ROWS, now, float(window_s), FUTURE_TOLERANCE_S, max_models, max_task_types)
    ]


async def second_rows(
    conn: asyncpg.Connection, now: float, span_s: float, max_models: int, max_task_types: int
) -> list[SecondRow]:
    return [
        SecondRow(
            r["second"], r["model_id"], r["task_type"], int(r["total_calls"]), int(r["failures"]), _hist(r["hist"])
        )
        for r in await conn.fetch(SECOND_ROWS, now, float(span_s), FUTURE_TOLERANCE_S, max_models, max_task_types)
    ]


async def breadth(conn: asyncpg.Connection, now: float, window_s: float) -> tuple[int, int]:
    """(task types in the window, models of the widest task type)."""
    row = await conn.fetchrow(BREADTH, now, float(window_s), FUTURE_TOLERANCE_S)
    return int(row["task_types"]), int(row["widest"])
