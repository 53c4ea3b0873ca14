"""Decoding message values: every input ends as counted calls or reasoned rejections, never a crash."""

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tests import samples
from worker.calls.decode import Limits, containers, decode, is_plain, scan
from worker.calls.events import EventKind
from worker.calls.redaction import redact_identifier

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def test_one_event_per_message():
    calls, rejections = decode(orjson.dumps(samples.completed(model_id="gpt-4o")), EventKind.completed)
    assert [c.model_id for c in calls] == ["gpt-4o"] and rejections == []
    assert calls[0].ok and calls[0].failure is None


def test_a_failed_event_keeps_its_failure_details():
    calls, _ = decode(orjson.dumps(samples.failed()), EventKind.failed)
    assert not calls[0].ok and calls[0].failure.error_type == "timeout"


def test_the_route_probability_reaches_the_call_on_both_decoding_paths():
    """The fast path (msgspec, completed events) and the full one (pydantic, failed events) both keep it:
    off-policy estimates weigh each call by it (worker/routing/counterfactual.py)."""
    (fast,), _ = decode(orjson.dumps(samples.completed(route_probability=0.25)), EventKind.completed)
    (full,), _ = decode(orjson.dumps(samples.failed(route_probability=0.5)), EventKind.failed)
    (none,), _ = decode(orjson.dumps(samples.completed()), EventKind.completed)
    assert (fast.route_probability, full.route_probability, none.route_probability) == (0.25, 0.5, None)


def test_envelope_elements_are_judged_one_by_one():
    envelope = [samples.completed(), samples.completed(latency_ms=-3), "junk", samples.completed()]
    calls, rejections = decode(orjson.dumps(envelope), EventKind.completed)
    assert len(calls) == 2
    assert [(r.index, r.reason) for r in rejections] == [(1, "invalid_event"), (2, "not_an_object")]
    assert "latency_ms" in rejections[0].detail


def test_a_completed_topic_refuses_nothing_it_should_not():
    # a failed event on the completed topic is still a valid completed event (extra fields ignored)
    calls, rejections = decode(orjson.dumps(samples.failed()), EventKind.completed)
    assert len(calls) == 1 and calls[0].ok and not rejections


def test_limits_have_their_own_reasons():
    limits = Limits(max_message_bytes=2048, max_events_per_envelope=2, max_nesting_depth=4)
    cases = {
        b"": "empty",
        None: "empty",
        b"x" * 3000: "too_large",
        b"{not json": "not_json",
        b"\xff\xfe": "not_json",
        b"[]": "empty_envelope",
        orjson.dumps([samples.completed()] * 3): "envelope_too_large",
        orjson.dumps(samples.completed(extra={"a": {"b": {"c": {"d": 1}}}})): "too_deep",
        b"42": "not_an_object",
        orjson.dumps(samples.completed(model_id="gpt\x00-4o")): "nul_character",
        orjson.dumps(samples.completed(extra={"k\x00": 1})): "nul_character",
    }
    for value, reason in cases.items():
        calls, rejections = decode(value, EventKind.completed, limits)
        assert calls == [] and [r.reason for r in rejections] == [reason], value


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(value):
    calls, rejections = decode(value, EventKind.failed)
    assert len(calls) + len(rejections) >= 1


@given(json_values)
def test_arbitrary_json_is_either_counted_or_rejected(value):
    raw = orjson.dumps(value)
    calls, rejections = decode(raw, EventKind.completed)
    items = len(value) if isinstance(value, list) and 0 < len(value) <= 10_000 else 1
    assert len(calls) + len(rejections) == items
    assert all(r.reason and r.detail for r in rejections)


@given(
    latency=st.floats(min_value=0, max_value=86_400_000),
    tokens=st.integers(min_value=0, max_value=2**31 - 1),
    cost=st.floats(min_value=0, max_value=1e6),
    model=st.text(min_size=1, max_size=200).filter(lambda t: "\x00" not in t),
)
def test_valid_values_reach_the_call_unchanged(latency, tokens, cost, model):
    event = samples.completed(latency_ms=latency, input_tokens=tokens, cost_usd=cost, model_id=model)
    calls, rejections = decode(orjson.dumps(event), EventKind.completed)
    assert rejections == []
    call = calls[0]
    # a model id that looks like a secret (say "sk-00000000") is redacted like every identifier
    assert (call.latency_ms, call.input_tokens, call.cost_usd) == (latency, tokens, cost)
    assert call.model_id == redact_identifier(model)


@given(st.integers(min_value=1, max_value=60))
def test_nesting_depth_is_measured_exactly(depth):
    value: object = 1
    for _ in range(depth):
        value = [value]
    assert scan(value, depth) is None
    assert scan(value, depth - 1) == "too_deep"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(alphabet=st.sampled_from('a\x00\\u0{["')),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(alphabet="ab\x00{", max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=3), _json_values, max_size=4), st.integers(2, 6))
