"""The notification outbox: rows written with their cause, taken by the leader's sender."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from worker.notifications.webhook import Notification

ENQUEUE = """
INSERT INTO notification_outbox (dedupe_key, notification)
SELECT * FROM unnest($1::text[], $2::jsonb[]) ON CONFLICT (dedupe_key) DO NOTHING"""
# Rows locked while they are sent: another leader (for a moment, during a rebalance) skips them.
DUE = """
SELECT id, notification::text AS notification, attempts FROM notification_outbox
WHERE sent_at IS NULL AND next_attempt_at <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"""
SENT = "UPDATE notification_outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1"
FAILED = """
UPDATE notification_outbox SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2),
    last_error = $3 WHERE id = $1"""
SENT_LATELY = "SELECT count(*) FROM notification_outbox WHERE sent_at > now() - interval '1 minute'"
WAITING = "SELECT count(*) FROM notification_outbox WHERE sent_at IS NULL"
PRUNE = "DELETE FROM notification_outbox WHERE sent_at < now() - make_interval(secs => $1)"
DISCARD = "DELETE FROM notification_outbox WHERE sent_at IS NULL"


async def enqueue(conn: asyncpg.Connection, notifications: Iterable[Notification]) -> None:
    found = list(notifications)
    if found:
        await conn.execute(ENQUEUE, [n.key for n in found], [n.as_json() for n in found])


async def due(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(DUE, limit)


async def sent(conn: asyncpg.Connection, row_id: int) -> None:
    await conn.execute(SENT, row_id)


async def failed(conn: asyncpg.Connection, row_id: int, retry_in_s: float, error: str) -> None:
    await conn.execute(FAILED, row_id, retry_in_s, error[:500])


async def sent_lately(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(SENT_LATELY))


async def waiting(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(WAITING))


async def prune(conn: asyncpg.Connection, keep_s: float) -> int:
    return int((await conn.execute(PRUNE, keep_s)).split()[-1])


async def discard(conn: asyncpg.Connection) -> int:
    """No webhook configured: what waits is dropped (the alerts topic and /metrics still tell)."""
    return int((await conn.execute(DISCARD)).split()[-1])
