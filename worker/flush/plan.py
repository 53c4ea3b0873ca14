"""What one flush writes, decided before its transaction: pure, so it runs in a thread, off the event
loop and outside the transaction's locks, and is tested without a server.

The plan has its own package, above the core's others, because it gathers what each of them adds
per flush (aggregates, experiment arms, logged propensities, bug patterns). The store executes a
plan (worker/store/flush.py): it fences on the stored offsets, marks the event ids seen, and when
some were seen before (a re-sent event, or two copies in one batch) it asks for the plan's fresh
part, planned again from the first copy of each fresh event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.calls.commands import BugReport, Metric
from worker.calls.decode import Call, Feedback, Item
from worker.failures.patterns import PatternDelta, pattern_deltas
from worker.flush import rows
from worker.flush.aggregate import aggregate
from worker.flush.deltas import HEALTH_RECENT_S, Deltas, minute_of


@dataclass(frozen=True, slots=True)
class FlushPlan:
    """Every row array a flush writes that its transaction does not have to read first; the rows that
    merge with stored values (latency series, experiment arms) are built by worker/flush/rows.py from
    `deltas` once the store has read them."""

    items: Sequence[Item]  # what the batch decoded, in order: the plan counts each of them once
    consumed: int  # items the batch decoded, duplicates included (the events_consumed series)
    now: float  # the flush's clock: health buckets and the worker's own series are dated by it
    calls: list[Call]
    feedback: list[Feedback]
    metrics: list[Metric]
    bug_reports: list[BugReport]
    deltas: Deltas
    seen_json: str  # every event's id, with what the feedback join needs of a call (rows.seen_json)
    model_rows: list[list]
    minute_rows: list[list]
    health_rows: list[list]
    logged_rows: list[list]  # calls with a route_probability (off-policy estimates)
    latency_rows: list[list]  # the latency series' rows, inserted where missing so that they can be locked
    latency_keys: tuple[list[int], list[str]]  # (minutes, series keys) of those rows, in lock order
    experiment_ids: list[str]  # experiments the calls are tagged with (their arms are written if running)
    per_model: dict[str, tuple[int, int]]  # model_id -> (calls, successes): the worker's own counters
    patterns: dict[str, PatternDelta]

    @property
    def counted(self) -> int:
        return len(self.items)

    def fresh(self, fresh_ids: set[str]) -> FlushPlan:
        """The plan of the events the database had not seen, each counted once."""
        return _planned(first_fresh(self.items, set(fresh_ids)), self.consumed, self.now)

    def series_rows(self, dead_letters: int, group: str) -> list[list]:
        counts = {
            "events_consumed": self.consumed,
            "events_duplicate": self.consumed - self.counted,
            "events_dead_lettered": dead_letters,
        }
        return rows.series_rows(self.deltas, counts, minute_of(self.now), group)


def plan(items: Sequence[Item], now: float) -> FlushPlan:
    """The plan of a batch, as if every item were new (the common case: no second planning)."""
    return _planned(items, len(items), now)


def _planned(items: Sequence[Item], consumed: int, now: float) -> FlushPlan:
    calls = [c for c in items if isinstance(c, Call)]
    deltas = aggregate(calls, recent_from=now - HEALTH_RECENT_S)
    return FlushPlan(
        items=items,
        consumed=consumed,
        now=now,
        calls=calls,
        feedback=[c for c in items if isinstance(c, Feedback)],
        metrics=[c for c in items if isinstance(c, Metric)],
        bug_reports=[c for c in items if isinstance(c, BugReport)],
        deltas=deltas,
        seen_json=rows.seen_json(items),
        model_rows=rows.model_rows(deltas),
        minute_rows=rows.minute_rows(deltas),
        health_rows=rows.health_rows(deltas),
        logged_rows=rows.logged_rows(deltas),
        latency_rows=rows.latency_rows(deltas),
        latency_keys=rows.latency_keys(deltas),
        experiment_ids=sorted({experiment_id for experiment_id, _ in deltas.by_arm}),
        per_model=_per_model(deltas),
        patterns=pattern_deltas(calls),
    )


def _per_model(deltas: Deltas) -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for (model_id, _), tally in deltas.by_model.items():
        calls, ok = totals.get(model_id, (0, 0))
        totals[model_id] = (calls + tally.calls, ok + tally.successes)
    return totals


def first_fresh(items: Sequence[Item], fresh_ids: set[str]) -> list[Item]:
    """Each fresh event once, even when the batch itself holds several copies."""
    kept = []
    for item in items:
        if item.event_id in fresh_ids:
            fresh_ids.discard(item.event_id)
            kept.append(item)
    return kept
