"""Routing state in PostgreSQL: evidence rows, breakers, the model catalogue, rules with versions, publication marks."""

from __future__ import annotations

import asyncpg
import orjson

from worker.calls import histogram
from worker.routing.breaker import Breaker
from worker.routing.contract import RoutingHeuristic
from worker.routing.evidence import ANY_TASK, FUTURE_TOLERANCE_S, MinuteRow, QualityRow, SecondRow

NOW = "SELECT extract(epoch FROM now())::float8"

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

BREAKERS = """
SELECT model_id, scope, state, reason, extract(epoch FROM since)::float8 AS since, cooldown_s, baseline_p95_ms, trips,
       extract(epoch FROM opened_at)::float8 AS opened_at
FROM model_breakers"""

SAVE_BREAKER = """
INSERT INTO model_breakers (model_id, scope, state, reason, since, cooldown_s, baseline_p95_ms, trips, opened_at)
VALUES ($1, $2, $3, $4, to_timestamp($5::float8), $6, $7, $8, to_timestamp($9::float8))
ON CONFLICT (model_id, scope) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason, since = EXCLUDED.since,
    cooldown_s = EXCLUDED.cooldown_s, baseline_p95_ms = EXCLUDED.baseline_p95_ms, trips = EXCLUDED.trips,
    opened_at = EXCLUDED.opened_at, updated_at = now()"""

PRUNE_BREAKERS = """DELETE FROM model_breakers WHERE state = 'closed' AND since < now() - make_interval(secs => $1)"""

# The models the gateway can route to: declared ones (per task type the $3 newest, deterministically), and
# those seen in events lately (with their last layer).
CATALOGUE = """
SELECT model_id, task_type, layer FROM (
    SELECT model_id, task_type, layer,
           row_number() OVER (PARTITION BY task_type ORDER BY declared_at DESC, model_id) AS rank
    FROM model_catalogue) d
WHERE rank <= $3
UNION ALL
SELECT p.model_id, p.task_type, l.layer FROM (
    SELECT model_id, task_type FROM model_performance WHERE last_seen >= now() - make_interval(secs => $1)
    ORDER BY last_seen DESC LIMIT $2) p
CROSS JOIN LATERAL (SELECT layer FROM model_performance_minutes m WHERE m.model_id = p.model_id
                    AND m.task_type = p.task_type ORDER BY minute DESC LIMIT 1) l
LIMIT $2"""
CATALOGUE_LIMIT = 10_000

CATALOGUE_VERSION = "SELECT count(*), max(declared_at) FROM model_catalogue"

DECLARE = """
INSERT INTO model_catalogue (model_id, task_type, layer, provider, declared_by) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (model_id, task_type) DO UPDATE SET layer = EXCLUDED.layer, provider = EXCLUDED.provider,
    declared_by = EXCLUDED.declared_by, declared_at = now()
RETURNING model_id, task_type, layer, provider, declared_by, declared_at"""

LEARNED = """SELECT id, version, heuristic FROM routing_rules WHERE source = 'learned' AND task_type = $1 FOR UPDATE"""

INSERT_LEARNED = """
INSERT INTO routing_rules (source, task_type, pattern, preferred_layer, preferred_model, priority, active, metadata,
    version, heuristic, reasoning)
VALUES ('learned', $1, NULL, $2, $3, 0, true, $4, 1, $5, $6) RETURNING id"""

UPDATE_LEARNED = """
UPDATE routing_rules SET preferred_layer = $2, preferred_model = $3, metadata = $4, version = $5, heuristic = $6,
    reasoning = $7, updated_at = now() WHERE id = $1"""

MANUAL_RULE = """
SELECT pattern, preferred_layer, preferred_model, priority, reasoning, metadata FROM routing_rules
WHERE id = $1 AND source = 'manual'"""

RECORD_VERSION = "INSERT INTO routing_rule_versions (rule_id, version, heuristic) VALUES ($1, $2, $3)"

UNPUBLISHED = """
SELECT id, source, task_type, version, heuristic, active FROM routing_rules
WHERE version > published_version AND heuristic IS NOT NULL ORDER BY id"""

MARK_PUBLISHED = """
WITH marked AS (
    UPDATE routing_rules SET published_version = greatest(published_version, $2) WHERE id = $1 RETURNING id)
UPDATE routing_rule_versions SET published_at = now(), published_by = $3
WHERE rule_id = $1 AND version = $2 AND published_at IS NULL"""


