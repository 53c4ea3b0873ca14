"""The ingest pipeline: fetch record batches, decode, flush exactly once into PostgreSQL.

Three roles, one file each: this one consumes (fetch, decode into the open batch, partition
positions through worker/pipeline/positions.py, rebalances, readiness); worker/pipeline/writer.py
writes (write-behind, collect, recover, fencing); worker/pipeline/dead_letters.py produces every
dead letter.

Runs as a service inside the Faust app but drives its own aiokafka consumer: the offsets that
matter are the ones stored in PostgreSQL with the aggregates (see worker/store/flush.py), and
Faust's own commit and seek bookkeeping would fight them. Kafka commits are only a hint here,
kept up to date so that consumer-group lag is visible to operators and autoscalers.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import mode
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from worker import metrics
from worker.calls import batch as batching
from worker.calls.decode import Limits
from worker.calls.events import EventKind
from worker.kafka_client import client_options
from worker.pipeline.dead_letters import DeadLetters
from worker.pipeline.positions import Positions
from worker.pipeline.stats import IngestStats
from worker.pipeline.writer import STALL_S, Writer
from worker.settings import Settings
from worker.topics import refresh_metadata

log = logging.getLogger(__name__)

METADATA_MAX_AGE_MS = 15_000  # a recreated topic (or new partitions) is seen within 15 s, not aiokafka's 5 min
YIELD_EVERY = 500  # events decoded between two turns of the event loop
BROKER_PROBE_S = 5.0
FIRST_GUESS_EVENTS_PER_RECORD = 100.0  # envelopes' size until the first fetch tells: the first batch stays bounded


class _Rebalance(ConsumerRebalanceListener):
    """aiokafka's rebalance callbacks, handed to the processor that owns the batch and the positions."""

    def __init__(self, ingest: Ingest):
        self.ingest = ingest

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.ingest.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.ingest.positions.assigned(assigned)


