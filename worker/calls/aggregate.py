"""Calls -> additive deltas per key: what one flush adds to each aggregate row.

Every field is a sum, a count, a histogram (counts add) or a min/max, so deltas from any number
of flushes and pods combine in any order to the same totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from worker.calls import histogram
from worker.calls.decode import Call
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

    def add(self, call: Call, bucket: int) -> None:
        """Count one call; `bucket` is its latency's histogram bucket, computed once for all tallies."""
        self.calls += 1
        self.successes += call.ok
        self.latency_sum_ms += call.latency_ms
        self.cost_sum_usd += call.cost_usd
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        h = self.latency_histogram
        h[bucket] = h.get(bucket, 0) + 1
        if call.occurred_at < self.first_seen:
            self.first_seen = call.occurred_at
        if call.occurred_at > self.last_seen:
            self.last_seen = call.occurred_at

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


def _tally(table: dict, key) -> Tally:
    found = table.get(key)
    if found is None:
        found = table[key] = Tally()
    return found


def aggregate(calls: Iterable[Call], recent_from: float = float("-inf")) -> Deltas:
    """Each call is added once, to its finest key; the tables the flush writes are roll-ups of those
    few hundred tallies, not three more additions per call.

    The finest key of a call at or after `recent_from` is its second (the 1-second health buckets
    the fast path reads); an older call's is its minute: on a backlog hours deep, per-second keys
    would multiply the tallies by 60 for buckets no breaker ever reads again (see HEALTH_RECENT_S).
    """
    finest: dict[tuple[int, str, str, str], Tally] = {}
    by_minute: dict[MinuteKey, Tally] = {}
    by_arm: dict[ArmKey, ArmTally] = {}
    by_logged: dict[LoggedKey, LoggedTally] = {}
    for call in calls:
        if call.route_probability is not None:
            key = (call.task_type, minute_of(call.occurred_at), call.model_id)
            logged = by_logged.get(key)
            if logged is None:
                logged = by_logged[key] = LoggedTally()
            logged.add(call.ok, call.cost_usd, call.route_probability)
        if call.arm is not None and call.experiment_id is not None:
            arm = by_arm.get((call.experiment_id, call.arm))
            if arm is None:
                arm = by_arm[(call.experiment_id, call.arm)] = ArmTally()
            arm.add(call.ok, call.latency_ms, call.cost_usd)
        at = call.occurred_at
        if at >= recent_from:
            tally = _tally(
                finest, (int(at // HEALTH_BUCKET_S) * HEALTH_BUCKET_S, call.model_id, call.task_type, call.layer)
            )
        else:
            tally = _tally(by_minute, (minute_of(at), call.model_id, call.task_type, call.layer))
        tally.add(call, histogram.bucket_of(call.latency_ms))
    deltas = Deltas(
        by_health=finest, by_arm=by_arm, by_logged=by_logged
    )  # health per (model, task type): the finest key itself
    for (second, model_id, task_type, layer), tally in finest.items():
        _tally(by_minute, (minute_of(second), model_id, task_type, layer)).merge(tally)
    deltas.by_minute = by_minute
    for (_, model_id, task_type, _), tally in by_minute.items():
        _tally(deltas.by_model, (model_id, task_type)).merge(tally)
    for (minute, _, _, layer), tally in by_minute.items():  # per layer and overall: sums of the minute rows
        _tally(deltas.by_layer_minute, (minute, layer)).merge(tally)
        _tally(deltas.by_layer_minute, (minute, ALL_LAYERS)).merge(tally)
    return deltas
