"""Stored consumer offsets: read on assignment (the truth on restart), re-anchored by an operator, and the
dedupe log's upkeep (it belongs to the same exactly-once bookkeeping)."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from worker.calls.batch import PartitionKey
from worker.store.feedback import JOIN_EXCLUSIVE

UNSTORED = -1

CLAIM = """
INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
SELECT $1, t, p, -1 FROM unnest($2::text[], $3::int[]) AS u(t, p)
ON CONFLICT DO NOTHING"""

READ = """
SELECT topic, partition, next_offset FROM consumer_offsets
WHERE consumer_group = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))"""

REANCHOR = """
UPDATE consumer_offsets SET next_offset = u.o, updated_at = now()
FROM unnest($3::int[], $4::int8[]) AS u(p, o)
WHERE consumer_group = $1 AND topic = $2 AND partition = u.p
RETURNING partition, next_offset"""

PRUNE_SEEN = """
DELETE FROM seen_events WHERE event_id IN (SELECT event_id FROM seen_events WHERE keep_until < now() LIMIT $1)"""


async def stored_offsets(conn: asyncpg.Connection, group: str, tps: Iterable[PartitionKey]) -> dict[PartitionKey, int]:
    """Offsets to resume from; UNSTORED where nothing was ever written (a row is created for the fence)."""
    parts = sorted(tps)
    topics, partitions = [t for t, _ in parts], [p for _, p in parts]
    await conn.execute(CLAIM, group, topics, partitions)
    rows = await conn.fetch(READ, group, topics, partitions)
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def reanchor(conn: asyncpg.Connection, group: str, topic: str, offsets: dict[int, int]) -> dict[int, int]:
    """Set the stored offsets of `topic`'s partitions (operator's command after a topic was recreated)."""
    parts = sorted(offsets)
    rows = await conn.fetch(REANCHOR, group, topic, parts, [offsets[p] for p in parts])
    return {r["partition"]: r["next_offset"] for r in rows}


async def prune_seen(conn: asyncpg.Connection, batch_size: int = 50_000) -> int:
    """Forget the events past their keep_until (the dedupe window, and for calls the feedback window);
    returns how many were removed. A call is forgotten under the feedback join's exclusive lock, never
    between a flush's read of a call and of its scores (worker/store/feedback.py)."""
    removed = 0
    while True:
        async with conn.transaction():
            await conn.execute(JOIN_EXCLUSIVE)
            count = int((await conn.execute(PRUNE_SEEN, batch_size)).split()[-1])
        removed += count
        if count < batch_size:
            return removed
