"""The simplest exact consumer we can write for the worker's core job: the benchmark's fair anchor.

Same guarantees as the worker's counting: offsets stored in the same transaction as the
aggregates they produced (and read back on start), dedupe by event_id, per (model, task type) and
per-minute aggregates with the same latency histogram, one write in flight while the next batch
is decoded. Nothing else: no dead letters, bug patterns, health buckets, redaction or metrics.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import asyncpg
import msgspec
import orjson
from aiokafka import AIOKafkaConsumer

from worker.calls import histogram
from worker.topics import partitions_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS minimal_offsets (topic text, partition int, next_offset int8, PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS minimal_seen (event_id uuid PRIMARY KEY);
CREATE TABLE IF NOT EXISTS minimal_models (model_id text, task_type text, calls int8, successes int8,
    latency_sum_ms float8, cost_sum_usd float8, histogram jsonb, PRIMARY KEY (model_id, task_type));
CREATE TABLE IF NOT EXISTS minimal_minutes (minute timestamptz, model_id text, task_type text, calls int8,
    successes int8, latency_sum_ms float8, cost_sum_usd float8, histogram jsonb,
    PRIMARY KEY (minute, model_id, task_type));
"""
SEEN = "INSERT INTO minimal_seen SELECT * FROM unnest($1::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id::text"
_SET = """calls = t.calls + EXCLUDED.calls, successes = t.successes + EXCLUDED.successes,
    latency_sum_ms = t.latency_sum_ms + EXCLUDED.latency_sum_ms, cost_sum_usd = t.cost_sum_usd + EXCLUDED.cost_sum_usd,
    histogram = hist_merge(t.histogram, EXCLUDED.histogram)"""
MODELS = f"""INSERT INTO minimal_models AS t SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[],
    $5::float8[], $6::float8[], $7::jsonb[]) ON CONFLICT (model_id, task_type) DO UPDATE SET {_SET}"""
MINUTES = f"""INSERT INTO minimal_minutes AS t SELECT to_timestamp(w), m, k, n, s, l, c, h FROM unnest($1::float8[],
    $2::text[], $3::text[], $4::int8[], $5::int8[], $6::float8[], $7::float8[], $8::jsonb[]) AS u(w, m, k, n, s, l, c, h)
    ON CONFLICT (minute, model_id, task_type) DO UPDATE SET {_SET}"""
OFFSETS = """INSERT INTO minimal_offsets AS t SELECT * FROM unnest($1::text[], $2::int[], $3::int8[])
    ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset"""


class Event(msgspec.Struct, gc=False):
    event_id: str
    occurred_at: dt.datetime
    model_id: str
    task_type: str
    latency_ms: float
    cost_usd: float = 0.0


DECODE = msgspec.json.Decoder(Event | list[Event])


def _aggregate(calls: list[tuple[str, float, str, str, bool, float, float]]):
    models: dict[tuple, list] = {}
    minutes: dict[tuple, list] = {}
    for _, at, model, task, ok, latency, cost in calls:
        bucket = histogram.bucket_of(latency)
        for table, key in ((models, (model, task)), (minutes, (int(at // 60) * 60, model, task))):
            row = table.get(key)
            if row is None:
                row = table[key] = [0, 0, 0.0, 0.0, {}]
            row[0] += 1
            row[1] += ok
            row[2] += latency
            row[3] += cost
            row[4][bucket] = row[4].get(bucket, 0) + 1
    return models, minutes


def _columns(table: dict, width: int) -> list[list]:
    cols: list[list] = [[] for _ in range(width)]
    for key, (n, s, lat, cost, hist) in sorted(table.items()):
        for col, value in zip(cols, (*key, n, s, lat, cost, orjson.dumps(histogram.to_json_keys(hist)).decode())):
            col.append(value)
    return cols


async def _write(pool: asyncpg.Pool, calls: list, offsets: dict[tuple[str, int], int]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        fresh = {r[0] for r in await conn.fetch(SEEN, [c[0] for c in calls])}
        if len(fresh) < len(calls):
            kept = []
            for c in calls:
                if c[0] in fresh:
                    fresh.discard(c[0])
                    kept.append(c)
            calls = kept
        models, minutes = _aggregate(calls)
        await conn.execute(MODELS, *_columns(models, 7))
        await conn.execute(MINUTES, *_columns(minutes, 8))
        parts = sorted(offsets)
        await conn.execute(OFFSETS, [t for t, _ in parts], [p for _, p in parts], [offsets[k] for k in parts])


async def run(bootstrap: str, dsn: str, topics: dict[str, str], messages: int, events: int, when_done=None) -> float:
    """Events/s from the first fetch to the last commit of `messages` messages; checks exactness.
    `when_done` is called after the last write, while the connections are still open (so that their
    server processes can still be measured)."""
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=2)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4_194_304
    )
    await consumer.start()
    try:
        async with pool.acquire() as conn:
            await conn.execute(SCHEMA)
            stored = {(r[0], r[1]): r[2] for r in await conn.fetch("SELECT * FROM minimal_offsets")}
        tps = await partitions_of(consumer, list(topics.values()))
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, stored.get((tp.topic, tp.partition), 0))
        ok_topic = topics["completed"]
        writing: asyncio.Future | None = None
        calls: list = []
        offsets: dict[tuple[str, int], int] = {}
        done = 0
        started = time.perf_counter()
        while done < messages or calls:
            fetched = await consumer.getmany(timeout_ms=100, max_records=5000) if done < messages else {}
            for tp, records in fetched.items():
                ok = tp.topic == ok_topic
                for record in records:
                    decoded = DECODE.decode(record.value)
                    for e in decoded if isinstance(decoded, list) else (decoded,):
                        calls.append(
                            (
                                e.event_id,
                                e.occurred_at.timestamp(),
                                e.model_id,
                                e.task_type,
                                ok,
                                e.latency_ms,
                                e.cost_usd,
                            )
                        )
                    offsets[(tp.topic, tp.partition)] = record.offset + 1
                    done += 1
            if calls and (len(calls) >= 5000 or done >= messages or not fetched):
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(_write(pool, calls, offsets))
                calls, offsets = [], {}
        if writing is not None:
            await writing
        seconds = time.perf_counter() - started
        async with pool.acquire() as conn:
            counted = await conn.fetchval("SELECT sum(calls) FROM minimal_models")
        assert counted == events, f"minimal consumer: {counted} counted, {events} produced"
        if when_done is not None:
            when_done()
        return events / seconds
    finally:
        await consumer.stop()
        await pool.close()
