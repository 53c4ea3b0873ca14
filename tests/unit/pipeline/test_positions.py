"""Where partitions resume: seeks to stored offsets, holds, pauses. A recording consumer stands in
for aiokafka's (its calls are the behaviour under test); stored offsets come from a stub connection."""

from __future__ import annotations

import contextlib

from aiokafka import TopicPartition

from worker.pipeline.positions import Positions
from worker.settings import Settings
from worker.store.offsets import UNSTORED

A, B, C = TopicPartition("calls", 0), TopicPartition("calls", 1), TopicPartition("calls", 2)


class RecordingConsumer:
    def __init__(self, assigned, ends, beginnings):
        self.assigned, self.ends, self.beginnings = set(assigned), ends, beginnings
        self.paused: set[TopicPartition] = set()
        self.seeks: dict[TopicPartition, int | str] = {}

    def assignment(self):
        return set(self.assigned)

    def pause(self, *tps):
        self.paused |= set(tps)

    def resume(self, *tps):
        self.paused -= set(tps)

    def seek(self, tp, offset):
        self.seeks[tp] = offset

    async def seek_to_beginning(self, *tps):
        self.seeks.update(dict.fromkeys(tps, "beginning"))

    async def end_offsets(self, tps):
        return {tp: self.ends[tp] for tp in tps}

    async def beginning_offsets(self, tps):
        return {tp: self.beginnings[tp] for tp in tps}


class StoredOffsets:
    """A pool whose connection answers stored_offsets' two statements with fixed rows."""

    def __init__(self, stored: dict[TopicPartition, int]):
        self.stored = stored

    @contextlib.asynccontextmanager
    async def acquire(self, timeout=None):
        yield self

    async def execute(self, *args):
        return None

    async def fetch(self, query, group, topics, partitions):
        return [
            {"topic": t, "partition": p, "next_offset": self.stored.get(TopicPartition(t, p), UNSTORED)}
            for t, p in zip(topics, partitions, strict=True)
        ]


def positions(stored, ends, beginnings=None) -> tuple[Positions, RecordingConsumer]:
    consumer = RecordingConsumer(ends, ends, beginnings or dict.fromkeys(ends, 0))
    p = Positions(Settings(start_offset_when_unstored="earliest"), StoredOffsets(stored))  # type: ignore[arg-type]
    p.consumer = consumer  # type: ignore[assignment]
    return p, consumer


async def test_assigned_partitions_wait_paused_then_resume_from_their_stored_offsets():
    p, consumer = positions({A: 40, B: 7}, ends={A: 50, B: 7, C: 3})
    p.assigned({A, B, C})
    assert consumer.paused == {A, B, C} and not p.settled
    assert await p.settle(resume=True) == 0
    assert consumer.seeks == {A: 40, B: 7, C: "beginning"}
    assert p.expected == {("calls", 0): 40, ("calls", 1): 7, ("calls", 2): UNSTORED}
    assert p.settled and not consumer.paused


async def test_a_stored_offset_past_the_log_end_is_held_until_re_anchored():
    p, consumer = positions({A: 900, B: 5}, ends={A: 10, B: 9})
    p.assigned({A, B})
    await p.settle(resume=True)
    assert set(p.ahead) == {A} and A in consumer.paused and B not in consumer.paused
    assert ("calls", 0) not in p.expected
    p.resume_all()
    assert A in consumer.paused  # a held partition is not resumed with the others
    assert p.ahead_report() == [{"topic": "calls", "partition": 0, "stored_offset": 900, "log_end": 10}]
    # the log grows past the stored offset: still held (the new messages below 900 would be skipped)
    consumer.ends[A] = 1000
    p._next_ahead_check = 0.0
    p.recheck_ahead()
    await p.settle(resume=True)
    assert A in p.ahead
    # an operator re-anchors: the stored offset changes, and the partition resumes from it
    p.pool.stored[A] = 0  # type: ignore[attr-defined]
    p._next_ahead_check = 0.0
    p.recheck_ahead()
    await p.settle(resume=True)
    assert not p.ahead and consumer.seeks[A] == 0 and A not in consumer.paused


async def test_while_a_flush_is_retried_settled_partitions_stay_paused():
    p, consumer = positions({A: 3}, ends={A: 3})
    p.assigned({A})
    await p.settle(resume=False)
    assert p.settled and A in consumer.paused


async def test_messages_deleted_by_retention_before_they_were_counted_are_reported():
    p, _ = positions({A: 5, B: 8}, ends={A: 100, B: 100}, beginnings={A: 25, B: 0})
    p.assigned({A, B})
    assert await p.settle(resume=True) == 20


def test_a_fetch_below_the_stored_offset_holds_the_partition_and_a_fence_reads_everything_again():
    p, consumer = positions({}, ends={A: 10, B: 10})
    p.expected = {("calls", 0): 8, ("calls", 1): 4}
    p.reset_under_us(A, stored=8, offset=0)
    assert A in p.ahead and A in consumer.paused and ("calls", 0) not in p.expected
    p.reposition_all()
    assert not p.expected and not p.ahead and p.pending == {A, B} and consumer.paused == {A, B}


def test_revoked_partitions_are_forgotten():
    p, _ = positions({}, ends={A: 1, B: 1})
    p.expected = {("calls", 0): 1, ("calls", 1): 1}
    p.pending = {A}
    p.forget({A})
    assert p.expected == {("calls", 1): 1} and not p.pending
