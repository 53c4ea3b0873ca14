"""The model catalogue: models declared for routing, and those seen in events lately."""

from __future__ import annotations

import asyncpg

from worker.routing.evidence import ANY_TASK

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
