"""Routing state in PostgreSQL: evidence windows, exclusions, rules with versions, publication marks."""

from __future__ import annotations

import datetime as dt

import asyncpg
import orjson

from worker import histogram
from worker.degradation import DETECTION_WINDOWS_S, Window
from worker.scoring import Evidence

EVIDENCE = """
SELECT task_type, model_id, mode() WITHIN GROUP (ORDER BY layer) AS layer, sum(total_calls) AS calls,
       sum(success_count) AS successes, sum(cost_sum_usd) AS cost, hist_sum(latency_histogram) AS hist
FROM model_performance_minutes WHERE minute >= now() - make_interval(secs => $1)
GROUP BY task_type, model_id"""

HEALTH = """
SELECT model_id, {windows}
FROM model_health WHERE bucket >= now() - make_interval(secs => $1) GROUP BY model_id"""
_WINDOW_COLUMNS = ", ".join(
    f"sum(total_calls) FILTER (WHERE bucket >= now() - interval '{s} seconds') AS calls_{s}, "
    f"sum(failure_count) FILTER (WHERE bucket >= now() - interval '{s} seconds') AS failures_{s}, "
    f"hist_sum(latency_histogram) FILTER (WHERE bucket >= now() - interval '{s} seconds') AS hist_{s}"
    for s in DETECTION_WINDOWS_S
)

BASELINE_P95 = """
SELECT model_id, hist_sum(latency_histogram) AS hist FROM model_performance_minutes
WHERE minute >= now() - make_interval(secs => $1) GROUP BY model_id"""

LEARNED = """SELECT id, version, heuristic FROM routing_rules WHERE source = 'learned' AND task_type = $1 FOR UPDATE"""

INSERT_LEARNED = """
INSERT INTO routing_rules (source, task_type, pattern, preferred_layer, preferred_model, priority, active, metadata,
    version, heuristic, reasoning)
VALUES ('learned', $1, NULL, $2, $3, 0, true, $4, 1, $5, $6) RETURNING id"""

UPDATE_LEARNED = """
UPDATE routing_rules SET preferred_layer = $2, preferred_model = $3, metadata = $4, version = $5, heuristic = $6,
    reasoning = $7, updated_at = now() WHERE id = $1"""

RECORD_VERSION = "INSERT INTO routing_rule_versions (rule_id, version, heuristic) VALUES ($1, $2, $3)"

UNPUBLISHED = """
SELECT id, source, task_type, version, heuristic, active FROM routing_rules
WHERE version > published_version AND heuristic IS NOT NULL ORDER BY id"""

MARK_PUBLISHED = """
WITH marked AS (
    UPDATE routing_rules SET published_version = greatest(published_version, $2) WHERE id = $1 RETURNING id)
UPDATE routing_rule_versions SET published_at = now(), published_by = $3
WHERE rule_id = $1 AND version = $2 AND published_at IS NULL"""


def _p95(hist_json: str | None) -> float:
    if not hist_json:
        return 0.0
    return histogram.quantile(histogram.from_json_keys(orjson.loads(hist_json)), 0.95) or 0.0


async def window_evidence(conn: asyncpg.Connection, window_s: int) -> dict[str, list[Evidence]]:
    by_task: dict[str, list[Evidence]] = {}
    for r in await conn.fetch(EVIDENCE, float(window_s)):
        calls = int(r["calls"])
        by_task.setdefault(r["task_type"], []).append(Evidence(
            r["model_id"], r["layer"], calls, int(r["successes"]), _p95(r["hist"]),
            float(r["cost"]) / calls if calls else 0.0,
        ))
    return by_task


async def health_windows(conn: asyncpg.Connection) -> dict[str, list[Window]]:
    rows = await conn.fetch(HEALTH.format(windows=_WINDOW_COLUMNS), float(max(DETECTION_WINDOWS_S)))
    return {
        r["model_id"]: [Window(s, int(r[f"calls_{s}"] or 0), int(r[f"failures_{s}"] or 0),
                               _p95(r[f"hist_{s}"]) or None) for s in DETECTION_WINDOWS_S]
        for r in rows
    }


async def baseline_p95(conn: asyncpg.Connection, window_s: int) -> dict[str, float]:
    return {r["model_id"]: _p95(r["hist"]) for r in await conn.fetch(BASELINE_P95, float(window_s))}


async def exclusions(conn: asyncpg.Connection) -> dict[str, tuple[str, dt.datetime]]:
    return {r["model_id"]: (r["reason"], r["excluded_at"])
            for r in await conn.fetch("SELECT model_id, reason, excluded_at FROM model_exclusions")}


async def restorations(conn: asyncpg.Connection) -> dict[str, dt.datetime]:
    return {r["model_id"]: r["restored_at"] for r in await conn.fetch("SELECT model_id, restored_at FROM model_restorations")}


