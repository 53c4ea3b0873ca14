"""Stored consumer offsets: read on assignment (the truth on restart), re-anchored by an operator, and the
dedupe log's upkeep (it belongs to the same exactly-once bookkeeping)."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from worker.calls.batch import PartitionKey

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
DELETE FROM seen_events WHERE event_id IN (
    SELECT event_id FROM seen_events WHERE seen_at < now() - make_interval(secs => $1) LIMIT $2)"""


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


async def prune_seen(conn: asyncpg.Connection, window_s: int, batch_size: int = 50_000) -> int:
    """Forget event ids older than the dedupe window; returns how many were removed."""
    removed = 0
    while True:
        status = await conn.execute(PRUNE_SEEN, float(window_s), batch_size)
        count = int(status.split()[-1])
        removed += count
        if count < batch_size:
            return removed
