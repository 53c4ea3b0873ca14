"""Counters of the ingest pipeline, for logs, readiness and the status endpoint."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from worker import metrics
from worker.calls.batch import Batch
from worker.store.flush import FlushOutcome


@dataclass(slots=True)
class IngestStats:
    messages: int = 0
    counted: int = 0
    duplicates: int = 0
    new_patterns: int = 0
    dead_lettered: int = 0
    flushes: int = 0
    flush_errors: int = 0
    fenced: int = 0
    lost_to_retention: int = 0
    last_flush_at: float | None = None
    last_flush_seconds: float = 0.0
    started_at: float = field(default_factory=time.time)

    def record_flush(self, batch: Batch, outcome: FlushOutcome, seconds: float) -> None:
        self.messages += batch.messages
        self.counted += outcome.counted
        self.duplicates += outcome.duplicates
        self.new_patterns += outcome.new_patterns
        self.dead_lettered += len(batch.dead_letters)
        self.flushes += 1
        self.last_flush_at = time.time()
        self.last_flush_seconds = seconds
        metrics.EVENTS_CONSUMED.inc(len(batch.decoded))
        metrics.EVENTS_COUNTED.inc(outcome.counted)
        metrics.EVENTS_DUPLICATE.inc(outcome.duplicates)
        metrics.NEW_BUG_PATTERNS.inc(outcome.new_patterns)
        metrics.CRITICAL_BUG_PATTERNS.inc(outcome.critical_patterns)
        metrics.REGRESSED_BUG_PATTERNS.inc(outcome.regressed_patterns)
        metrics.PATTERNS_FOLDED.inc(outcome.folded_failures)
        metrics.EXPERIMENT_CALLS_IGNORED.inc(outcome.arm_calls_ignored)
        joined = outcome.feedback
        for name in ("applied", "superseded", "waiting", "released"):
            metrics.FEEDBACK.labels(name).inc(getattr(joined, name))
        metrics.FEEDBACK.labels("refused").inc(sum((joined.refused or {}).values()))
        for model_id, (calls, successes) in outcome.per_model.items():
            label = metrics.model_label(model_id)
            metrics.CALLS.labels(label, "success").inc(successes)
            metrics.CALLS.labels(label, "failure").inc(calls - successes)
        metrics.FLUSH_SECONDS.observe(seconds)
        metrics.BATCH_SIZE.observe(batch.size)
        for letter in batch.dead_letters:
            metrics.DEAD_LETTERS.labels(letter.rejection.reason).inc()

    def summary(self) -> dict[str, float | int | None]:
        return {name: getattr(self, name) for name in self.__slots__}
