"""The ingest pipeline: fetch record batches, decode, flush exactly once into PostgreSQL.

Runs as a service inside the Faust app but drives its own aiokafka consumer: the offsets that
matter are the ones stored in PostgreSQL with the aggregates (see worker/store/flush.py), and
Faust's own commit and seek bookkeeping would fight them. Kafka commits are only a hint here,
kept up to date so that consumer-group lag is visible to operators and autoscalers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import asyncpg
import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from worker import metrics
from worker.calls import batch as batching
from worker.calls import flush_plan
from worker.calls.dead_letters import headers
from worker.calls.decode import Limits, Rejection
from worker.calls.events import EventKind
from worker.kafka_client import client_options
from worker.pipeline.positions import Positions
from worker.pipeline.retry import Backoff, Verdict, classify
from worker.pipeline.stats import IngestStats
from worker.settings import Settings
from worker.store.feedback import FeedbackLimits, drain_outbox
from worker.store.flush import FlushOutcome, refused_calls, write_flush
from worker.topics import refresh_metadata

log = logging.getLogger(__name__)

METADATA_MAX_AGE_MS = 15_000  # a recreated topic (or new partitions) is seen within 15 s, not aiokafka's 5 min
YIELD_EVERY = 500  # events decoded between two turns of the event loop
STALL_S = 10.0  # a flush in flight for longer makes the pod not ready
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
        self.feedback_limits = FeedbackLimits(
            settings.feedback_window_s,
            settings.feedback_max_names,
            settings.feedback_max_updates,
            settings.feedback_pending_max,
            settings.topic_calls_feedback,
        )
        self.stats = IngestStats()
        self.lock = asyncio.Lock()
        self.batch = batching.initial(time.monotonic())
        self.backoff = Backoff(settings.retry_backoff_max_s)  # active: a flush failed and is retried later
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.positions = Positions(settings, pool)  # reaches the consumer once it is created
        self.writing: tuple[batching.Batch, asyncio.Future] | None = None  # the batch being written, and its write
        self.hints: dict[tuple[str, int], int] = {}  # stored offsets not yet committed to Kafka (a lag hint)
        self.loop_exited = asyncio.Event()
        self.consuming = False  # the consumer joined its group and the consume loop runs
        self.writing_since = 0.0
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
        if self.backoff.active:
            reasons.append(f"flush failing ({self.backoff.failures} attempts)")
        if self.writing is not None and time.monotonic() - self.writing_since > STALL_S:
            reasons.append(f"a flush has been in flight for more than {STALL_S:.0f} s")
        if not self.broker_reachable:
            reasons.append("the Kafka broker does not answer")
        return reasons

    async def on_start(self) -> None:
        s = self.settings
        self.producer = AIOKafkaProducer(
            **client_options(s),
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=max(1_048_576, s.dlq_max_value_bytes + 65_536),
        )
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
        await self.producer.start()
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
            if self.unwritten:
                log.info("final flush of %d events before stopping", self.batch.items)
                await self.flush(timeout=self.settings.revoke_flush_timeout_s)
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
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
                self.stats.lost_to_retention += await self.positions.settle(resume=not self.backoff.active)
        if self.backoff.active:
            # Partitions are paused, but the poll keeps this consumer in its group. Whatever a poll
            # returns is kept: dropping it would move the fetch position past uncounted events.
            records = await self.consumer.getmany(timeout_ms=self.backoff.wait_ms(time.monotonic()), max_records=1000)
            async with self.lock:
                await self._accumulate_all(records)
                if self.batch and self.backoff.due(time.monotonic()):
                    await self.flush(timeout=self.settings.flush_timeout_s)
            return
        # getmany counts records, a batch counts events: ask for as many records as leave room for the
        # events they are likely to carry, so that FLUSH_MAX_EVENTS bounds a batch with envelopes too
        if self.carried:  # what a full batch left over comes first; nothing more is fetched meanwhile
            records, self.carried = self.carried, {}
        else:
            room = max(1, int((self.settings.flush_max_events - self.batch.items) / self.events_per_record))
            records = await self.consumer.getmany(
                timeout_ms=min(200, self.settings.flush_interval_ms), max_records=room
            )
        async with self.lock:
            await self._accumulate_all(records)
            if self.writing is not None and self.writing[1].done():
                await self._collect_or_recover(self.settings.flush_timeout_s)
            if batching.is_due(
                self.batch, time.monotonic(), self.settings.flush_max_events, self.settings.flush_interval_ms / 1000
            ):
                await self._write_behind(timeout=self.settings.flush_timeout_s)

    async def _accumulate_all(self, records) -> None:
        items, messages = self.batch.items, self.batch.messages
        for tp, partition_records in records.items():
            await self._accumulate(tp, partition_records)
        read = self.batch.messages - messages
        if read > 0:  # a moving average of the events per record, for the next fetch's size
            self.events_per_record = (self.events_per_record + max(1.0, (self.batch.items - items) / read)) / 2

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
        floor = self.batch.next_offsets.get(key) or (self.writing and self.writing[0].next_offsets.get(key)) or expected
        kind, s = self.kinds[tp.topic], self.settings
        since_yield = self.batch.items
        for message in messages:
            if message.offset < floor:
                continue  # already stored
            if self.batch.items >= s.flush_max_events:
                # full: the rest waits for the next batch, so that a batch holds at most
                # FLUSH_MAX_EVENTS + one envelope, however many events the fetched records carry
                self.carried[tp] = [m for m in messages if m.offset >= message.offset]
                return
            batching.accumulate(self.batch, message, kind, self.limits, s.dlq_max_value_bytes)
            if self.batch.items - since_yield >= YIELD_EVERY:
                await asyncio.sleep(0)
                since_yield = self.batch.items

    @property
    def unwritten(self) -> bool:
        return bool(self.batch) or self.writing is not None

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Flush before the partitions go (bounded in time), or hand the batch back unwritten: the next
        owner reads it again from the stored offsets."""
        async with self.lock:
            if self.unwritten:
                flushed = await self.flush(timeout=self.settings.revoke_flush_timeout_s)
                if not flushed:
                    log.warning("rebalance: %d unwritten events handed back; they will be read again", self.batch.items)
            self.batch = batching.initial(time.monotonic())
            self.backoff.reset()
            self.positions.forget(revoked)

    async def _write_behind(self, timeout: float) -> None:
        """Seal the open batch and write it in the background, so that the next one is decoded while
        PostgreSQL works. Writes stay sequential: one in flight, each started after the previous one
        was accounted for, so every write is fenced against the offsets its predecessor stored."""
        if self.writing is not None and not await self._collect_or_recover(timeout):
            return
        if self.backoff.active or not self.batch:
            return
        sealed, self.batch = self.batch, batching.initial(time.monotonic())
        self.writing = (sealed, asyncio.ensure_future(self._write(sealed, timeout)))
        self.writing_since = time.monotonic()

    async def _collect_or_recover(self, timeout: float) -> bool:
        error = await self._collect()
        if error is not None:
            return await self._recover(error, timeout)
        await self._commit_hints()
        return True

    async def _collect(self) -> BaseException | None:
        """Account for the write in flight. On failure its batch goes back in front of the open one
        (its offsets precede) and the error is returned for the caller to handle."""
        if self.writing is None:
            return None
        sealed, task = self.writing
        error: BaseException | None = None
        try:  # shielded: if this waiter is cancelled, the write goes on and is collected later
            outcome, seconds = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                raise
            error = KafkaError("write cancelled")
        except Exception as failure:  # noqa: BLE001 - every failure is handled by the caller
            error = failure
        self.writing = None
        if error is not None:
            self.batch = batching.merged(sealed, self.batch)
            return error
        self._written(sealed, outcome, seconds)
        return None

    async def _write(self, current: batching.Batch, timeout: float) -> tuple[FlushOutcome, float]:
        started = time.monotonic()
        if len(current.dead_letters) > current.dead_letters_sent:
            await asyncio.wait_for(self._send_dead_letters(current), timeout)
        # planned in a thread: a batch of thousands of distinct ids takes tenths of a second to aggregate,
        # and health checks, heartbeats and tools must not wait behind it (nor the transaction's locks)
        plan = await asyncio.to_thread(flush_plan.plan, current.calls, time.time())
        async with self.pool.acquire(timeout=timeout) as conn:
            outcome = await asyncio.wait_for(write_flush(conn, plan, **self._flush_arguments(current)), timeout)
        return outcome, time.monotonic() - started

    def _written(self, current: batching.Batch, outcome: FlushOutcome, seconds: float) -> None:
        self.positions.advance(current.next_offsets)
        self.stats.record_flush(current, outcome, seconds)
        self.hints.update(current.next_offsets)

    async def flush(self, timeout: float) -> bool:
        """Write everything unwritten now (the write in flight, then the open batch); on success
        advance positions. Call with the lock held."""
        error = await self._collect()
        if error is not None and classify(error) is Verdict.fenced:
            return await self._recover(error, timeout)
        # any other failure: its batch is now in front of the open one, which is written right away
        if not self.batch:
            await self._commit_hints()
            return error is None
        error = await self._write_open(timeout)
        return True if error is None else await self._recover(error, timeout)

    async def _write_open(self, timeout: float) -> BaseException | None:
        """Write the open batch now; on success account for it and leave any back-off."""
        current = self.batch
        try:
            outcome, seconds = await self._write(current, timeout)
        except Exception as failure:  # noqa: BLE001 - judged by the caller
            return failure
        self._written(current, outcome, seconds)
        self.batch = batching.initial(time.monotonic())
        if self.backoff.active:
            log.info("flush succeeded after %d failed attempts; consumption resumed", self.backoff.failures)
        self.backoff.reset()
        self.positions.resume_all()
        await self._commit_hints()
        return None

    async def _recover(self, error: BaseException, timeout: float) -> bool:
        """A write of `self.batch` (merged with the write in flight, if that one failed) failed: act on
        the verdict. Refused values are set aside and the rest written at once, as often as needed."""
        while True:
            verdict = classify(error)
            if verdict is Verdict.fenced:
                self._discard_fenced(error)
                return False
            if verdict is Verdict.transient:
                self._retry_later(f"flush of {self.batch.items} events failed ({type(error).__name__}: {error})")
                return False
            if verdict is Verdict.fatal:
                raise error
            if not await self._set_aside_refused(error, timeout):
                return False
            next_error = await self._write_open(timeout)
            if next_error is None:
                return True
            error = next_error

    def _discard_fenced(self, error: BaseException) -> None:
        log.warning("flush discarded, another consumer moved on: %s", error)
        self.stats.fenced += 1
        metrics.FENCED.inc()
        self.batch = batching.initial(time.monotonic())
        # what was being retried is gone with the batch; the stored offsets are read again and the
        # partitions resume from them (left active, the back-off kept them paused for good)
        self.backoff.reset()
        self.positions.reposition_all()

    async def _commit_hints(self) -> None:
        hints, self.hints = self.hints, {}
        if hints:
            await self.positions.commit_hint(hints)

    def update_lag(self) -> None:
        """Per assigned partition: the broker's high watermark minus the offset stored with the aggregates."""
        metrics.CONSUMER_LAG.clear()
        if self.consumer is None or self.positions is None:
            return
        for tp in self.consumer.assignment():
            high, stored = self.consumer.highwater(tp), self.positions.expected.get((tp.topic, tp.partition))
            if high is not None and stored is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - max(stored, 0)))

    def _retry_later(self, why: str) -> None:
        """Back off exponentially with consumption paused, so that memory stays bounded while we wait."""
        delay = self.backoff.failed(time.monotonic())
        self.positions.pause_all()
        self.stats.flush_errors += 1
        metrics.FLUSH_ERRORS.inc()
        log.warning("%s; retry %d in %.1f s, consumption paused", why, self.backoff.failures, delay)

    def _flush_arguments(self, current: batching.Batch) -> dict:
        return dict(
            group=self.settings.consumer_group,
            expected=self.positions.expected,
            next_offsets=current.next_offsets,
            dead_letters=len(current.dead_letters),
            pattern_window_s=self.settings.pattern_window_s,
            patterns_max_new_per_hour=self.settings.patterns_max_new_per_hour,
            feedback=self.feedback_limits,
        )

    async def _set_aside_refused(self, error: BaseException, timeout: float) -> bool:
        """The database refused values it should not have been offered: dead-letter those events and
        keep the rest in the open batch. False when they cannot be isolated (then: retry later).

        Validation is meant to stop such values first (NUL characters, out-of-range numbers); this is
        the safety net that keeps one unforeseen value from blocking every partition behind it.
        """
        current = self.batch
        log.error(
            "the database refused part of a batch (%s: %s); isolating the events it refuses",
            type(error).__name__,
            error,
        )
        try:
            async with self.pool.acquire(timeout=timeout) as conn:
                refused = await asyncio.wait_for(
                    refused_calls(conn, calls=current.calls, now=time.time(), **self._flush_arguments(current)),
                    timeout * 4,
                )
        except Exception as lookup_error:
            if classify(lookup_error) not in (Verdict.transient, Verdict.refused):
                raise
            self._retry_later(f"could not isolate the refused events yet ({lookup_error})")
            return False
        if not refused:
            self._retry_later("the refusal does not come from single events; treating it as transient")
            return False
        refused_ids = {id(c) for c in refused}
        current.calls = [c for c in current.calls if id(c) not in refused_ids]
        current.dead_letters.extend(batching.refused_letter(call, str(error)) for call in refused)
        log.error(
            "dead-lettered %d events the database refused; writing the other %d", len(refused), len(current.calls)
        )
        return True

    async def _send_dead_letters(self, current: batching.Batch) -> None:
        assert self.producer is not None
        now = dt.datetime.now(dt.UTC).isoformat()
        pending = current.dead_letters[current.dead_letters_sent :]
        sends = [
            await self.producer.send(
                self.settings.topic_dlq,
                value=letter.value,
                key=letter.key,
                headers=headers(letter, self.settings.consumer_group, now),
            )
            for letter in pending
        ]
        await asyncio.gather(*sends)
        current.dead_letters_sent = len(current.dead_letters)

    async def drain_outbox(self) -> int:
        """Produce the dead letters that flushes decided inside their transactions (feedback refused after
        the join, or never joined); each pod takes rows the others have not locked."""
        if self.producer is None:
            return 0
        producer = self.producer

        async def send(rows) -> None:
            now = dt.datetime.now(dt.UTC).isoformat()
            sends = []
            for row in rows:
                letter = batching.DeadLetter(
                    row["source_topic"], -1, -1, None, bytes(row["value"]), Rejection(row["reason"], row["detail"])
                )
                sends.append(
                    await producer.send(
                        self.settings.topic_dlq,
                        value=letter.value,
                        headers=headers(letter, self.settings.consumer_group, now),
                    )
                )
                metrics.FEEDBACK_DEAD_LETTERS.labels(row["reason"]).inc()
            await asyncio.gather(*sends)

        drained = 0
        async with self.pool.acquire() as conn:
            while (sent := await drain_outbox(conn, send)) > 0:
                drained += sent
        return drained