class Ingest(mode.Service):
    def __init__(self, settings: Settings, pool: asyncpg.Pool, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.pool = pool
        self.kinds = {topic: EventKind(kind) for topic, kind in settings.consumed_topics.items()}
        self.limits = Limits(
            settings.max_message_bytes,
            settings.max_events_per_envelope,
            settings.max_nesting_depth,
            settings.event_max_ahead_s,
        )
        self.stats = IngestStats()
        self.lock = asyncio.Lock()  # held by whoever touches the open batch: the loop, a rebalance, the stop
        self.consumer: AIOKafkaConsumer | None = None
        self.positions = Positions(settings, pool)  # reaches the consumer once it is created
        self.dead_letters = DeadLetters(settings, pool)
        self.writer = Writer(settings, pool, self.positions, self.stats, self.dead_letters)
        self.loop_exited = asyncio.Event()
        self.consuming = False  # the consumer joined its group and the consume loop runs
        self.broker_reachable = True
        self.events_per_record = FIRST_GUESS_EVENTS_PER_RECORD
        # records fetched past a full batch, per partition, read first by the next step; dropped when the
        # partition goes pending (it is then seeked to its stored offset), and skipped like any record
        # of a partition without an expected offset (revoked)
        self.carried: dict[TopicPartition, list] = {}

    @property
    def ready(self) -> bool:
        return not self.not_ready_because()

    def not_ready_because(self) -> list[str]:
        """Why this pod should get no traffic now (empty: ready). Each reason is one an operator can act on."""
        reasons = []
        if not self.consuming or self.should_stop or self.positions is None:
            return ["not consuming"]
        if not self.positions.settled:
            reasons.append("partitions waiting for their stored offsets")
        if self.positions.ahead:
            reasons.append(
                f"{len(self.positions.ahead)} partitions stored past the log's end (topic recreated?): "
                "run 'telemetry-worker offsets reanchor'"
            )
        if self.writer.backoff.active:
            reasons.append(f"flush failing ({self.writer.backoff.failures} attempts)")
        if self.writer.stalled:
            reasons.append(f"a flush has been in flight for more than {STALL_S:.0f} s")
        if not self.broker_reachable:
            reasons.append("the Kafka broker does not answer")
        return reasons

    def readiness(self) -> dict:
        """What /readyz shows of ingestion: whether to send this pod traffic, and why not."""
        return {
            "not_ready_because": self.not_ready_because(),
            "partitions_offset_ahead": self.positions.ahead_report(),
            "failed_flush_attempts": self.writer.backoff.failures,
            "partitions_waiting_for_offsets": len(self.positions.pending),
            "stats": self.stats.summary(),
        }

    async def on_start(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            **client_options(s),
            group_id=s.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset=s.start_offset_when_unstored,
            isolation_level=s.isolation_level,
            max_partition_fetch_bytes=max(1_048_576, s.max_message_bytes + 65_536),
            session_timeout_ms=int(s.kafka_session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, s.kafka_session_timeout_s / 3) * 1000),
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        self.positions.consumer = self.consumer
        await self.dead_letters.start()
        self.consumer.subscribe(list(self.kinds), listener=_Rebalance(self))
        await self.consumer.start()
        self.consuming = True
        log.info("ingest started: group=%s topics=%s", s.consumer_group, ", ".join(self.kinds))

    async def on_stop(self) -> None:
        try:  # let the step in progress finish, so that nothing is read after the final flush
            await asyncio.wait_for(self.loop_exited.wait(), self.settings.flush_timeout_s + 5)
        except TimeoutError:
            log.warning("consume loop did not stop in time; flushing what it has")
        async with self.lock:
            if self.writer.unwritten:
                log.info("final flush of %d events before stopping", self.writer.batch.size)
                await self.writer.flush(timeout=self.settings.revoke_flush_timeout_s)
        if self.consumer is not None:
            await self.consumer.stop()
        await self.dead_letters.stop()
        log.info("ingest stopped: %s", self.stats.summary())

    @mode.Service.task
    async def _consume_forever(self) -> None:
        try:
            while not self.should_stop:
                try:
                    await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception:  # never let one bad step end consumption; it is retried
                    log.exception("ingest step failed; retrying in 1 s")
                    await asyncio.sleep(1.0)
        finally:
            self.loop_exited.set()

    @mode.Service.task
    async def _probe_broker(self) -> None:
        """Fetching is silent while the broker is away (getmany returns nothing): ask it for metadata."""
        while not self.should_stop:
            await asyncio.sleep(BROKER_PROBE_S)
            if self.consumer is None:
                continue
            try:  # metadata of the subscribed topics only: the whole cluster's can be large (0.3 s to decode here)
                reachable = await asyncio.wait_for(refresh_metadata(self.consumer), BROKER_PROBE_S)
            except Exception:  # noqa: BLE001 - any failure means: not answering
                reachable = False
            if reachable != self.broker_reachable:
                (log.info if reachable else log.warning)(
                    "Kafka broker %s", "answers again" if reachable else "does not answer metadata requests"
                )
            self.broker_reachable = reachable

    async def step(self) -> None:
        assert self.consumer is not None and self.positions is not None
        self.positions.recheck_ahead()
        if self.positions.pending:
            for tp in self.positions.pending:  # assigned, fenced or held: seeked to the stored offset, read from there
                self.carried.pop(tp, None)
            async with self.lock:
                self.stats.lost_to_retention += await self.positions.settle(resume=not self.writer.backoff.active)
        writer = self.writer
        if writer.backoff.active:
            # Partitions are paused, but the poll keeps this consumer in its group. Whatever a poll
            # returns is kept: dropping it would move the fetch position past uncounted events.
            records = await self.consumer.getmany(timeout_ms=writer.backoff.wait_ms(time.monotonic()), max_records=1000)
            async with self.lock:
                await self._accumulate_all(records)
                if writer.batch and writer.backoff.due(time.monotonic()):
                    await writer.flush(timeout=self.settings.flush_timeout_s)
            return
        # getmany counts records, a batch counts events: ask for as many records as leave room for the
        # events they are likely to carry, so that FLUSH_MAX_EVENTS bounds a batch with envelopes too
        if self.carried:  # what a full batch left over comes first; nothing more is fetched meanwhile
            records, self.carried = self.carried, {}
        else:
            room = max(1, int((self.settings.flush_max_events - writer.batch.size) / self.events_per_record))
            records = await self.consumer.getmany(
                timeout_ms=min(200, self.settings.flush_interval_ms), max_records=room
            )
        async with self.lock:
            await self._accumulate_all(records)
            if writer.writing is not None and writer.writing[1].done():
                await writer.collect_or_recover(self.settings.flush_timeout_s)
            if batching.is_due(
                writer.batch, time.monotonic(), self.settings.flush_max_events, self.settings.flush_interval_ms / 1000
            ):
                await writer.write_behind(timeout=self.settings.flush_timeout_s)

    async def _accumulate_all(self, records) -> None:
        size, messages = self.writer.batch.size, self.writer.batch.messages
        for tp, partition_records in records.items():
            await self._accumulate(tp, partition_records)
        read = self.writer.batch.messages - messages
        if read > 0:  # a moving average of the events per record, for the next fetch's size
            self.events_per_record = (self.events_per_record + max(1.0, (self.writer.batch.size - size) / read)) / 2

    async def _accumulate(self, tp: TopicPartition, messages) -> None:
        """Decode into the open batch, letting the loop breathe every YIELD_EVERY events (health checks,
        heartbeats); the lock stays held, so nothing else touches the batch meanwhile."""
        key = (tp.topic, tp.partition)
        expected = self.positions.expected.get(key)
        if expected is None:  # revoked or not yet positioned: it will be read again from the stored offset
            return
        if messages and 0 <= messages[0].offset < expected:  # a seek lands at `expected`: the log was reset under us
            self.positions.reset_under_us(tp, expected, messages[0].offset)
            return
        floor = self.writer.floor(key) or expected
        kind, s = self.kinds[tp.topic], self.settings
        batch = self.writer.batch  # the lock is held: nothing seals it meanwhile
        since_yield = batch.size
        for message in messages:
            if message.offset < floor:
                continue  # already stored
            if batch.size >= s.flush_max_events:
                # full: the rest waits for the next batch, so that a batch holds at most
                # FLUSH_MAX_EVENTS + one envelope, however many events the fetched records carry
                self.carried[tp] = [m for m in messages if m.offset >= message.offset]
                return
            batching.accumulate(batch, message, kind, self.limits, s.dlq_max_value_bytes)
            if batch.size - since_yield >= YIELD_EVERY:
                await asyncio.sleep(0)
                since_yield = batch.size

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Flush before the partitions go (bounded in time), or hand the batch back unwritten: the next
        owner reads it again from the stored offsets."""
        async with self.lock:
            if self.writer.unwritten:
                flushed = await self.writer.flush(timeout=self.settings.revoke_flush_timeout_s)
                if not flushed:
                    log.warning(
                        "rebalance: %d unwritten events handed back; they will be read again", self.writer.batch.size
                    )
            self.writer.drop()
            self.positions.forget(revoked)

    def update_lag(self) -> None:
        """Per assigned partition: the broker's high watermark minus the offset stored with the aggregates."""
        metrics.CONSUMER_LAG.clear()
        if self.consumer is None or self.positions is None:
            return
        for tp in self.consumer.assignment():
            high, stored = self.consumer.highwater(tp), self.positions.expected.get((tp.topic, tp.partition))
            if high is not None and stored is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - max(stored, 0)))
