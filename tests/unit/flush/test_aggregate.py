"""Aggregation against an independent, deliberately naive computation of the same numbers."""

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from worker.calls import histogram
from worker.calls.decode import Call
from worker.flush.aggregate import aggregate
from worker.flush.deltas import ALL_LAYERS, minute_of

calls = st.lists(
    st.builds(
        Call,
        event_id=st.uuids().map(str),
        occurred_at=st.floats(min_value=1.7e9, max_value=1.7e9 + 600),
        model_id=st.sampled_from(["a", "b", "c"]),
        task_type=st.sampled_from(["coding", "chat"]),
        layer=st.sampled_from(["fast", "balanced", "deep"]),
        ok=st.booleans(),
        latency_ms=st.floats(min_value=0, max_value=1e5),
        cost_usd=st.floats(min_value=0, max_value=1),
        input_tokens=st.integers(min_value=0, max_value=10_000),
        output_tokens=st.integers(min_value=0, max_value=10_000),
        failure=st.none(),
    ),
    max_size=200,
)


def naive(calls_, key):
    groups = defaultdict(list)
    for c in calls_:
        groups[key(c)].append(c)
    return {
        k: (
            len(v),
            sum(c.ok for c in v),
            sum(c.latency_ms for c in v),
            sum(c.cost_usd for c in v),
            sum(c.input_tokens for c in v),
            sum(c.output_tokens for c in v),
            min(c.occurred_at for c in v),
            max(c.occurred_at for c in v),
            sorted(c.latency_ms for c in v),
        )
        for k, v in groups.items()
    }


def same(tally, expected):
    n, ok, lat, cost, tin, tout, first, last, latencies = expected
    assert (tally.calls, tally.successes, tally.failures) == (n, ok, n - ok)
    assert abs(tally.latency_sum_ms - lat) <= 1e-9 * max(1.0, lat)
    assert abs(tally.cost_sum_usd - cost) <= 1e-9 * max(1.0, cost)
    assert (tally.input_tokens, tally.output_tokens, tally.first_seen, tally.last_seen) == (tin, tout, first, last)
    assert tally.latency_histogram == histogram.from_values(latencies)


@given(calls)
def test_per_model_task_matches_naive(cs):
    deltas = aggregate(cs)
    expected = naive(cs, lambda c: (c.model_id, c.task_type))
    assert deltas.by_model.keys() == expected.keys()
    for key, tally in deltas.by_model.items():
        same(tally, expected[key])


@given(calls)
def test_per_minute_and_layer_match_naive(cs):
    deltas = aggregate(cs)
    expected = naive(cs, lambda c: (minute_of(c.occurred_at), c.model_id, c.task_type, c.layer))
    assert deltas.by_minute.keys() == expected.keys()
    for key, tally in deltas.by_minute.items():
        same(tally, expected[key])
    per_layer = naive(cs, lambda c: (minute_of(c.occurred_at), c.layer))
    overall = naive(cs, lambda c: (minute_of(c.occurred_at), ALL_LAYERS))
    assert deltas.by_layer_minute.keys() == per_layer.keys() | overall.keys()
    for key, tally in deltas.by_layer_minute.items():
        same(tally, (per_layer | overall)[key])


@given(calls, calls)
def test_deltas_of_two_batches_add_up_to_the_deltas_of_both(a, b):
    whole = aggregate(a + b)
    parts = [aggregate(a), aggregate(b)]
    for key, tally in whole.by_model.items():
        pieces = [p.by_model[key] for p in parts if key in p.by_model]
        assert tally.calls == sum(p.calls for p in pieces)
        assert tally.latency_histogram == histogram.merge(*(p.latency_histogram for p in pieces))


def test_minutes_are_floored():
    assert minute_of(1_700_000_059.999) == 1_700_000_040
    assert minute_of(1_700_000_040.0) == 1_700_000_040
    assert minute_of(1_700_000_039.999) == 1_699_999_980
