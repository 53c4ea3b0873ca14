"""What one flush adds to each aggregate row, per key (computed by worker/flush/aggregate.py).

Every field is a sum, a count, a histogram (counts add) or a min/max, so deltas from any number
of flushes and pods combine in any order to the same totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.calls import histogram
from worker.experiments.tally import ArmTally
from worker.routing.counterfactual import LoggedTally

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

    def merge(self, other: Tally) -> None:
        self.calls += other.calls
        self.successes += other.successes
        self.latency_sum_ms += other.latency_sum_ms
        self.cost_sum_usd += other.cost_sum_usd
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        histogram.add_into(self.latency_histogram, other.latency_histogram)
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)


ModelKey = tuple[str, str]  # model_id, task_type
MinuteKey = tuple[int, str, str, str]  # minute (epoch s), model_id, task_type, layer
LayerMinuteKey = tuple[int, str]  # minute (epoch s), layer or "all"
HealthKey = tuple[int, str, str, str]  # 1-second bucket (epoch s), model_id, task_type, layer
ArmKey = tuple[str, str]  # experiment_id, arm
LoggedKey = tuple[str, int, str]  # task_type, minute (epoch s), model_id

HEALTH_BUCKET_S = 1
# How old (by the flush's clock) a call may be and still get a health bucket. The fast path reads the
# last 60 s (worker/pipeline/routing.py) and model_health keeps an hour; 10 minutes leaves room for
# clock skew and a worker minutes behind, and keeps a backlog's old calls to minute keys.
HEALTH_RECENT_S = 600.0


@dataclass(slots=True)
class Deltas:
    by_model: dict[ModelKey, Tally] = field(default_factory=dict)
    by_minute: dict[MinuteKey, Tally] = field(default_factory=dict)
    by_layer_minute: dict[LayerMinuteKey, Tally] = field(default_factory=dict)
    by_health: dict[HealthKey, Tally] = field(default_factory=dict)
    by_arm: dict[ArmKey, ArmTally] = field(default_factory=dict)  # calls an experiment's router tagged
    by_logged: dict[LoggedKey, LoggedTally] = field(default_factory=dict)  # calls with a route_probability

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.by_model.values())


def minute_of(epoch_seconds: float) -> int:
    return int(epoch_seconds // 60) * 60
