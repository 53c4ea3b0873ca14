"""What the leader's breaker check exports for the alerting rules (TelemetryModelExcluded)."""

from worker import metrics
from worker.pipeline.routing import export_breakers
from worker.routing.breaker import Breaker


def held(model: str, scope: str, state: str) -> Breaker:
    return Breaker(model, scope, state, "failure rate", 100.0, 4.0)  # type: ignore[arg-type]


def sample(name: str, labels: dict) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_open_and_half_open_breakers_are_counted_per_model_and_a_closed_one_clears_its_series():
    export_breakers(
        [held("gpt-4o", "coding", "open"), held("gpt-4o", "*", "open"), held("llama", "chat", "half_open")], 1000.0
    )
    assert sample("telemetry_models_held_back", {"model_id": "gpt-4o", "state": "open"}) == 2
    assert sample("telemetry_models_held_back", {"model_id": "llama", "state": "half_open"}) == 1
    assert sample("telemetry_routing_checked_timestamp_seconds", {}) == 1000.0

    export_breakers([held("gpt-4o", "coding", "closed"), held("llama", "chat", "open")], 1001.0)
    assert sample("telemetry_models_held_back", {"model_id": "gpt-4o", "state": "open"}) is None
    assert sample("telemetry_models_held_back", {"model_id": "llama", "state": "half_open"}) is None
    assert sample("telemetry_models_held_back", {"model_id": "llama", "state": "open"}) == 1
    assert sample("telemetry_routing_checked_timestamp_seconds", {}) == 1001.0
