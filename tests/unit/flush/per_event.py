"""The flush's aggregation as a plain loop over calls: the oracle the vectorised plan
(worker/flush/aggregate.py) is held to. It was the worker's own aggregation until the columnar plan."""

from __future__ import annotations

from collections.abc import Iterable

from worker.calls import histogram
from worker.calls.decode import Call
from worker.experiments.tally import ArmTally
from worker.flush.deltas import (
    ALL_LAYERS,
    HEALTH_BUCKET_S,
    ArmKey,
    Deltas,
    LoggedKey,
    MinuteKey,
    Tally,
    minute_of,
)
from worker.routing.counterfactual import LoggedTally


def _add(self: Tally, call: Call, bucket: int) -> None:
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
        _add(tally, call, histogram.bucket_of(call.latency_ms))
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
