"""The write side of ingest: the open batch, the one write in flight behind it, and what a failed
write's verdict (worker/pipeline/retry.py) does.

Write-behind: a due batch is sealed and written in the background while the next one is decoded.
Writes stay sequential: one in flight, each started after the previous one was accounted for, so
every write is fenced against the offsets its predecessor stored. A failed write's batch goes back
in front of the open one (its offsets precede); then a fenced batch is dropped and its partitions
read again from the stored offsets, a transient failure backs off with consumption paused, and
values the database refuses are set aside as dead letters and the rest written at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
from aiokafka.errors import KafkaError

from worker import metrics
from worker.calls import batch as batching
from worker.flush import plan as flush_plan
from worker.pipeline.dead_letters import DeadLetters
from worker.pipeline.positions import Positions
from worker.pipeline.retry import Backoff, Verdict, classify
from worker.pipeline.stats import IngestStats
from worker.settings import Settings
from worker.store.feedback import FeedbackLimits
from worker.store.flush import FlushOutcome, refused_calls, write_flush

log = logging.getLogger(__name__)

STALL_S = 10.0  # a flush in flight for longer makes the pod not ready


class Writer:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        positions: Positions,
        stats: IngestStats,
        dead_letters: DeadLetters,
    ):
        self.settings = settings
        self.pool = pool
        self.positions = positions
        self.stats = stats
        self.dead_letters = dead_letters
        self.feedback_limits = FeedbackLimits(
            settings.feedback_window_s,
            settings.feedback_max_names,
            settings.feedback_max_updates,
            settings.feedback_pending_max,
            settings.topic_calls_feedback,
        )
        self.batch = batching.initial(time.monotonic())  # the open batch, which the consumer fills
        self.backoff = Backoff(settings.retry_backoff_max_s)  # active: a flush failed and is retried later
        self.writing: tuple[batching.Batch, asyncio.Future] | None = None  # the batch being written, and its write
        self.writing_since = 0.0
        self.hints: dict[tuple[str, int], int] = {}  # stored offsets not yet committed to Kafka (a lag hint)

    @property
    def unwritten(self) -> bool:
        return bool(self.batch) or self.writing is not None

    @property
    def stalled(self) -> bool:
        return self.writing is not None and time.monotonic() - self.writing_since > STALL_S

    def floor(self, key: tuple[str, int]) -> int | None:
        """The next offset of a partition that the open batch or the write in flight already holds."""
        return self.batch.next_offsets.get(key) or (self.writing and self.writing[0].next_offsets.get(key)) or None

    def drop(self) -> None:
        """Forget the open batch and any back-off: its partitions are read again from the stored offsets."""
        self.batch = batching.initial(time.monotonic())
        self.backoff.reset()

    async def write_behind(self, timeout: float) -> None:
        """Seal the open batch and write it in the background, once the write in flight is accounted for."""
        if self.writing is not None and not await self.collect_or_recover(timeout):
            return
        if self.backoff.active or not self.batch:
            return
        sealed, self.batch = self.batch, batching.initial(time.monotonic())
        self.writing = (sealed, asyncio.ensure_future(self._write(sealed, timeout)))
        self.writing_since = time.monotonic()

    async def collect_or_recover(self, timeout: float) -> bool:
        error = await self._collect()
        if error is not None:
            return await self._recover(error, timeout)
        await self._commit_hints()
        return True

    async def flush(self, timeout: float) -> bool:
        """Write everything unwritten now (the write in flight, then the open batch); on success
        advance positions. Call with the ingest lock held."""
        error = await self._collect()
        if error is not None and classify(error) is Verdict.fenced:
            return await self._recover(error, timeout)
        # any other failure: its batch is now in front of the open one, which is written right away
        if not self.batch:
            await self._commit_hints()
            return error is None
        error = await self._write_open(timeout)
        return True if error is None else await self._recover(error, timeout)

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
            await asyncio.wait_for(self.dead_letters.send_unsent(current), timeout)
        # planned in a thread: a batch of thousands of distinct ids takes tenths of a second to aggregate,
        # and health checks, heartbeats and tools must not wait behind it (nor the transaction's locks)
        plan = await asyncio.to_thread(flush_plan.plan, current.decoded, time.time())
        async with self.pool.acquire(timeout=timeout) as conn:
            outcome = await asyncio.wait_for(write_flush(conn, plan, **self._flush_arguments(current)), timeout)
        return outcome, time.monotonic() - started

    def _written(self, current: batching.Batch, outcome: FlushOutcome, seconds: float) -> None:
        self.positions.advance(current.next_offsets)
        self.stats.record_flush(current, outcome, seconds)
        self.hints.update(current.next_offsets)

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
        """A write of the open batch (merged with the write in flight, if that one failed) failed: act on
        the verdict. Refused values are set aside and the rest written at once, as often as needed."""
        while True:
            verdict = classify(error)
            if verdict is Verdict.fenced:
                self._discard_fenced(error)
                return False
            if verdict is Verdict.transient:
                self.retry_later(f"flush of {self.batch.size} events failed ({type(error).__name__}: {error})")
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
        # what was being retried is gone with the batch; the stored offsets are read again and the
        # partitions resume from them (left active, the back-off kept them paused for good)
        self.drop()
        self.positions.reposition_all()

    async def _commit_hints(self) -> None:
        hints, self.hints = self.hints, {}
        if hints:
            await self.positions.commit_hint(hints)

    def retry_later(self, why: str) -> None:
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
            dedupe_window_s=self.settings.dedupe_window_s,
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
                    refused_calls(conn, calls=current.decoded, now=time.time(), **self._flush_arguments(current)),
                    timeout * 4,
                )
        except Exception as lookup_error:
            if classify(lookup_error) not in (Verdict.transient, Verdict.refused):
                raise
            self.retry_later(f"could not isolate the refused events yet ({lookup_error})")
            return False
        if not refused:
            self.retry_later("the refusal does not come from single events; treating it as transient")
            return False
        refused_ids = {id(c) for c in refused}
        current.decoded = [c for c in current.decoded if id(c) not in refused_ids]
        current.dead_letters.extend(batching.refused_letter(call, str(error)) for call in refused)
        log.error(
            "dead-lettered %d events the database refused; writing the other %d", len(refused), len(current.decoded)
        )
        return True
