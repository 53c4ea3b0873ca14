"""Where each assigned partition resumes, and the rebalance listener that keeps that true.

On assignment, partitions stay paused until their stored offsets are read from PostgreSQL and
seeked to; on revocation, the batch is flushed (bounded in time) or handed back unwritten. A
partition's `expected` offset is the stored value the next flush must find to be allowed in.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from worker import batch as batching
from worker.store.offsets import UNSTORED, stored_offsets

if TYPE_CHECKING:
    from worker.pipeline.ingest import Ingest

log = logging.getLogger(__name__)


class Positions(ConsumerRebalanceListener):
    def __init__(self, ingest: Ingest):
        self.ingest = ingest
        self.expected: dict[tuple[str, int], int] = {}
        self.pending: set[TopicPartition] = set()
        self._next_attempt = 0.0

    @property
    def consumer(self):
        return self.ingest.consumer

    @property
    def settled(self) -> bool:
        return not self.pending

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        ingest = self.ingest
        async with ingest.lock:
            if ingest.unwritten:
                flushed = await ingest.flush(timeout=ingest.settings.revoke_flush_timeout_s)
                if not flushed:
                    log.warning("rebalance: %d unwritten events handed back; they will be read again", ingest.batch.items)
            ingest.batch = batching.initial(time.monotonic())
            ingest.retry_at, ingest.failures = None, 0
            for tp in revoked:
                self.expected.pop((tp.topic, tp.partition), None)
                self.pending.discard(tp)
        if revoked:
            log.info("partitions revoked: %s", _names(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.pending |= set(assigned)
        if assigned:
            self.consumer.pause(*assigned)
            log.info("partitions assigned: %s", _names(assigned))

    async def settle(self) -> None:
        """Seek pending partitions to their stored offsets. Call with the ingest lock held."""
        if time.monotonic() < self._next_attempt:
            return
        assigned = self.consumer.assignment()
        self.pending &= assigned
        todo = sorted(self.pending)
        if not todo:
            return
        s = self.ingest.settings
        try:
            async with self.ingest.pool.acquire(timeout=s.flush_timeout_s) as conn:
                stored = await stored_offsets(conn, s.consumer_group, [(tp.topic, tp.partition) for tp in todo])
            offsets = {tp: stored[(tp.topic, tp.partition)] for tp in todo}
            known = [tp for tp in todo if offsets[tp] != UNSTORED]
            unknown = [tp for tp in todo if offsets[tp] == UNSTORED]
            for tp in known:
                self.consumer.seek(tp, offsets[tp])
            if unknown:
                seek = self.consumer.seek_to_beginning if s.start_offset_when_unstored == "earliest" else self.consumer.seek_to_end
                await seek(*unknown)
            await self._warn_if_retention_passed(known, offsets)
        except Exception as error:  # database or broker unavailable: stay paused, try again shortly
            self._next_attempt = time.monotonic() + 2.0
            log.warning("cannot read stored offsets yet (%s: %s); partitions stay paused", type(error).__name__, error)
            return
        for tp in todo:
            self.expected[(tp.topic, tp.partition)] = offsets[tp]
        self.pending.clear()
        if self.ingest.retry_at is None:  # while a flush is being retried, everything stays paused
            self.consumer.resume(*todo)
        log.info("resuming from stored offsets: %s", ", ".join(f"{tp.topic}[{tp.partition}]@{offsets[tp]}" for tp in todo))

    async def _warn_if_retention_passed(self, known: list[TopicPartition], offsets: dict) -> None:
        if not known:
            return
        beginnings = await self.consumer.beginning_offsets(known)
        for tp in known:
            lost = beginnings[tp] - offsets[tp]
            if lost > 0:
                self.ingest.stats.lost_to_retention += lost
                log.error("%s[%d]: retention deleted %d messages before they were counted (stored offset %d, "
                          "log starts at %d)", tp.topic, tp.partition, lost, offsets[tp], beginnings[tp])

    def reposition_all(self) -> None:
        """After a fence: forget what we believed and read the stored offsets again."""
        self.expected.clear()
        self.pending = set(self.consumer.assignment())
        if self.pending:
            self.consumer.pause(*self.pending)

    def advance(self, next_offsets: dict[tuple[str, int], int]) -> None:
        self.expected.update(next_offsets)

    def pause_all(self) -> None:
        assigned = self.consumer.assignment()
        if assigned:
            self.consumer.pause(*assigned)

    def resume_all(self) -> None:
        ready = self.consumer.assignment() - self.pending
        if ready:
            self.consumer.resume(*ready)

    async def commit_hint(self, next_offsets: dict[tuple[str, int], int]) -> None:
        assigned = self.consumer.assignment()
        offsets = {TopicPartition(t, p): o for (t, p), o in next_offsets.items() if TopicPartition(t, p) in assigned}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as error:  # only a hint for lag monitoring; the stored offsets are the truth
            log.debug("kafka offset commit skipped: %s", error)


def _names(tps) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))
