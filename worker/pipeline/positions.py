"""Where each assigned partition resumes: stored offsets, pauses and seeks.

On assignment, partitions stay paused until their stored offsets are read from PostgreSQL and
seeked to. A partition's `expected` offset is the stored value the next flush must find to be
allowed in. The ingest processor (worker/pipeline/ingest.py) owns this state and drives it; it
never calls back into the processor.

A stored offset past the log's end means the topic was deleted and recreated (or its offsets
reset): reading on would skip every new message below the stored offset as "already counted".
Such a partition stays paused and `ahead` (an error, a metric, readiness) until an operator
re-anchors it (`telemetry-worker offsets reanchor`); it is checked again every few seconds.
"""

from __future__ import annotations

import logging
import time

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from worker import metrics
from worker.settings import Settings
from worker.store.offsets import UNSTORED, stored_offsets

log = logging.getLogger(__name__)

AHEAD_RECHECK_S = 5.0


class Positions:
    def __init__(self, settings: Settings, pool: asyncpg.Pool):
        self.settings = settings
        self.pool = pool
        self.consumer: AIOKafkaConsumer  # set when the consumer is created, before it joins its group
        self.expected: dict[tuple[str, int], int] = {}
        self.pending: set[TopicPartition] = set()
        self.ahead: dict[TopicPartition, tuple[int, int]] = {}  # paused: (stored offset, log end)
        self._next_attempt = 0.0
        self._next_ahead_check = 0.0

    @property
    def settled(self) -> bool:
        return not self.pending

    def assigned(self, assigned: set[TopicPartition]) -> None:
        self.pending |= set(assigned)
        if assigned:
            self.consumer.pause(*assigned)
            log.info("partitions assigned: %s", _names(assigned))

    def forget(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.expected.pop((tp.topic, tp.partition), None)
            self.pending.discard(tp)
            self.ahead.pop(tp, None)
        metrics.OFFSETS_AHEAD.set(len(self.ahead))
        if revoked:
            log.info("partitions revoked: %s", _names(revoked))

    def recheck_ahead(self) -> None:
        """Every AHEAD_RECHECK_S, partitions held for a stored offset past the log's end are read again."""
        if self.ahead and time.monotonic() >= self._next_ahead_check:
            self._next_ahead_check = time.monotonic() + AHEAD_RECHECK_S
            self.pending |= set(self.ahead) & self.consumer.assignment()

    def reset_under_us(self, tp: TopicPartition, stored: int, offset: int) -> None:
        """The fetch returned an offset below the stored one: Kafka reset the position (the topic was
        recreated under a running consumer). Hold the partition exactly as if found on assignment."""
        self.consumer.pause(tp)
        self._hold_ahead([tp], {tp: (stored, offset)})

    def ahead_report(self) -> list[dict]:
        return [
            {"topic": tp.topic, "partition": tp.partition, "stored_offset": stored, "log_end": end}
            for tp, (stored, end) in sorted(self.ahead.items())
        ]

    async def settle(self, resume: bool) -> int:
        """Seek pending partitions to their stored offsets, and resume them if `resume` (a flush being
        retried keeps everything paused). Returns how many messages retention deleted before they
        were counted. Call with the ingest lock held."""
        if time.monotonic() < self._next_attempt:
            return 0
        assigned = self.consumer.assignment()
        self.pending &= assigned
        todo = sorted(self.pending)
        if not todo:
            return 0
        s = self.settings
        try:
            async with self.pool.acquire(timeout=s.flush_timeout_s) as conn:
                stored = await stored_offsets(conn, s.consumer_group, [(tp.topic, tp.partition) for tp in todo])
            offsets = {tp: stored[(tp.topic, tp.partition)] for tp in todo}
            known = [tp for tp in todo if offsets[tp] != UNSTORED]
            ends = await self.consumer.end_offsets(known) if known else {}
            # held until the stored offset changes (a re-anchor): a log that has since grown past it is no safer
            ahead = {
                tp: (offsets[tp], ends[tp])
                for tp in known
                if offsets[tp] > ends[tp] or (tp in self.ahead and self.ahead[tp][0] == offsets[tp])
            }
            known = [tp for tp in known if tp not in ahead]
            unknown = [tp for tp in todo if offsets[tp] == UNSTORED]
            for tp in known:
                self.consumer.seek(tp, offsets[tp])
            if unknown:
                seek = (
                    self.consumer.seek_to_beginning
                    if s.start_offset_when_unstored == "earliest"
                    else self.consumer.seek_to_end
                )
                await seek(*unknown)
            lost = await self._lost_to_retention(known, offsets)
        except Exception as error:  # noqa: BLE001 - database or broker unavailable: stay paused, try again shortly
            self._next_attempt = time.monotonic() + 2.0
            log.warning("cannot read stored offsets yet (%s: %s); partitions stay paused", type(error).__name__, error)
            return 0
        self._hold_ahead(todo, ahead)
        todo = [tp for tp in todo if tp not in ahead]
        for tp in todo:
            self.expected[(tp.topic, tp.partition)] = offsets[tp]
        self.pending.clear()
        if not todo:
            return lost
        if resume:
            self.consumer.resume(*todo)
        log.info(
            "resuming from stored offsets: %s", ", ".join(f"{tp.topic}[{tp.partition}]@{offsets[tp]}" for tp in todo)
        )
        return lost

    def _hold_ahead(self, todo: list[TopicPartition], ahead: dict[TopicPartition, tuple[int, int]]) -> None:
        for tp in todo:
            if tp in ahead:
                if tp not in self.ahead:
                    stored, end = ahead[tp]
                    log.error(
                        "%s[%d]: the stored offset %d is past the log's end (%d): the topic was recreated or its "
                        "offsets reset. The partition stays paused so that no new message is skipped; re-anchor "
                        "it with 'telemetry-worker offsets reanchor --topic %s --partition %d'",
                        tp.topic,
                        tp.partition,
                        stored,
                        end,
                        tp.topic,
                        tp.partition,
                    )
                self.ahead[tp] = ahead[tp]
                self.expected.pop((tp.topic, tp.partition), None)
            elif self.ahead.pop(tp, None) is not None:
                log.warning("%s[%d]: re-anchored; consumption resumes", tp.topic, tp.partition)
        metrics.OFFSETS_AHEAD.set(len(self.ahead))

    async def _lost_to_retention(self, known: list[TopicPartition], offsets: dict) -> int:
        if not known:
            return 0
        beginnings = await self.consumer.beginning_offsets(known)
        total = 0
        for tp in known:
            lost = beginnings[tp] - offsets[tp]
            if lost > 0:
                total += lost
                log.error(
                    "%s[%d]: retention deleted %d messages before they were counted (stored offset %d, "
                    "log starts at %d)",
                    tp.topic,
                    tp.partition,
                    lost,
                    offsets[tp],
                    beginnings[tp],
                )
        return total

    def reposition_all(self) -> None:
        """After a fence: forget what we believed and read the stored offsets again."""
        self.expected.clear()
        self.ahead.clear()
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
        ready = self.consumer.assignment() - self.pending - set(self.ahead)
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
