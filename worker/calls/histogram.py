"""A mergeable latency histogram with bounded relative error (the DDSketch bucket mapping).

Bucket i holds values in (GAMMA**(i-1), GAMMA**i]; its representative value is within
RELATIVE_ACCURACY of every value in it. Buckets are fixed for all processes, so histograms from
any pod merge by adding counts: that is what lets several workers add into one PostgreSQL row.
The SQL twin (hist_merge, hist_quantile in the migrations) must keep the same mapping; a test
checks that both give the same quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
MIN_TRACKED_MS = 1e-3  # values below this fall into the zero bucket
ZERO_BUCKET = -100_000

Histogram = dict[int, int]


def bucket_of(value: float) -> int:
    if value < MIN_TRACKED_MS:
        return ZERO_BUCKET
    return math.ceil(math.log(value) / _LOG_GAMMA)


def buckets_of(values: np.ndarray) -> np.ndarray:
    """bucket_of for a whole column, as the flush's vectorised plan needs it (a test holds the two
    equal, at every bucket edge)."""
    buckets = np.ceil(np.log(np.maximum(values, MIN_TRACKED_MS)) / _LOG_GAMMA).astype(np.int64)
    return np.where(values < MIN_TRACKED_MS, ZERO_BUCKET, buckets)


def bucket_value(bucket: int) -> float:
    if bucket == ZERO_BUCKET:
        return 0.0
    return 2.0 * GAMMA**bucket / (GAMMA + 1.0)


def record(histogram: Histogram, value: float, count: int = 1) -> None:
    key = bucket_of(value)
    histogram[key] = histogram.get(key, 0) + count


def from_values(values: Iterable[float]) -> Histogram:
    histogram: Histogram = {}
    for value in values:
        record(histogram, value)
    return histogram


def merge(*histograms: Mapping[int, int]) -> Histogram:
    merged: Histogram = {}
    for histogram in histograms:
        for key, count in histogram.items():
            merged[key] = merged.get(key, 0) + count
    return merged


def add_into(into: dict[int, Any], histogram: Mapping[int, int], weight: float = 1) -> None:
    """Add `histogram`'s counts, times `weight`, into `into` in place (an age-weighted sum when weight < 1)."""
    for key, count in histogram.items():
        into[key] = into.get(key, 0) + weight * count


def quantile(histogram: Mapping[int, int], q: float) -> float | None:
    """The value at rank q*(n-1) (0-based), as DDSketch defines it; None when empty."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = q * (total - 1)
    seen = 0
    keys = sorted(histogram)
    for key in keys:
        seen += histogram[key]
        if seen > rank:
            break
    return bucket_value(key)


def to_json_keys(histogram: Mapping[int, int]) -> dict[str, int]:
    """JSON object keys are strings; PostgreSQL's jsonb merge works on this form."""
    return {str(key): count for key, count in histogram.items()}


def from_json_keys(histogram: Mapping[str, int]) -> Histogram:
    return {int(key): int(count) for key, count in histogram.items()}
