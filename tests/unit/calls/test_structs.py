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
    "route_probability": st.sampled_from([0.25, 1, 1.0, 0, 0.0, -0.5, 1.5, 1e-300, True, "0.5", None]),
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


SCORES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1, max_value=2),
    st.integers(min_value=-2, max_value=3),
    st.sampled_from([0, 1, 0.5, 0.3333333, 1.0000001, -0.0, True, None, "0.5"]),
)
FEEDBACK_MUTATIONS = {
    "event_id": UUIDS,
    "call_event_id": st.one_of(UUIDS, st.none()),
    "request_id": TEXTS,
    "occurred_at": TIMES,
    "name": st.one_of(
        st.text(max_size=60), st.sampled_from(["thumbs", "a b", "x" * 50, "x" * 51, "sk-proj-" + "a" * 30])
    ),
    "score": SCORES,
    "source": st.sampled_from(["user", "eval", "judge", "heuristic", "other", "boss", "", None]),
    "comment": st.one_of(TEXTS, st.sampled_from(["x" * 2001, "key sk-proj-" + "b" * 40])),
    "schema_version": st.sampled_from([1, 2, True, None]),
}


def a_vote() -> dict:
    return {
        "event_id": "6f1c2f4e-3b7a-4d2e-9a51-0c1d2e3f4a5b",
        "call_event_id": "0b1c2f4e-3b7a-4d2e-9a51-0c1d2e3f4a5b",
        "request_id": "req-1",
        "name": "correctness",
        "score": 0.75,
        "source": "judge",
        "occurred_at": "2026-12-01T09:59:00Z",
        "comment": "close, but misses the second point",
    }


@st.composite
def votes(draw) -> dict:
    vote = a_vote()
    for name in draw(st.lists(st.sampled_from(sorted(FEEDBACK_MUTATIONS)), max_size=4, unique=True)):
        if draw(st.booleans()) and name not in ("event_id", "occurred_at", "name", "score", "source"):
            vote.pop(name, None)
        else:
            vote[name] = draw(FEEDBACK_MUTATIONS[name])
    return vote


@settings(max_examples=1500)
@given(st.lists(votes(), min_size=1, max_size=3), st.booleans())
def test_the_feedback_fast_path_agrees_with_the_contract(elements, as_envelope):
    from worker.calls.decode import fast_feedback

    value = json.dumps(elements if as_envelope else elements[0], ensure_ascii=False).encode()
    fast = fast_feedback(value, LIMITS, NOW)
    items, rejections = by_contract(value, EventKind.feedback, LIMITS, NOW)
    if fast is not None:
        assert not rejections, f"the fast path accepted what the contract refuses: {rejections}"
        assert fast == items
    assert decode(value, EventKind.feedback, LIMITS, NOW) == (items, rejections)


def test_plain_valid_feedback_takes_the_fast_path():
    from worker.calls.decode import fast_feedback

    for value in (orjson.dumps(a_vote()), orjson.dumps([a_vote(), a_vote() | {"call_event_id": None}])):
        fast = fast_feedback(value, LIMITS, NOW)
        assert fast is not None and fast == by_contract(value, EventKind.feedback, LIMITS, NOW)[0]
    named_none = a_vote() | {"call_event_id": None, "request_id": None}
    assert fast_feedback(orjson.dumps(named_none), LIMITS, NOW) is None  # the contract says why


def test_the_fast_path_knows_the_contracts_layers():
    import typing

    from worker.calls.events import Layer
    from worker.calls.structs import LayerName

    assert typing.get_args(LayerName) == tuple(layer.value for layer in Layer)
