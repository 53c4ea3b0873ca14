"""An in-memory stand-in for the store: the same aggregation the flush runs (worker.calls.aggregate),
kept in the shape of model_performance_minutes and model_health, read back as the store reads them."""

from __future__ import annotations

from worker.calls.aggregate import Tally, aggregate
from worker.calls.decode import Call
from worker.routing.evidence import MinuteRow, SecondRow

HEALTH_KEEP_S = 120


class SimStore:
    def __init__(self) -> None:
        self.minutes: dict[tuple[int, str, str, str], Tally] = {}
        self.seconds: dict[tuple[int, str, str, str], Tally] = {}
        self.seen: dict[str, set[str]] = {}  # task type -> models seen in events

    def flush(self, calls: list[Call]) -> None:
        if not calls:
            return
        deltas = aggregate(calls)
        for table, part in ((self.minutes, deltas.by_minute), (self.seconds, deltas.by_health)):
            for key, tally in part.items():
                found = table.get(key)
                if found is None:
                    table[key] = tally
                else:
                    found.merge(tally)
        for _, model, task, _ in deltas.by_minute:
            self.seen.setdefault(task, set()).add(model)

    def minute_rows(self, now: float, window_s: float) -> list[MinuteRow]:
        return [
            MinuteRow(minute, m, task, layer, t.calls, t.successes, t.cost_sum_usd, t.latency_histogram)
            for (minute, m, task, layer), t in self.minutes.items()
            if minute >= now - window_s
        ]

    def second_rows(self, now: float, span_s: float) -> list[SecondRow]:
        return [
            SecondRow(second, m, task, t.calls, t.failures, t.latency_histogram)
            for (second, m, task, _layer), t in self.seconds.items()
            if second >= now - span_s
        ]

    def prune(self, now: float, window_s: float) -> None:
        self.seconds = {k: v for k, v in self.seconds.items() if k[0] >= now - HEALTH_KEEP_S}
        self.minutes = {k: v for k, v in self.minutes.items() if k[0] >= now - window_s - 60}
