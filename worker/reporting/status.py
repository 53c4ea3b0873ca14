"""Consumer lag per partition, measured as Kafka's end offset minus the offset stored in PostgreSQL
(the offset that counts), when each partition was last flushed, and the routing rules' versions."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from worker.kafka_client import client_options
from worker.settings import Settings
from worker.store import reports as reads
from worker.store.db import connect
from worker.topics import partitions_of


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    stored: int | None  # None: never flushed
    end: int
    last_flush: str | None

    @property
    def lag(self) -> int:
        return self.end - max(self.stored or 0, 0)


async def partition_lags(settings: Settings) -> list[PartitionLag]:
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        tps = await partitions_of(consumer, tuple(settings.consumed_topics))
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    async with connect(settings.database_url) as conn:
        rows = {(r["topic"], r["partition"]): r for r in await reads.stored_positions(conn, settings.consumer_group)}
    lags = []
    for tp in tps:
        row = rows.get((tp.topic, tp.partition))
        stored = row["next_offset"] if row and row["next_offset"] >= 0 else None
        last = row["updated_at"].isoformat(timespec="seconds") if row and stored is not None else None
        lags.append(PartitionLag(tp.topic, tp.partition, stored, ends[tp], last))
    return lags


async def heuristic_versions(settings: Settings) -> list[dict]:
    async with connect(settings.database_url) as conn:
        return [dict(r) for r in await reads.rule_versions(conn)]


def render_heuristics(rules: list[dict], console: Console) -> None:
    if not rules:
        console.print("no routing heuristics yet")
        return
    table = Table(title="Routing heuristics", title_justify="left")
    for name in ("rule", "version", "published", "active", "changed"):
        table.add_column(name, justify="right" if name in ("version", "published") else "left")
    for r in rules:
        table.add_row(
            r["rule"],
            str(r["version"]),
            str(r["published_version"]),
            "yes" if r["active"] else "no",
            r["updated_at"].isoformat(timespec="seconds"),
        )
    console.print(table)


async def wait_until_caught_up(settings: Settings, timeout_s: float, console: Console) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        total = sum(p.lag for p in await partition_lags(settings))
        if total == 0:
            return True
        if time.monotonic() > deadline:
            return False
        console.print(f"waiting for the worker: {total:,} messages not yet flushed")
        await asyncio.sleep(1.0)


def render(lags: list[PartitionLag], console: Console) -> None:
    table = Table(title="Ingest lag (Kafka end offset - offset stored with the aggregates)", title_justify="left")
    for name in ("topic", "partition", "stored offset", "end offset", "lag", "last flush"):
        table.add_column(name, justify="left" if name in ("topic", "last flush") else "right")
    for p in lags:
        table.add_row(
            p.topic,
            str(p.partition),
            "-" if p.stored is None else f"{p.stored:,}",
            f"{p.end:,}",
            f"{p.lag:,}",
            p.last_flush or "never",
        )
    console.print(table)
    console.print(f"total lag: {sum(p.lag for p in lags):,} messages")
