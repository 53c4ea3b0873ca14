"""The vectorised aggregation (worker/flush/aggregate.py) against the per-call loop it replaced
(tests/unit/flush/per_event.py): the same keys, the same counts, token sums, extremes and histograms
exactly, the same float sums to rounding; on calls straight from generated messages too (envelopes,
re-sent copies, invalid elements, experiment tags, logged propensities)."""

import datetime as dt
import math
import uuid

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.flush.per_event import aggregate as per_event
from worker.calls import histogram
from worker.calls.decode import Call, decode
from worker.calls.events import EventKind
from worker.flush import plan as flush_plan
from worker.flush.aggregate import aggregate

T0 = 1.79e9
latencies = st.one_of(
    st.floats(min_value=0, max_value=1e5),
    st.sampled_from([0.0, 1e-4, histogram.MIN_TRACKED_MS, 1.0, histogram.GAMMA**10, histogram.GAMMA**500]),
)
calls = st.lists(
    st.builds(
        Call,
        event_id=st.uuids().map(str),
        occurred_at=st.one_of(st.floats(min_value=T0 - 7200, max_value=T0 + 600), st.sampled_from([T0, T0 + 59.999])),
        model_id=st.sampled_from(["a", "b", "c"]),
        task_type=st.sampled_from(["coding", "chat"]),
        layer=st.sampled_from(["fast", "balanced", "deep"]),
        ok=st.booleans(),
        latency_ms=latencies,
        cost_usd=st.floats(min_value=0, max_value=1),
        input_tokens=st.integers(min_value=0, max_value=10_000_000),
        output_tokens=st.integers(min_value=0, max_value=10_000_000),
        failure=st.none(),
        experiment_id=st.sampled_from([None, "e1", "e2"]),
        arm=st.sampled_from([None, "control", "treatment"]),
        route_probability=st.one_of(st.none(), st.floats(min_value=1e-5, max_value=1.0)),
    ),
    max_size=300,
)
recent_from = st.one_of(st.just(float("-inf")), st.floats(min_value=T0 - 3600, max_value=T0 + 600))


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def same_fields(got, want) -> None:
    """Integers, extremes and histograms equal; floats equal to rounding."""
    for name in type(want).__slots__:
        g, w = getattr(got, name), getattr(want, name)
        if isinstance(w, float):
            assert close(g, w), (name, g, w)
        else:
            assert g == w and type(g) is type(w), (name, g, w)


def same_deltas(got, want) -> None:
    for table in ("by_model", "by_minute", "by_layer_minute", "by_health", "by_arm", "by_logged"):
        g, w = getattr(got, table), getattr(want, table)
        assert g.keys() == w.keys(), table
        for key in w:
            same_fields(g[key], w[key])


@given(calls, recent_from)
def test_the_vectorised_deltas_equal_the_per_call_loop(cs, since):
    same_deltas(aggregate(cs, since), per_event(cs, since))


def test_bucket_edges_agree_with_the_scalar_mapping():
    edges = histogram.GAMMA ** np.arange(-700, 1700, dtype=np.float64)
    values = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf), [0.0, 1e-3, 9.99e-4, 6e5]])
    assert histogram.buckets_of(values).tolist() == [histogram.bucket_of(v) for v in values.tolist()]


def _event(i: int, at: float, rng_pick) -> dict:
    return {
        "event_id": str(uuid.UUID(int=i)),
        "occurred_at": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(),
        "model_id": rng_pick(["a", "b"]),
        "layer": rng_pick(["fast", "deep"]),
        "task_type": rng_pick(["chat", "coding"]),
        "latency_ms": rng_pick([0, 12.5, 300, 4000]),
        "cost_usd": rng_pick([0, 0.001, 0.02]),
        "input_tokens": rng_pick([0, 10, 5000]),
        **rng_pick([{}, {"experiment_id": "e1", "arm": "control"}, {"route_probability": 0.25}]),
    }


@given(st.data())
def test_plans_of_decoded_envelopes_with_copies_and_invalid_elements_equal_the_per_call_loop(data):
    pick = lambda options: data.draw(st.sampled_from(options))
    ids = data.draw(st.lists(st.integers(0, 40), min_size=1, max_size=120))  # repeats: re-sent copies
    events = [_event(i, T0 - data.draw(st.floats(0, 1200)), pick) for i in ids]
    invalid = data.draw(st.lists(st.integers(0, len(events)), max_size=5))
    for at in invalid:
        events.insert(at, {"event_id": "not-a-uuid", "latency_ms": -1})
    size = data.draw(st.integers(1, 50))
    items = []
    for start in range(0, len(events), size):
        decoded, _ = decode(orjson.dumps(events[start : start + size]), EventKind.completed, received_at=T0)
        items += decoded
    now = T0 + data.draw(st.floats(0, 900))
    plan = flush_plan.plan(items, now)
    same_deltas(plan.deltas, per_event(items, now - flush_plan.HEALTH_RECENT_S))
    fresh = {item.event_id for item in items if data.draw(st.booleans())}  # the store found these unseen
    kept = flush_plan.first_fresh(items, set(fresh))
    same_deltas(plan.fresh(fresh).deltas, per_event(kept, now - flush_plan.HEALTH_RECENT_S))
    assert sorted(c.event_id for c in kept) == sorted(fresh)
