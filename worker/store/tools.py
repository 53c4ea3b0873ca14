"""The tools' reads (one page at a time) and their direct writes (rows that are not aggregates)."""

from __future__ import annotations

import asyncpg
import orjson

BUG_PATTERNS = """
SELECT id, category, pattern, description, solution, occurrences, severity, fingerprint, error_type, first_seen,
       last_seen, models, layers, solution_source, created_at, updated_at, count(*) OVER () AS total
FROM bug_patterns WHERE ($1::text IS NULL OR category = $1)
ORDER BY occurrences DESC, id LIMIT $2 OFFSET $3"""

REGRESSION_TESTS = """
SELECT id, test_name, category, description, test_code, expected_behavior, discovered_from, metadata, created_at,
       updated_at, count(*) OVER () AS total
FROM regression_tests WHERE ($1::text IS NULL OR category = $1)
ORDER BY id LIMIT $2 OFFSET $3"""

HEURISTICS = """
SELECT heuristic, count(*) OVER () AS total FROM routing_rules
WHERE heuristic IS NOT NULL AND ($1 = false OR active)
ORDER BY priority DESC, id LIMIT $2 OFFSET $3"""

COUNT = {
    "bug_patterns": "SELECT count(*) FROM bug_patterns WHERE ($1::text IS NULL OR category = $1)",
    "regression_tests": "SELECT count(*) FROM regression_tests WHERE ($1::text IS NULL OR category = $1)",
    "heuristics": "SELECT count(*) FROM routing_rules WHERE heuristic IS NOT NULL AND ($1 = false OR active)",
}

SAVE_TEST = """
INSERT INTO regression_tests (test_name, category, description, test_code, expected_behavior, discovered_from, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (test_name) DO UPDATE SET category = EXCLUDED.category, description = EXCLUDED.description,
    test_code = EXCLUDED.test_code, expected_behavior = EXCLUDED.expected_behavior,
    discovered_from = EXCLUDED.discovered_from, metadata = EXCLUDED.metadata, updated_at = now()
RETURNING id, (xmax = 0) AS created"""

LAST_LAYER = "SELECT layer FROM model_performance_minutes WHERE model_id = $1 ORDER BY minute DESC LIMIT 1"

_JSON_COLUMNS = ("models", "layers", "metadata")


def _row(record: asyncpg.Record) -> dict:
    row = {k: (orjson.loads(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in record.items()}
    row.pop("total", None)
    return row


async def _page(conn: asyncpg.Connection, query: str, count: str, arg, limit: int, offset: int) -> tuple[list, int]:
    records = await conn.fetch(query, arg, limit, offset)
    if records:
        return records, int(records[0]["total"])
    return [], int(await conn.fetchval(COUNT[count], arg))  # past the end: still say how many there are


async def bug_patterns(
    conn: asyncpg.Connection, category: str | None, limit: int, offset: int
) -> tuple[list[dict], int]:
    records, total = await _page(conn, BUG_PATTERNS, "bug_patterns", category, limit, offset)
    return [_row(r) for r in records], total


async def regression_tests(
    conn: asyncpg.Connection, category: str | None, limit: int, offset: int
) -> tuple[list[dict], int]:
    records, total = await _page(conn, REGRESSION_TESTS, "regression_tests", category, limit, offset)
    return [_row(r) for r in records], total


async def heuristics(conn: asyncpg.Connection, active_only: bool, limit: int, offset: int) -> tuple[list[dict], int]:
    records, total = await _page(conn, HEURISTICS, "heuristics", active_only, limit, offset)
    return [orjson.loads(r["heuristic"]) for r in records], total


async def save_test(
    conn: asyncpg.Connection,
    *,
    test_name: str,
    category: str,
    description: str,
    test_code: str,
    expected_behavior: str,
    discovered_from: str,
    metadata: dict,
) -> tuple[int, bool]:
    row = await conn.fetchrow(
        SAVE_TEST,
        test_name,
        category,
        description,
        test_code,
        expected_behavior,
        discovered_from,
        orjson.dumps(metadata).decode(),
    )
    return row["id"], row["created"]


async def last_layer(conn: asyncpg.Connection, model_id: str) -> str | None:
    return await conn.fetchval(LAST_LAYER, model_id)
