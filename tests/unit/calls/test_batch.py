"""Batch building: offsets advance for every message, bad input becomes dead letters."""

from dataclasses import dataclass

import orjson

from tests import samples
from worker.calls.batch import accumulate, initial, is_due, merged
from worker.calls.decode import Limits
from worker.calls.events import EventKind


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


def test_offsets_advance_for_valid_and_invalid_messages():
    batch = initial(now=0.0)
    accumulate(batch, Msg("t", 0, 10, orjson.dumps(samples.completed())), EventKind.completed, Limits(), 1024)
    accumulate(batch, Msg("t", 0, 11, b"garbage", b"k"), EventKind.completed, Limits(), 1024)
    accumulate(batch, Msg("t", 1, 5, orjson.dumps(samples.completed())), EventKind.completed, Limits(), 1024)
    assert batch.next_offsets == {("t", 0): 12, ("t", 1): 6}
    assert len(batch.decoded) == 2 and batch.messages == 3 and batch.size == 3
    letter = batch.dead_letters[0]
    assert (letter.offset, letter.key, letter.value, letter.rejection.reason) == (11, b"k", b"garbage", "not_json")


def test_envelope_element_dead_letter_carries_the_element_only():
    envelope = [samples.completed(), samples.completed(layer="turbo")]
    batch = accumulate(initial(0.0), Msg("t", 0, 0, orjson.dumps(envelope)), EventKind.completed, Limits(), 1024)
    letter = batch.dead_letters[0]
    assert letter.rejection.index == 1
    assert orjson.loads(letter.value)["layer"] == "turbo"


def test_oversized_dead_letters_are_cut_and_say_so():
    huge = b"x" * 5000
    batch = accumulate(initial(0.0), Msg("t", 0, 0, huge), EventKind.completed, Limits(max_message_bytes=4096), 1024)
    letter = batch.dead_letters[0]
    assert len(letter.value) == 1024 and letter.truncated_from == 5000


def test_due_on_size_or_age_but_never_when_empty():
    batch = initial(now=100.0)
    assert not is_due(batch, now=1000.0, max_items=10, max_age_s=1.0)
    accumulate(batch, Msg("t", 0, 0, orjson.dumps([samples.completed()] * 3)), EventKind.completed, Limits(), 1024)
    assert not is_due(batch, now=100.5, max_items=10, max_age_s=1.0)
    assert is_due(batch, now=101.0, max_items=10, max_age_s=1.0)
    assert is_due(batch, now=100.0, max_items=3, max_age_s=1.0)


def test_a_failed_write_rejoins_the_open_batch_in_front():
    written = initial(now=1.0)
    accumulate(written, Msg("t", 0, 10, orjson.dumps(samples.completed())), EventKind.completed, Limits(), 1024)
    accumulate(written, Msg("t", 1, 3, b"garbage"), EventKind.completed, Limits(), 1024)
    written.dead_letters_sent = 1  # its dead letter was produced before the write failed
    open_batch = initial(now=2.0)
    accumulate(open_batch, Msg("t", 0, 11, orjson.dumps(samples.completed())), EventKind.completed, Limits(), 1024)
    accumulate(open_batch, Msg("t", 2, 0, b"[]"), EventKind.completed, Limits(), 1024)
    both = merged(written, open_batch)
    assert both.next_offsets == {("t", 0): 12, ("t", 1): 4, ("t", 2): 1}
    assert both.decoded == written.decoded + open_batch.decoded and both.messages == 4 and both.opened_at == 1.0
    assert [d.offset for d in both.dead_letters] == [3, 0] and both.dead_letters_sent == 1  # only the new one is sent
