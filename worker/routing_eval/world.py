"""The simulated world: models with hidden success rate, latency and cost per task type, and the
incidents of each scenario. The router never sees this; the oracle does."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from worker.routing.scoring import Weights, utility

Z_P95 = 1.6448536269514722


@dataclass(frozen=True)
class SimModel:
    model_id: str
    layer: str
    success: dict[str, float]  # per task type
    latency_median_ms: float
    latency_sigma: float = 0.35
    cost_usd: float = 0.001
    available_from_s: float = 0.0  # the gateway can call it from then on
    declared: bool = True  # the gateway declares it to the worker's catalogue when it becomes available


@dataclass(frozen=True)
class Incident:
    model_id: str
    start_s: float
    end_s: float
    success: float | None = None  # success rate during the incident (None: unchanged)
    latency_factor: float = 1.0
    task_type: str | None = None  # None: every task type


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    models: tuple[SimModel, ...]
    rates: dict[str, float]  # calls per second per task type
    duration_s: int
    incidents: tuple[Incident, ...] = ()
    warmup_s: int = 300
    seed: int = 1
    weights: Weights = field(default_factory=Weights)
    router_knows_models: bool = True  # the router passes the models it can reach (candidates)

    def model(self, model_id: str) -> SimModel:
        return next(m for m in self.models if m.model_id == model_id)

    def available(self, t: float) -> list[str]:
        return [m.model_id for m in self.models if m.available_from_s <= t]

    def truth(self, model_id: str, task: str, t: float) -> tuple[float, float]:
        """(success rate, latency factor) of a call started at t."""
        m = self.model(model_id)
        success, factor = m.success[task], 1.0
        for i in self.incidents:
            if i.model_id == model_id and i.start_s <= t < i.end_s and i.task_type in (None, task):
                success = i.success if i.success is not None else success
                factor *= i.latency_factor
        return success, factor

    def expected_utility(self, model_id: str, task: str, t: float) -> float:
        """What one call is worth on average, scored as the worker scores (success, p95, cost)."""
        m = self.model(model_id)
        success, factor = self.truth(model_id, task, t)
        p95 = m.latency_median_ms * factor * math.exp(Z_P95 * m.latency_sigma)
        return utility(success, p95, m.cost_usd, self.weights)

    def oracle(self, task: str, t: float) -> float:
        return max(self.expected_utility(m, task, t) for m in self.available(t))
