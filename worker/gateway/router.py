"""For Python routers: follow the heuristics topic and answer "which model for this request?".

The topic is compacted and keyed per rule, so reading it from the beginning gives the latest
version of every rule. The subscriber uses no consumer group (every router instance reads all
partitions), keeps the highest version per key, calls back on every change, and reconnects when
the broker goes away.

    table = RoutingTable()
    subscriber = HeuristicsSubscriber("127.0.0.1:9092", table, on_change=print)
    await subscriber.start()
    route = table.pick("coding", "implement a sorting algorithm", key=request_id, candidates=my_models)
    route.model, route.event_fields()  # the model, and what the call's events carry (experiments included)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from worker.experiments.contract import Experiment
from worker.gateway.table import Route, RoutingTable, choose_model, hash_unit
from worker.routing.contract import RoutingHeuristic
from worker.throttle import Throttle

__all__ = ["HeuristicsSubscriber", "Route", "RoutingTable", "choose_model", "hash_unit"]

log = logging.getLogger(__name__)


class HeuristicsSubscriber:
    def __init__(
        self,
        bootstrap_servers: str,
        table: RoutingTable,
        *,
        topic: str = "gateway.routing.heuristics",
        on_change: Callable[[RoutingHeuristic | Experiment], None] | None = None,
        **consumer_options: Any,
    ):
        """`consumer_options`: more AIOKafkaConsumer arguments (TLS: `security_protocol`, `ssl_context`; SASL)."""
        self.bootstrap_servers = bootstrap_servers
        self.consumer_options = consumer_options
        self.table = table
        self.topic = topic
        self.on_change = on_change
        self._task: asyncio.Task | None = None
        self.caught_up = asyncio.Event()
        self._refusals = Throttle()

    async def start(self) -> None:
        if self.table.verifier is None:
            log.warning(
                "heuristics subscriber: following routing records whoever wrote them; give the table the "
                "worker's public key (RoutingTable(public_keys=[...])) so that only the worker can steer this router"
            )
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        positions: dict[TopicPartition, int] = {}
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False, **self.consumer_options
            )
            try:
                await consumer.start()
                await self._follow(consumer, positions)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as error:
                log.warning("heuristics subscriber lost the broker (%s); reconnecting", error)
                await asyncio.sleep(1.0)
            finally:
                await consumer.stop()

    async def _follow(self, consumer: AIOKafkaConsumer, positions: dict[TopicPartition, int]) -> None:
        partitions = consumer.partitions_for_topic(self.topic)
        while not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await asyncio.sleep(1.0)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:  # resume where we were after a reconnect, else from the beginning
            if tp in positions:
                consumer.seek(tp, positions[tp])
            else:
                await consumer.seek_to_beginning(tp)
        ends = await consumer.end_offsets(tps)
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    positions[tp] = record.offset + 1
                    refused = self.table.refused
                    key = record.key.decode("utf-8", "replace") if record.key else ""
                    rule = self.table.apply(key, record.value, record.headers)
                    if self.table.refused > refused and self._refusals.ready():
                        log.warning(
                            "heuristics subscriber: skipped the record at %s:%d (%d skipped so far): %s",
                            tp.partition,
                            record.offset,
                            self.table.refused,
                            self.table.last_refusal,
                        )
                    if rule is not None and self.on_change is not None:
                        try:
                            self.on_change(rule)
                        except Exception:
                            log.exception("heuristics subscriber: on_change failed; the table is updated anyway")
            if not self.caught_up.is_set() and all(positions.get(tp, 0) >= ends[tp] for tp in tps):
                self.caught_up.set()
