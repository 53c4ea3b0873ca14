"""Building one flush: `initial()` and `accumulate(batch, record)`, pure and cheap per message.

A batch owns, per partition, the offset to resume from once it is written: invalid messages
advance it too (they are dead-lettered in the same flush), so nothing is read twice or skipped.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from worker.calls.decode import Call, Feedback, Item, Limits, Rejection, decode
from worker.calls.events import EventKind
from worker.calls.redaction import redact_json_bytes

PartitionKey = tuple[str, int]  # (topic, partition): a plain tuple, cheap to hash and to store


class Record(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    rejection: Rejection
    truncated_from: int | None = None  # original size when the value was cut


@dataclass(slots=True)
class Batch:
    opened_at: float
    messages: int = 0
    decoded: list[Item] = field(default_factory=list)  # calls, feedback, and tool commands on their topic
    dead_letters: list[DeadLetter] = field(default_factory=list)
    next_offsets: dict[PartitionKey, int] = field(default_factory=dict)
    dead_letters_sent: int = 0  # how many are produced already, so a retried flush does not produce them again

    def __bool__(self) -> bool:
        return self.messages > 0

    @property
    def size(self) -> int:
        """Events and dead letters: what a flush has to write."""
        return len(self.decoded) + len(self.dead_letters)


def initial(now: float) -> Batch:
    return Batch(opened_at=now)


def _element_bytes(element: object) -> bytes:
    try:
        return orjson.dumps(element)
    except TypeError:  # e.g. an integer beyond 64 bits: keep a faithful textual form
        return repr(element).encode("utf-8", "replace")


def dead_letter(record: Record, rejection: Rejection, max_value_bytes: int) -> DeadLetter:
    """The dead letter of a rejected input: its value redacted (secrets never reach a topic) and cut."""
    whole = rejection.index is None
    value = redact_json_bytes((record.value or b"") if whole else _element_bytes(rejection.element))
    truncated_from = len(value) if len(value) > max_value_bytes else None
    return DeadLetter(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        value[:max_value_bytes],
        rejection,
        truncated_from,
    )


def refused_letter(call: Item, reason: str) -> DeadLetter:
    """A valid event the database refused: its source offset is unknown here (-1), its event_id is not."""
    event = call._asdict() if isinstance(call, (Call, Feedback)) else dataclasses.asdict(call)
    failure = event.pop("failure", None)
    if failure is not None:
        event.update(failure.model_dump(mode="json", exclude=set(event)))
    value = redact_json_bytes(_element_bytes(event))
    return DeadLetter("", -1, -1, None, value, Rejection("rejected_by_database", reason[:500]))


def received_at(record: Record) -> float:
    """The broker's timestamp of the record in epoch seconds (the local clock when it has none)."""
    ms = getattr(record, "timestamp", None)
    return ms / 1000.0 if isinstance(ms, int) and ms > 0 else time.time()


def accumulate(batch: Batch, record: Record, kind: EventKind, limits: Limits, max_dead_letter_bytes: int) -> Batch:
    calls, rejections = decode(record.value, kind, limits, received_at(record))
    batch.decoded.extend(calls)
    if rejections:
        batch.dead_letters.extend(dead_letter(record, r, max_dead_letter_bytes) for r in rejections)
    batch.next_offsets[(record.topic, record.partition)] = record.offset + 1
    batch.messages += 1
    return batch


def merged(first: Batch, then: Batch) -> Batch:
    """`first` followed by `then` (its offsets come later): how a failed write rejoins the open batch."""
    return Batch(
        opened_at=first.opened_at,
        messages=first.messages + then.messages,
        decoded=first.decoded + then.decoded,
        dead_letters=first.dead_letters + then.dead_letters,
        next_offsets={**first.next_offsets, **then.next_offsets},
        dead_letters_sent=first.dead_letters_sent,
    )


def is_due(batch: Batch, now: float, max_items: int, max_age_s: float) -> bool:
    return batch.size >= max_items or (batch.messages > 0 and now - batch.opened_at >= max_age_s)
