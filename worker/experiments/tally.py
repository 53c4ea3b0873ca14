"""What the flush adds to an experiment's arm: sums (and sums of squares) of each metric, and the
latency histogram: enough for every always-valid interval, and additive across flushes and pods.

The per-call utility is the routing score's formula with the default weights (worker.routing.scoring):
success (1 or 0) - 0.03 * latency / (latency + 4000 ms) - 0.02 * cost / (cost + 0.01 USD), the
same yardstick for every arm, whatever weights an arm routes with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.calls import histogram
from worker.routing.scoring import Weights

_W = Weights()


def utility_of(ok, latency_ms, cost_usd):
    """One call's utility, or a column's (numpy arrays in, an array out: the flush's vectorised plan)."""
    return (
        ok * 1.0
        - _W.latency * latency_ms / (latency_ms + _W.latency_ref_ms)
        - _W.cost * cost_usd / (cost_usd + _W.cost_ref_usd)
    )


@dataclass(slots=True)
class ArmTally:
    calls: int = 0
    successes: int = 0
    cost_sum: float = 0.0
    cost_squares: float = 0.0
    utility_sum: float = 0.0
    utility_squares: float = 0.0
    latency: histogram.Histogram = field(default_factory=dict)
    # feedback on the arm's answers (the flush joins it, worker/feedback): name -> count, sum, sum of squares
    quality: dict[str, tuple[int, float, float]] = field(default_factory=dict)

    def add(self, ok: bool, latency_ms: float, cost_usd: float) -> None:
        u = utility_of(ok, latency_ms, cost_usd)
        self.calls += 1
        self.successes += ok
        self.cost_sum += cost_usd
        self.cost_squares += cost_usd * cost_usd
        self.utility_sum += u
        self.utility_squares += u * u
        histogram.record(self.latency, latency_ms)

    def merge(self, other: ArmTally) -> None:
        self.calls += other.calls
        self.successes += other.successes
        self.cost_sum += other.cost_sum
        self.cost_squares += other.cost_squares
        self.utility_sum += other.utility_sum
        self.utility_squares += other.utility_squares
        histogram.add_into(self.latency, other.latency)
