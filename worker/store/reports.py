"""The reads behind the report, `status` and `export-tests`: bounded, and the only place they are written down."""

from __future__ import annotations

import asyncpg

# Per task type the `$2` most called models, at most `$3` rows in all: a read's size never follows
# the number of distinct ids strangers sent. Percentiles are computed for the kept rows only.
MODELS = """
WITH kept AS (
    SELECT model_id, task_type FROM (
        SELECT model_id, task_type, total_calls,
               row_number() OVER (PARTITION BY task_type ORDER BY total_calls DESC, model_id) AS rank
        FROM model_performance WHERE ($1::text IS NULL OR task_type = $1)) ranked
    WHERE rank <= $2 ORDER BY total_calls DESC, task_type, model_id LIMIT $3)
SELECT model_id, task_type, success_rate, avg_latency_ms, avg_cost, total_calls, success_count, failure_count,
       latency_p50_ms, latency_p95_ms, latency_p99_ms, input_tokens, output_tokens, first_seen, last_seen
FROM model_performance_latency JOIN kept USING (model_id, task_type)
ORDER BY task_type, success_rate DESC, avg_latency_ms ASC"""

# quality per kept (model, task type): at most FEEDBACK_MAX_NAMES names each
QUALITY = """
SELECT q.model_id, q.task_type, q.name, q.feedback_count, q.score_sum::float8 AS total
FROM model_quality q JOIN unnest($1::text[], $2::text[]) AS k(model_id, task_type) USING (model_id, task_type)
ORDER BY q.model_id, q.task_type, q.feedback_count DESC, q.name"""

MODEL_ROWS = "SELECT count(*) FROM model_performance WHERE ($1::text IS NULL OR task_type = $1)"
MAX_MODELS_PER_TASK, MAX_MODEL_ROWS = 100, 2000

RECENT_BUGS = """
SELECT severity, pattern, occurrences, error_type, last_seen FROM bug_patterns
ORDER BY last_seen DESC NULLS LAST, occurrences DESC LIMIT 5"""

SUMMARY = """
SELECT (SELECT count(*) FROM regression_tests) AS regression_tests,
       (SELECT count(*) FROM bug_patterns) AS bug_patterns,
       (SELECT count(*) FROM routing_rules WHERE active) AS routing_heuristics"""


STUBS = """
SELECT r.test_name, r.category, r.test_code, r.expected_behavior, b.fingerprint, b.error_type, b.pattern,
       b.example_request
FROM regression_tests r LEFT JOIN bug_patterns b ON b.fingerprint = r.metadata->>'fingerprint'
WHERE ($1::text IS NULL OR r.category = $1)
ORDER BY r.test_name"""

STORED = """
SELECT topic, partition, next_offset, updated_at FROM consumer_offsets WHERE consumer_group = $1"""

HEURISTICS = """
SELECT coalesce('learned:' || task_type, 'manual:' || id) AS rule, version, published_version, active, updated_at
FROM routing_rules WHERE heuristic IS NOT NULL ORDER BY source, task_type, id"""


# Forecast series: the `$2` costliest (model, task type) pairs of the last week, their hourly costs
# over the last `$3` complete hours (the index on (model_id, task_type, minute) serves each pair).
HOURLY_COSTS = """
WITH top AS (
    SELECT model_id, task_type FROM model_performance_minutes
    WHERE minute >= now() - interval '7 days' AND ($1::text IS NULL OR task_type = $1)
    GROUP BY model_id, task_type HAVING sum(cost_sum_usd) > 0
    ORDER BY sum(cost_sum_usd) DESC, model_id, task_type LIMIT $2)
SELECT m.model_id, m.task_type, extract(epoch FROM date_trunc('hour', m.minute))::float8 AS hour,
       sum(m.cost_sum_usd) AS cost
FROM model_performance_minutes m JOIN top USING (model_id, task_type)
WHERE m.minute >= date_trunc('hour', now()) - make_interval(hours => $3) AND m.minute < date_trunc('hour', now())
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
FORECAST_MAX_SERIES = 20


HOUR_NOW = "SELECT extract(epoch FROM date_trunc('hour', now()))::float8"


async def hourly_costs(conn: asyncpg.Connection, task_type: str | None, hours: int) -> list[asyncpg.Record]:
    return await conn.fetch(HOURLY_COSTS, task_type, FORECAST_MAX_SERIES, hours)


async def hour_now(conn: asyncpg.Connection) -> float:
    return await conn.fetchval(HOUR_NOW)


async def model_rows(conn: asyncpg.Connection, task_type: str | None, per_task: int, rows: int) -> list[asyncpg.Record]:
    return await conn.fetch(MODELS, task_type, per_task, rows)


async def quality(conn: asyncpg.Connection, keys: list[tuple[str, str]]) -> list[asyncpg.Record]:
    return await conn.fetch(QUALITY, [m for m, _ in keys], [t for _, t in keys])


async def model_row_count(conn: asyncpg.Connection, task_type: str | None) -> int:
    return int(await conn.fetchval(MODEL_ROWS, task_type))


async def summary(conn: asyncpg.Connection) -> dict[str, int]:
    return dict(await conn.fetchrow(SUMMARY))


async def recent_bugs(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(RECENT_BUGS)


async def stubs_to_export(conn: asyncpg.Connection, category: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(STUBS, category)


async def stored_positions(conn: asyncpg.Connection, group: str) -> list[asyncpg.Record]:
    return await conn.fetch(STORED, group)


async def rule_versions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(HEURISTICS)
