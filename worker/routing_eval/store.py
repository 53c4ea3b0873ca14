"""An in-memory stand-in for the store: the same aggregation the flush runs (worker.flush.deltas,
and worker.feedback.join for feedback), kept in the shape of model_performance_minutes,
model_health and model_quality_minutes, read back as the store reads them."""

from __future__ import annotations

from worker.calls.decode import SCORE_UNIT, Call, Feedback
from worker.feedback import join
from worker.flush.aggregate import aggregate
from worker.flush.deltas import Tally
from worker.routing.evidence import MinuteRow, QualityRow, SecondRow

HEALTH_KEEP_S = 120


class SimStore:
    def __init__(self) -> None:
        self.minutes: dict[tuple[int, str, str, str], Tally] = {}
        self.seconds: dict[tuple[int, str, str, str], Tally] = {}
        self.seen: dict[str, set[str]] = {}  # task type -> models seen in events
        self.quality: dict[join.MinuteQualityKey, join.QualityTally] = {}
        self.scores: dict[join.FeedbackKey, join.Stored] = {}

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

    def feedback(self, joined: list[tuple[Feedback, join.CallFacts]], max_updates: int = 100) -> None:
        """Feedback already joined to its call (the simulation knows the call), applied as the flush applies it."""
        applied = join.apply(joined, self.scores, max_updates)
        self.scores.update(applied.stored)
        for key, tally in applied.deltas.by_minute.items():
            found = self.quality.setdefault(key, join.QualityTally())
            found.count += tally.count
            found.sum_micro += tally.sum_micro
            found.squares += tally.squares

    def quality_rows(self, now: float, window_s: float) -> list[QualityRow]:
        return [
            QualityRow(minute, m, task, name, t.count, t.sum_micro / SCORE_UNIT)
            for (minute, m, task, _layer, name), t in self.quality.items()
            if minute >= now - window_s
        ]

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
        self.quality = {k: v for k, v in self.quality.items() if k[0] >= now - window_s - 60}
