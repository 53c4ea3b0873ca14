"""The latency histogram: bounded relative error, and merging equals recording everything in one."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.calls import histogram

latencies = st.lists(st.floats(min_value=0.0, max_value=86_400_000.0), min_size=1, max_size=300)
quantiles = st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0])


def exact_quantile(values, q):
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


@given(latencies, quantiles)
def test_quantiles_are_within_the_relative_accuracy(values, q):
    estimate = histogram.quantile(histogram.from_values(values), q)
    exact = exact_quantile(values, q)
    if exact < histogram.MIN_TRACKED_MS:
        assert estimate == 0.0
    else:
        assert abs(estimate - exact) <= histogram.RELATIVE_ACCURACY * exact * (1 + 1e-9)


@given(latencies, latencies)
def test_merging_equals_recording_both(a, b):
    merged = histogram.merge(histogram.from_values(a), histogram.from_values(b))
    assert merged == histogram.from_values(a + b)
    assert histogram.merge(histogram.from_values(b), histogram.from_values(a)) == merged


def test_every_value_lies_in_its_bucket():
    for value in (0.0005, 0.001, 1.0, 2.5, 999.9, 1000.0, 86_400_000.0):
        bucket = histogram.bucket_of(value)
        if value < histogram.MIN_TRACKED_MS:
            assert bucket == histogram.ZERO_BUCKET
            continue
        assert histogram.GAMMA ** (bucket - 1) < value * (1 + 1e-12)
        assert value <= histogram.GAMMA**bucket * (1 + 1e-12)


def test_empty_histogram_has_no_quantile_and_bad_q_is_refused():
    assert histogram.quantile({}, 0.5) is None
    with pytest.raises(ValueError):
        histogram.quantile({1: 1}, 1.5)


def test_json_keys_round_trip():
    h = histogram.from_values([0.0, 1.0, 250.0, 250.0])
    assert histogram.from_json_keys(histogram.to_json_keys(h)) == h
