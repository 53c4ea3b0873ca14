"""Calls -> additive deltas per key: what one flush adds to each aggregate row.

Every field is a sum, a count, a histogram (counts add) or a min/max, so deltas from any number
of flushes and pods combine in any order to the same totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from worker import histogram
from worker.decode import Call

ALL_LAYERS = "all"


@dataclass(slots=True)
class Tally:
    calls: int = 0
    successes: int = 0
    latency_sum_ms: float = 0.0
    cost_sum_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_histogram: histogram.Histogram = field(default_factory=dict)
    first_seen: float = float("inf")
    last_seen: float = float("-inf")

    @property
    def failures(self) -> int:
        return self.calls - self.successes

    def add(self, call: Call) -> None:
        self.calls += 1
        self.successes += call.ok
        self.latency_sum_ms += call.latency_ms
        self.cost_sum_usd += call.cost_usd
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        histogram.record(self.latency_histogram, call.latency_ms)
        self.first_seen = min(self.first_seen, call.occurred_at)
        self.last_seen = max(self.last_seen, call.occurred_at)


ModelKey = tuple[str, str]  # model_id, task_type
MinuteKey = tuple[int, str, str, str]  # minute (epoch s), model_id, task_type, layer
LayerMinuteKey = tuple[int, str]  # minute (epoch s), layer or "all"
HealthKey = tuple[int, str, str]  # 1-second bucket (epoch s), model_id, layer

HEALTH_BUCKET_S = 1


@dataclass(slots=True)
class Deltas:
    by_model: dict[ModelKey, Tally] = field(default_factory=dict)
    by_minute: dict[MinuteKey, Tally] = field(default_factory=dict)
    by_layer_minute: dict[LayerMinuteKey, Tally] = field(default_factory=dict)
    by_health: dict[HealthKey, Tally] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.by_model.values())


def minute_of(epoch_seconds: float) -> int:
    return int(epoch_seconds // 60) * 60


def _tally(table: dict, key) -> Tally:
    found = table.get(key)
    if found is None:
        found = table[key] = Tally()
    return found


def aggregate(calls: Iterable[Call]) -> Deltas:
    deltas = Deltas()
    for call in calls:
        minute = minute_of(call.occurred_at)
        _tally(deltas.by_model, (call.model_id, call.task_type)).add(call)
        _tally(deltas.by_minute, (minute, call.model_id, call.task_type, call.layer)).add(call)
        _tally(deltas.by_layer_minute, (minute, call.layer)).add(call)
        _tally(deltas.by_layer_minute, (minute, ALL_LAYERS)).add(call)
        bucket = int(call.occurred_at // HEALTH_BUCKET_S) * HEALTH_BUCKET_S
        _tally(deltas.by_health, (bucket, call.model_id, call.layer)).add(call)
    return deltas
