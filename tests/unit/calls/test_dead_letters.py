from worker.calls.batch import DeadLetter
from worker.calls.dead_letters import headers
from worker.calls.decode import Rejection


def test_headers_name_reason_source_and_position():
    letter = DeadLetter(
        "gateway.calls.failed",
        3,
        1234,
        None,
        b"{}",
        Rejection("invalid_event", "latency_ms: bad", 7),
        truncated_from=900_000,
    )
    got = dict(headers(letter, "grp", "2026-11-24T10:00:00+00:00"))
    assert got["dlq.reason"] == b"invalid_event"
    assert got["dlq.detail"] == b"latency_ms: bad"
    assert (got["dlq.source_topic"], got["dlq.source_partition"], got["dlq.source_offset"]) == (
        b"gateway.calls.failed",
        b"3",
        b"1234",
    )
    assert got["dlq.envelope_index"] == b"7"
    assert (got["dlq.truncated"], got["dlq.original_size"]) == (b"true", b"900000")


def test_whole_message_rejection_has_no_index():
    letter = DeadLetter("t", 0, 1, None, b"x", Rejection("not_json", "boom"))
    names = [name for name, _ in headers(letter, "g", "now")]
    assert "dlq.envelope_index" not in names and "dlq.truncated" not in names
