"""What a failed write means, and the back-off it puts consumption under.

`classify(error)` is the one place a write's failure is judged: the ingest loop acts on the verdict
and never inspects the exception itself. `Backoff` is the paused-and-waiting state: while it is
active, every assigned partition stays paused, so memory stays bounded while PostgreSQL is away.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

import asyncpg
from aiokafka.errors import KafkaError

from worker.store.flush import REFUSED, OffsetFenced


class Verdict(enum.Enum):
    refused = "refused"  # the database refuses some event's values: set those events aside, write the rest
    fenced = "fenced"  # another consumer stored offsets past ours: drop the batch, read the stored offsets again
    transient = "transient"  # the database or the broker is away or slow: keep the batch, retry later
    fatal = "fatal"  # a bug: let it surface


TRANSIENT = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError)


def classify(error: BaseException) -> Verdict:
    if isinstance(error, OffsetFenced):
        return Verdict.fenced
    if isinstance(error, REFUSED):  # before TRANSIENT: these are PostgresErrors too
        return Verdict.refused
    if isinstance(error, TRANSIENT):
        return Verdict.transient
    return Verdict.fatal


@dataclass(slots=True)
class Backoff:
    """Exponential back-off between write attempts: 0.5 s, 1 s, 2 s ... up to `max_s`."""

    max_s: float
    failures: int = 0
    retry_at: float | None = None

    @property
    def active(self) -> bool:
        return self.retry_at is not None

    def failed(self, now: float) -> float:
        """One more failed attempt; returns the seconds until the next one."""
        self.failures += 1
        delay = min(self.max_s, 0.25 * 2 ** min(self.failures, 10))
        self.retry_at = now + delay
        return delay

    def due(self, now: float) -> bool:
        return self.retry_at is not None and now >= self.retry_at

    def wait_ms(self, now: float) -> int:
        return 0 if self.retry_at is None else max(0, int((self.retry_at - now) * 1000))

    def reset(self) -> int:
        """Back to normal; returns how many attempts had failed."""
        failures, self.failures, self.retry_at = self.failures, 0, None
        return failures
