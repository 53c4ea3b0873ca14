"""Breakers: each model's state per scope (closed, open, half-open), and the health rows they are judged on."""

from __future__ import annotations

import asyncpg

from worker.routing.breaker import Breaker

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
