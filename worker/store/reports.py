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
SELECT severity, pattern, occurrences, error_type, last_seen, status FROM bug_patterns
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


# The learned rules as published, with the time their published version went out (what counterfactuals
# of a rule are measured from), and the propensity sums of the calls logged since then.
PUBLISHED_RULES = """
SELECT r.task_type, r.published_version AS version, v.heuristic,
       extract(epoch FROM v.published_at)::float8 AS published_at
FROM routing_rules r JOIN routing_rule_versions v ON v.rule_id = r.id AND v.version = r.published_version
WHERE r.source = 'learned' AND r.active AND v.published_at IS NOT NULL AND ($1::text IS NULL OR r.task_type = $1)
ORDER BY r.task_type LIMIT $2"""

# Minute rows from the first full minute after `since`: a rule is never scored on a call it was learned from.
LOGGED_SINCE = """
SELECT p.task_type, p.model_id, sum(calls)::int8 AS calls, sum(unweighted)::int8 AS unweighted,
       sum(weight) AS weight, sum(weight_sq) AS weight_sq, sum(success_w) AS success_w,
       sum(success_w_sq) AS success_w_sq, sum(cost_w) AS cost_w, sum(cost_w_sq) AS cost_w_sq,
       sum(cost_sq_w_sq) AS cost_sq_w_sq
FROM route_propensity_minutes p JOIN unnest($1::text[], $2::float8[]) AS s(task_type, since)
    ON p.task_type = s.task_type AND p.minute >= to_timestamp(s.since)
GROUP BY p.task_type, p.model_id ORDER BY p.task_type, p.model_id"""


# Judged calls (each call's mean score per feedback name over its sources), weighted like LOGGED_SINCE and
# from the same first full minute (a candidate rule is learned from the minutes before it).
JUDGED_SINCE = """
WITH judged AS (
    SELECT c.task_type, c.model_id, f.name, c.route_probability AS p, avg(f.score_micro) / 1e6 AS q
    FROM call_feedback f
    JOIN call_index c ON c.event_id = f.call_event_id
    JOIN unnest($1::text[], $2::float8[]) AS s(task_type, since)
        ON c.task_type = s.task_type AND c.occurred_at >= to_timestamp(ceil(s.since / 60) * 60)
    WHERE c.route_probability >= $3 AND c.route_probability <= 1
    GROUP BY c.event_id, c.task_type, c.model_id, f.name, c.route_probability)
SELECT task_type, model_id, name, count(*)::int8 AS calls, sum(1 / p) AS weight, sum(1 / (p * p)) AS weight_sq,
       sum(q / p) AS quality_w, sum(q / (p * p)) AS quality_w_sq, sum(q * q / (p * p)) AS quality_sq_w_sq
FROM judged GROUP BY task_type, model_id, name ORDER BY task_type, model_id, name"""

CALLS_SINCE = """
SELECT m.task_type, sum(total_calls)::int8 AS calls
FROM model_performance_minutes m JOIN unnest($1::text[], $2::float8[]) AS s(task_type, since)
    ON m.task_type = s.task_type AND m.minute >= to_timestamp(s.since)
GROUP BY m.task_type"""


async def published_rules(conn: asyncpg.Connection, task_type: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(PUBLISHED_RULES, task_type, limit)


async def logged_since(conn: asyncpg.Connection, since: dict[str, float]) -> list[asyncpg.Record]:
    """Propensity sums per (task type, model) of the calls logged from each task type's `since` on."""
    tasks = sorted(since)
    return await conn.fetch(LOGGED_SINCE, tasks, [since[t] for t in tasks])


async def judged_since(
    conn: asyncpg.Connection, since: dict[str, float], min_propensity: float
) -> list[asyncpg.Record]:
    """Per (task type, model, feedback name): propensity-weighted score sums of the judged calls."""
    tasks = sorted(since)
    return await conn.fetch(JUDGED_SINCE, tasks, [since[t] for t in tasks], min_propensity)


async def calls_since(conn: asyncpg.Connection, since: dict[str, float]) -> dict[str, int]:
    """All calls per task type from each one's `since` on, propensity or not."""
    tasks = sorted(since)
    return {r["task_type"]: r["calls"] for r in await conn.fetch(CALLS_SINCE, tasks, [since[t] for t in tasks])}


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