async def exclude(conn: asyncpg.Connection, model_id: str, reason: str) -> bool:
    status = await conn.execute(
        "INSERT INTO model_exclusions (model_id, reason) VALUES ($1, $2) ON CONFLICT DO NOTHING", model_id, reason)
    return status.endswith(" 1")


async def restore(conn: asyncpg.Connection, model_id: str) -> bool:
    status = await conn.execute("DELETE FROM model_exclusions WHERE model_id = $1", model_id)
    await conn.execute("INSERT INTO model_restorations (model_id) VALUES ($1) ON CONFLICT (model_id) "
                       "DO UPDATE SET restored_at = now()", model_id)
    return status.endswith(" 1")


async def learned_rule(conn: asyncpg.Connection, task_type: str) -> asyncpg.Record | None:
    """The learned rule of a task type, locked until the transaction ends (versions stay monotonic)."""
    return await conn.fetchrow(LEARNED, task_type)


async def store_learned(conn: asyncpg.Connection, current: asyncpg.Record | None, task_type: str,
                        record: dict, metadata: dict) -> int:
    """Insert or bump the learned rule to the record's version; returns the version."""
    heuristic = orjson.dumps(record).decode()
    meta = orjson.dumps(metadata).decode()
    if current is None:
        rule_id = await conn.fetchval(INSERT_LEARNED, task_type, record["preferred_layer"], record["preferred_model"],
                                      meta, heuristic, record["reasoning"])
    else:
        rule_id = current["id"]
        await conn.execute(UPDATE_LEARNED, rule_id, record["preferred_layer"], record["preferred_model"], meta,
                           record["version"], heuristic, record["reasoning"])
    await conn.execute(RECORD_VERSION, rule_id, record["version"], heuristic)
    return record["version"]


async def unpublished(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(UNPUBLISHED)


async def mark_published(conn: asyncpg.Connection, rule_id: int, version: int, publisher: str) -> None:
    await conn.execute(MARK_PUBLISHED, rule_id, version, publisher)


INSERT_MANUAL = """
INSERT INTO routing_rules (source, pattern, preferred_layer, preferred_model, priority, active, metadata, version,
    reasoning)
VALUES ('manual', $1, $2, $3, $4, $5, $6, 1, $7) RETURNING id, version"""

UPDATE_MANUAL = """
UPDATE routing_rules SET pattern = $2, preferred_layer = $3, preferred_model = $4, priority = $5, active = $6,
    metadata = $7, reasoning = $8, version = version + 1, updated_at = now()
WHERE id = $1 AND source = 'manual' RETURNING id, version"""


def manual_record(rule_id: int, version: int, pattern: str, layer: str, model: str | None, priority: int,
                  active: bool, reasoning: str) -> dict:
    return {"schema_version": 1, "heuristic_id": f"manual:{rule_id}", "task_type": None, "pattern": pattern,
            "preferred_layer": layer, "preferred_model": model, "fallback_models": [],
            "weights": {model: 1.0} if model else {}, "priority": priority, "active": active, "version": version,
            "computed_at": dt.datetime.now(dt.UTC).isoformat(), "window_s": None, "evidence": {}, "excluded": {},
            "reasoning": reasoning}


async def save_manual_rule(conn: asyncpg.Connection, *, pattern: str, layer: str, model: str | None, priority: int,
                           active: bool, reasoning: str, metadata: dict, rule_id: int | None = None) -> dict:
    """Create (or, with rule_id, change) a manual rule; the pattern must already be validated."""
    meta = orjson.dumps(metadata).decode()
    async with conn.transaction():
        if rule_id is None:
            row = await conn.fetchrow(INSERT_MANUAL, pattern, layer, model, priority, active, meta, reasoning)
        else:
            row = await conn.fetchrow(UPDATE_MANUAL, rule_id, pattern, layer, model, priority, active, meta, reasoning)
            if row is None:
                raise LookupError(f"no manual routing rule with id {rule_id}")
        record = manual_record(row["id"], row["version"], pattern, layer, model, priority, active, reasoning)
        heuristic = orjson.dumps(record).decode()
        await conn.execute("UPDATE routing_rules SET heuristic = $2 WHERE id = $1", row["id"], heuristic)
        await conn.execute(RECORD_VERSION, row["id"], row["version"], heuristic)
    return record


async def rules(conn: asyncpg.Connection, active_only: bool = True) -> list[dict]:
    rows = await conn.fetch("SELECT heuristic FROM routing_rules WHERE heuristic IS NOT NULL AND ($1 = false OR active) "
                            "ORDER BY priority DESC, id", active_only)
    return [orjson.loads(r["heuristic"]) for r in rows]