def test_the_raw_byte_shortcut_never_skips_what_scan_would_find(event, depth_limit):
    raw = orjson.dumps(event)
    if is_plain(raw, depth_limit):
        assert scan(orjson.loads(raw), depth_limit) is None


@given(
    st.lists(st.dictionaries(st.text(max_size=3), _json_values, max_size=4) | _json_values, max_size=6),
    st.integers(2, 6),
)
def test_the_shortcut_judges_an_envelope_as_each_of_its_events(envelope, depth_limit):
    raw = orjson.dumps(envelope)
    if is_plain(raw, depth_limit, containers(envelope)):
        assert all(scan(e, depth_limit) is None for e in envelope if isinstance(e, (dict, list)))


def test_an_envelope_of_many_flat_events_is_plain_and_one_deep_event_is_not():
    flat = [{"a": 1}] * 100
    assert is_plain(orjson.dumps(flat), 4, containers(flat))
    deep = flat + [{"a": [[[[1]]]]}]
    assert not is_plain(orjson.dumps(deep), 4, containers(deep))


def test_an_event_dated_past_the_acceptance_window_is_refused_with_the_reason():
    import datetime as dt

    received = dt.datetime(2026, 11, 24, 10, 15, 30, tzinfo=dt.UTC).timestamp()
    year_10000 = samples.completed(occurred_at="9999-12-31T23:30:00-01:00")  # legal RFC 3339, year 10000 in UTC
    month_ahead = samples.completed(occurred_at="2026-12-24T10:15:30Z")
    minute_ahead = samples.completed(occurred_at="2026-11-24T10:16:30Z")
    last_week = samples.completed(occurred_at="2026-11-17T10:15:30Z")
    value = orjson.dumps([year_10000, month_ahead, minute_ahead, last_week])
    calls, rejections = decode(value, EventKind.completed, Limits(max_ahead_s=300), received_at=received)
    assert [c.event_id for c in calls] == [minute_ahead["event_id"], last_week["event_id"]]
    assert [(r.reason, r.index) for r in rejections] == [("from_the_future", 0), ("from_the_future", 1)]
    assert "2,592,000 s ahead of the broker's timestamp" in rejections[1].detail
    assert len(decode(value, EventKind.completed)[0]) == 4  # no broker time given: not judged here


def test_the_batch_judges_events_against_the_record_timestamp():
    import time

    from worker.calls.batch import accumulate, initial

    class Msg:
        topic, partition, offset, key = "t", 0, 0, None

        def __init__(self, value, timestamp):
            self.value, self.timestamp = value, timestamp

    ahead = samples.completed(occurred_at="2099-01-01T00:00:00Z")
    batch = accumulate(
        initial(0.0), Msg(orjson.dumps(ahead), int(time.time() * 1000)), EventKind.completed, Limits(), 4096
    )
    assert not batch.decoded and [d.rejection.reason for d in batch.dead_letters] == ["from_the_future"]


def test_identifiers_are_redacted_when_decoded():
    secret = "sk-proj-abcdefghijklmnop"
    calls, _ = decode(
        orjson.dumps(samples.completed(model_id=f"tenant-{secret}", task_type=secret)), EventKind.completed
    )
    assert secret not in calls[0].model_id and secret not in calls[0].task_type


def test_feedback_decodes_to_millionths_and_every_bound_is_refused_with_the_field():
    from worker.calls.decode import Feedback

    good = {
        "event_id": "6f1c7a1e-3b7a-4d5e-9a53-1f0c2d3e4b5a",
        "request_id": "req-1",
        "name": "thumbs",
        "score": 0.3333333,
        "source": "user",
        "occurred_at": "2026-11-24T10:15:30Z",
        "comment": "wrong answer, my key is sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
    }
    items, rejections = decode(orjson.dumps([good, good | {"score": 1}]), EventKind.feedback)
    assert rejections == [] and [type(i) for i in items] == [Feedback, Feedback]
    assert (items[0].score_micro, items[1].score_micro, items[0].call_event_id) == (333333, 1_000_000, None)
    assert "sk-proj" not in (items[0].comment or "")
    for broken, field in (
        (good | {"score": 1.5}, "score"),
        (good | {"score": "0.5"}, "score"),
        (good | {"name": "a b"}, "name"),
        (good | {"name": "x" * 51}, "name"),
        (good | {"source": "boss"}, "source"),
        ({k: v for k, v in good.items() if k != "request_id"}, "call_event_id or request_id"),
        (good | {"comment": "x" * 2001}, "comment"),
    ):
        _, rejected = decode(orjson.dumps(broken), EventKind.feedback)
        assert [r.reason for r in rejected] == ["invalid_event"] and field in rejected[0].detail, (broken, rejected)
    _, nan = decode(b'{"event_id": "6f1c7a1e-3b7a-4d5e-9a53-1f0c2d3e4b5a", "score": NaN}', EventKind.feedback)
    assert [r.reason for r in nan] == ["not_json"]