async def manual_rule(conn: asyncpg.Connection, rule_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(MANUAL_RULE, rule_id)


async def db_now(conn: asyncpg.Connection) -> float:
    """Windows are judged on PostgreSQL's clock, the one the rows were compared against when written."""
    return float(await conn.fetchval(NOW))


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


async def breakers(conn: asyncpg.Connection) -> dict[tuple[str, str], Breaker]:
    return {
        (r["model_id"], r["scope"]): Breaker(
            r["model_id"],
            r["scope"],
            r["state"],
            r["reason"],
            r["since"],
            r["cooldown_s"],
            r["baseline_p95_ms"],
            r["trips"],
            r["opened_at"],
        )
        for r in await conn.fetch(BREAKERS)
    }


async def save_breaker(conn: asyncpg.Connection, b: Breaker) -> None:
    await conn.execute(
        SAVE_BREAKER,
        b.model_id,
        b.scope,
        b.state,
        b.reason,
        b.since,
        b.cooldown_s,
        b.baseline_p95_ms,
        b.trips,
        b.opened_at,
    )


PRUNE_HEALTH = "DELETE FROM model_health WHERE bucket < now() - interval '1 hour'"


async def prune_health(conn: asyncpg.Connection) -> int:
    """1-second health buckets only feed the degradation fast path: an hour is plenty."""
    return int((await conn.execute(PRUNE_HEALTH)).split()[-1])


async def prune_breakers(conn: asyncpg.Connection, keep_s: float) -> int:
    """Closed breakers are kept as long as their incident lies in the evidence window."""
    return int((await conn.execute(PRUNE_BREAKERS, float(keep_s))).split()[-1])


async def catalogue(
    conn: asyncpg.Connection, seen_within_s: float, max_per_task: int = 100
) -> dict[str, dict[str, str]]:
    """Task type (or ANY_TASK) -> model -> layer."""
    out: dict[str, dict[str, str]] = {}
    for r in await conn.fetch(CATALOGUE, float(seen_within_s), CATALOGUE_LIMIT, max_per_task):
        out.setdefault(r["task_type"], {}).setdefault(r["model_id"], r["layer"])
    return out


async def catalogue_version(conn: asyncpg.Connection) -> tuple:
    """Changes whenever a model is declared or removed: the leader then recomputes at once."""
    return tuple(await conn.fetchrow(CATALOGUE_VERSION))


class CatalogueFull(Exception):
    """A task type has as many declared models as a rule weighs (ROUTING_MAX_MODELS)."""

    def __init__(self, task_type: str, limit: int):
        self.task_type, self.limit = task_type, limit
        where = "every task type" if task_type == ANY_TASK else f"task type {task_type!r}"
        super().__init__(
            f"{where} has {limit} declared models already, as many as a rule weighs (ROUTING_MAX_MODELS); "
            "remove one first (telemetry-worker models remove)"
        )


DECLARED_OTHERS = "SELECT count(*) FROM model_catalogue WHERE task_type = $1 AND model_id <> $2"


async def declare_model(
    conn: asyncpg.Connection,
    model_id: str,
    layer: str,
    task_types: list[str] | None,
    provider: str | None,
    declared_by: str,
    max_per_task: int = 100,
) -> list[dict]:
    """Declare (or re-declare) a model; refused with CatalogueFull past `max_per_task` per task type, so
    that what a rule weighs never depends on which rows a read happened to return."""
    async with conn.transaction():
        for task in task_types or [ANY_TASK]:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('catalogue:' || $1))", task)
            if await conn.fetchval(DECLARED_OTHERS, task, model_id) >= max_per_task:
                raise CatalogueFull(task, max_per_task)
        rows = [
            await conn.fetchrow(DECLARE, model_id, task, layer, provider, declared_by)
            for task in (task_types or [ANY_TASK])
        ]
    return [dict(r) for r in rows]


async def remove_model(conn: asyncpg.Connection, model_id: str) -> int:
    return int((await conn.execute("DELETE FROM model_catalogue WHERE model_id = $1", model_id)).split()[-1])


async def declared_models(conn: asyncpg.Connection) -> list[dict]:
    return [
        dict(r)
        for r in await conn.fetch(
            "SELECT model_id, task_type, layer, provider, declared_by, declared_at FROM model_catalogue "
            "ORDER BY model_id, task_type"
        )
    ]


