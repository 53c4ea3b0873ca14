"""Headers of a dead-letter record: enough to find, understand and replay the original input.

Delivery to the dead-letter topic is at-least-once: a crash after the dead letters were produced
but before the flush committed produces them again on replay. The source coordinates in the
headers (topic, partition, offset, index) identify such repeats.
"""

from __future__ import annotations

from worker.calls.batch import DeadLetter

Headers = list[tuple[str, bytes]]


def headers(letter: DeadLetter, consumer_group: str, failed_at_iso: str) -> Headers:
    rejection = letter.rejection
    out: Headers = [
        ("dlq.reason", rejection.reason.encode()),
        ("dlq.detail", rejection.detail[:2000].encode("utf-8", "replace")),
        ("dlq.source_topic", letter.topic.encode()),
        ("dlq.source_partition", str(letter.partition).encode()),
        ("dlq.source_offset", str(letter.offset).encode()),
        ("dlq.consumer_group", consumer_group.encode()),
        ("dlq.failed_at", failed_at_iso.encode()),
    ]
    if rejection.index is not None:
        out.append(("dlq.envelope_index", str(rejection.index).encode()))
    if letter.truncated_from is not None:
        out.append(("dlq.truncated", b"true"))
        out.append(("dlq.original_size", str(letter.truncated_from).encode()))
    return out
