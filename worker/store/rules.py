"""Routing rules, learned and manual, with their versions and publication marks."""

from __future__ import annotations

import asyncpg
import orjson

from worker.routing.contract import RoutingHeuristic

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
        record = RoutingHeuristic.manual(
            row["id"], row["version"], pattern, layer, model, priority, active, reasoning, row["task_type"]
        ).model_dump(mode="json")
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
