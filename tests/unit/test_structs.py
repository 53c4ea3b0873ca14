"""The typed fast path never accepts what the contract refuses, and never reads a value differently."""

from __future__ import annotations

import json

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests import samples
from worker.calls.decode import Limits, by_contract, decode, fast_completed
from worker.calls.events import EventKind

LIMITS = Limits(max_events_per_envelope=50)
NOW = 1_796_119_200.0  # 2026-12-01T10:00:00Z

TIMES = st.one_of(
    st.sampled_from(
        [
            "2026-12-01T10:00:00Z",
            "2026-12-01T09:59:59.9999999Z",
            "2026-12-01T09:59:59,999999Z",
            "2026-12-01 10:00:00Z",
            "2026-12-01t10:00:00z",
            "2026-12-01T10:00:00",
            "2026-12-01T10:00:00+14:00",
            "2026-12-01T10:00:00-00:00",
            "2026-12-01T10:00:60Z",
            "2026-12-01T10:00Z",
            "2026-12-01",
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-02-30T10:00:00Z",
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.integers(),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.sampled_from([0, 1, 86_400_000, 86_400_001, 2**31 - 1, 2**31, 1e6, 1e6 + 1, "5"]),
)
TEXTS = st.one_of(st.text(max_size=220), st.integers(), st.none(), st.sampled_from(["", "x" * 100, "x" * 201]))
UUIDS = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.text(max_size=40),
)
MUTATIONS = {
    "event_id": UUIDS,
    "occurred_at": TIMES,
    "model_id": TEXTS,
    "task_type": TEXTS,
    "layer": st.sampled_from(["fast", "balanced", "deep", "FAST", "", None, 1]),
    "latency_ms": NUMBERS,
    "ttft_ms": NUMBERS,
    "input_tokens": NUMBERS,
    "output_tokens": NUMBERS,
    "cost_usd": NUMBERS,
    "schema_version": st.sampled_from([1, 2, 1.0, True, "1", None]),
    "request_id": TEXTS,
    "provider": TEXTS,
    "routing_rule_id": TEXTS,
    "experiment_id": TEXTS,
    "arm": TEXTS,
}


@st.composite
def events(draw) -> dict:
    event = samples.completed(occurred_at="2026-12-01T09:59:00Z")
    for name in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=4, unique=True)):
        if draw(st.booleans()) and name not in ("event_id", "occurred_at", "model_id", "layer", "task_type"):
            event.pop(name, None)
        else:
            event[name] = draw(MUTATIONS[name])
    return event


@settings(max_examples=1500)
@given(st.lists(events(), min_size=1, max_size=3), st.booleans())
@example([{**samples.completed(), "occurred_at": "2026-12-01T09:59:59.9999999Z"}], False)
@example([{**samples.completed(), "event_id": "6F1C2F4E-3B7A-4D2E-9A51-0C1D2E3F4A5B"}], False)
def test_the_fast_path_agrees_with_the_contract(elements, as_envelope):
    value = json.dumps(elements if as_envelope else elements[0], ensure_ascii=False).encode()  # any integer
    fast = fast_completed(value, LIMITS, NOW)
    calls, rejections = by_contract(value, EventKind.completed, LIMITS, NOW)
    if fast is not None:
        assert not rejections, f"the fast path accepted what the contract refuses: {rejections}"
        assert fast == calls
    assert decode(value, EventKind.completed, LIMITS, NOW) == (calls, rejections)


def test_plain_valid_events_take_the_fast_path():
    """Otherwise the test above would pass with a fast path that refuses everything."""
    elements = [samples.completed(occurred_at="2026-12-01T09:59:00.123456+01:00") for _ in range(3)]
    for value in (orjson.dumps(elements[0]), orjson.dumps(elements)):
        fast = fast_completed(value, LIMITS, NOW)
        assert fast is not None
        assert fast == by_contract(value, EventKind.completed, LIMITS, NOW)[0]


def test_what_the_fast_path_leaves_is_still_judged():
    event = samples.completed()
    for changed, reason in (
        ({"latency_ms": -1}, "invalid_event"),
        ({"model_id": "a\u0000b"}, "nul_character"),
        ({"occurred_at": "2027-01-01T00:00:00Z"}, "from_the_future"),
    ):
        value = orjson.dumps({**event, **changed})
        assert fast_completed(value, LIMITS, NOW) is None
        calls, rejections = decode(value, EventKind.completed, LIMITS, NOW)
        assert not calls and [r.reason for r in rejections] == [reason]
