"""Deltas -> column arrays for one multi-row `INSERT ... SELECT FROM unnest(...)` per table.

Pure (no database import), so the shapes are testable without a server. Rows are sorted by key:
pods that upsert the same keys then lock them in the same order and cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from worker.calls import histogram
from worker.calls.decode import Call, Item
from worker.flush.deltas import Deltas, Tally, minute_of

PERCENTILES = (("latency_p50_ms", 0.5), ("latency_p95_ms", 0.95), ("latency_p99_ms", 0.99))


def _hist_json(h: histogram.Histogram) -> str:
    return orjson.dumps(histogram.to_json_keys(h)).decode()


def columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    """Transpose rows into `width` column lists (unnest takes one array per column), at C speed."""
    cols = [list(col) for col in zip(*rows, strict=True)]
    if not cols:
        return [[] for _ in range(width)]
    if len(cols) != width:
        raise ValueError(f"rows of {len(cols)} values, expected {width}")
    return cols


_NOT_A_CALL = (None,) * 11


def seen_json(items: Sequence[Item]) -> str:
    """seen_events rows as one JSON array of arrays: every event's id, and for a call what the feedback
    join needs (request id, occurred_at, minute, model, task type, layer, answered, experiment, arm,
    rule, propensity). Floats keep their value: orjson writes the shortest text that reads back the same."""
    return orjson.dumps(
        [
            (i.event_id, i.request_id, i.occurred_at, float(minute_of(i.occurred_at)), i.model_id, i.task_type)
            + (i.layer, i.ok, i.experiment_id, i.arm, i.routing_rule_id, i.route_probability)
            if isinstance(i, Call)
            else (i.event_id, *_NOT_A_CALL)
            for i in items
        ]
    ).decode()


def _sums(t: Tally) -> tuple:
    return (
        t.calls,
        t.successes,
        t.latency_sum_ms,
        t.cost_sum_usd,
        t.input_tokens,
        t.output_tokens,
        _hist_json(t.latency_histogram),
    )


def model_rows(deltas: Deltas) -> list[list[Any]]:
    rows = ((m, task, *_sums(t), t.first_seen, t.last_seen) for (m, task), t in sorted(deltas.by_model.items()))
    return columns(rows, 11)


def minute_rows(deltas: Deltas) -> list[list[Any]]:
    rows = ((minute, m, task, layer, *_sums(t)) for (minute, m, task, layer), t in sorted(deltas.by_minute.items()))
    return columns(rows, 11)


def logged_rows(deltas: Deltas) -> list[list[Any]]:
    """route_propensity_minutes sums of the calls that carry a route_probability."""
    rows = (
        (
            task,
            minute,
            m,
            t.calls,
            t.unweighted,
            t.weight,
            t.weight_sq,
            t.success_w,
            t.success_w_sq,
            t.cost_w,
            t.cost_w_sq,
            t.cost_sq_w_sq,
        )
        for (task, minute, m), t in sorted(deltas.by_logged.items())
    )
    return columns(rows, 12)


def health_rows(deltas: Deltas) -> list[list[Any]]:
    rows = (
        (bucket, m, task, layer, t.calls, t.failures, _hist_json(t.latency_histogram))
        for (bucket, m, task, layer), t in sorted(deltas.by_health.items())
    )
    return columns(rows, 7)


def arm_rows(deltas: Deltas, running: Mapping[str, frozenset[str]]) -> tuple[list[list[Any]], int]:
    """experiment_arms sums of the arms of `running` experiments (experiment_id -> its arms), and how
    many tagged calls named no running experiment's arm (a finished experiment, a typo, a stranger):
    those count everywhere else, but create no experiment row."""
    kept, ignored = [], 0
    for (experiment_id, arm), t in sorted(deltas.by_arm.items()):
        if arm not in running.get(experiment_id, ()):
            ignored += t.calls
            continue
        sums = (t.calls, t.successes, t.cost_sum, t.cost_squares, t.utility_sum, t.utility_squares)
        kept.append((experiment_id, arm, *sums, _hist_json(t.latency)))
    return columns(kept, 9), ignored


def series_rows(deltas: Deltas, worker_counts: dict[str, int], worker_minute: int, group: str) -> list[list[Any]]:
    """performance_metrics sums (added on conflict): name, value, unit, context, minute, series_key, -, -."""
    rows: list[tuple] = []
    for (minute, layer), t in sorted(deltas.by_layer_minute.items()):
        context, key = _layer_context(layer), f"layer={layer}"
        for name, value, unit in (
            ("calls", t.calls, "calls"),
            ("errors", t.failures, "calls"),
            ("cost_usd", t.cost_sum_usd, "USD"),
            ("input_tokens", t.input_tokens, "tokens"),
            ("output_tokens", t.output_tokens, "tokens"),
        ):
            rows.append((name, float(value), unit, context, minute, key, None, None))
    context = orjson.dumps({"consumer_group": group, "window": "1m"}).decode()
    for name, value in sorted(worker_counts.items()):
        rows.append((name, float(value), "events", context, worker_minute, f"worker:{group}", None, None))
    rows.sort(key=lambda r: (r[0], r[4], r[5]))
    return columns(rows, 8)


def latency_rows(deltas: Deltas) -> list[list[Any]]:
    """Placeholder rows for the latency percentiles of each minute and layer (same columns as the
    sums), inserted where missing so that the store can lock every row it then sets. The first
    percentile's row holds the series' histogram, starting empty."""
    rows: list[tuple] = []
    for minute, layer in sorted(deltas.by_layer_minute):
        context, key = _layer_context(layer), f"layer={layer}"
        for i, (name, q) in enumerate(PERCENTILES):
            rows.append((name, 0.0, "ms", context, minute, key, "{}" if i == 0 else None, q))
    rows.sort(key=lambda r: (r[0], r[4], r[5]))
    return columns(rows, 8)


def latency_keys(deltas: Deltas) -> tuple[list[int], list[str]]:
    """(minutes, series keys) of the latency series this flush adds to, in lock order."""
    keys = sorted((minute, f"layer={layer}") for minute, layer in deltas.by_layer_minute)
    return [m for m, _ in keys], [k for _, k in keys]


def latency_updates(deltas: Deltas, stored: dict[tuple[int, str], histogram.Histogram]) -> list[list[Any]]:
    """Each series' stored histogram plus this flush's, and every percentile from the sum: columns
    name, minute, series_key, value, histogram (on the first percentile's row only)."""
    rows: list[tuple] = []
    for (minute, layer), t in sorted(deltas.by_layer_minute.items()):
        key = f"layer={layer}"
        merged = histogram.merge(stored.get((minute, key), {}), t.latency_histogram)
        hist = _hist_json(merged)
        for i, (name, q) in enumerate(PERCENTILES):
            rows.append((name, minute, key, histogram.quantile(merged, q), hist if i == 0 else None))
    return columns(rows, 5)


def _layer_context(layer: str) -> str:
    return orjson.dumps({"layer": layer, "window": "1m"}).decode()