async def learned_records(conn: asyncpg.Connection) -> dict[str, dict]:
    """The current record of every learned rule, by task type."""
    return {
        r["task_type"]: orjson.loads(r["heuristic"])
        for r in await conn.fetch(
            "SELECT task_type, heuristic FROM routing_rules WHERE source = 'learned' AND heuristic IS NOT NULL"
        )
    }


async def learned_rule(conn: asyncpg.Connection, task_type: str) -> asyncpg.Record | None:
    """The learned rule of a task type, locked until the transaction ends (versions stay monotonic)."""
    return await conn.fetchrow(LEARNED, task_type)


async def store_learned(
    conn: asyncpg.Connection, current: asyncpg.Record | None, task_type: str, record: dict, metadata: dict
) -> int:
    """Insert or bump the learned rule to the record's version; returns the version."""
    heuristic = orjson.dumps(record).decode()
    meta = orjson.dumps(metadata).decode()
    if current is None:
        rule_id = await conn.fetchval(
            INSERT_LEARNED,
            task_type,
            record["preferred_layer"],
            record["preferred_model"],
            meta,
            heuristic,
            record["reasoning"],
        )
    else:
        rule_id = current["id"]
        await conn.execute(
            UPDATE_LEARNED,
            rule_id,
            record["preferred_layer"],
            record["preferred_model"],
            meta,
            record["version"],
            heuristic,
            record["reasoning"],
        )
    await conn.execute(RECORD_VERSION, rule_id, record["version"], heuristic)
    return record["version"]


async def unpublished(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(UNPUBLISHED)


async def mark_published(conn: asyncpg.Connection, rule_id: int, version: int, publisher: str) -> None:
    await conn.execute(MARK_PUBLISHED, rule_id, version, publisher)


INSERT_MANUAL = """
INSERT INTO routing_rules (source, pattern, preferred_layer, preferred_model, priority, active, metadata, version,
    reasoning, task_type)
VALUES ('manual', $1, $2, $3, $4, $5, $6, 1, $7, $8) RETURNING id, version, task_type"""

UPDATE_MANUAL = """
UPDATE routing_rules SET pattern = $2, preferred_layer = $3, preferred_model = $4, priority = $5, active = $6,
    metadata = $7, reasoning = $8, version = version + 1, updated_at = now()
WHERE id = $1 AND source = 'manual' RETURNING id, version, task_type"""


def manual_record(
    rule_id: int,
    version: int,
    pattern: str,
    layer: str,
    model: str | None,
    priority: int,
    active: bool,
    reasoning: str,
    task_type: str | None = None,
) -> dict:
    return RoutingHeuristic.manual(
        rule_id, version, pattern, layer, model, priority, active, reasoning, task_type
    ).model_dump(mode="json")


async def save_manual_rule(
    conn: asyncpg.Connection,
    *,
    pattern: str,
    layer: str,
    model: str | None,
    priority: int,
    active: bool,
    reasoning: str,
    metadata: dict,
    rule_id: int | None = None,
    task_type: str | None = None,
) -> dict:
    """Create (or, with rule_id, change) a manual rule; the pattern must already be validated.
    `task_type` (new rules only): the rule applies to that task type alone."""
    meta = orjson.dumps(metadata).decode()
    async with conn.transaction():
        if rule_id is None:
            row = await conn.fetchrow(
                INSERT_MANUAL, pattern, layer, model, priority, active, meta, reasoning, task_type
            )
        else:
            row = await conn.fetchrow(UPDATE_MANUAL, rule_id, pattern, layer, model, priority, active, meta, reasoning)
            if row is None:
                raise LookupError(f"no manual routing rule with id {rule_id}")
        record = manual_record(
            row["id"], row["version"], pattern, layer, model, priority, active, reasoning, row["task_type"]
        )
        heuristic = orjson.dumps(record).decode()
        await conn.execute("UPDATE routing_rules SET heuristic = $2 WHERE id = $1", row["id"], heuristic)
        await conn.execute(RECORD_VERSION, row["id"], row["version"], heuristic)
    return record


async def rules(conn: asyncpg.Connection, active_only: bool = True) -> list[dict]:
    rows = await conn.fetch(
        "SELECT heuristic FROM routing_rules WHERE heuristic IS NOT NULL AND ($1 = false OR active) "
        "ORDER BY priority DESC, id",
        active_only,
    )
    return [orjson.loads(r["heuristic"]) for r in rows]
