"""Valid events for tests: what the gateway sends, built by hand, not by the simulator."""

from __future__ import annotations

import uuid


def completed(**overrides) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-11-24T10:15:30.250Z",
        "request_id": "req_1",
        "model_id": "claude-sonnet-4",
        "provider": "anthropic",
        "layer": "balanced",
        "task_type": "coding",
        "latency_ms": 1850.5,
        "ttft_ms": 320,
        "input_tokens": 1200,
        "output_tokens": 340,
        "cost_usd": 0.0125,
        "routing_rule_id": None,
        "schema_version": 1,
    }
    event.update(overrides)
    return event


def failed(**overrides) -> dict:
    event = completed(
        output_tokens=0,
        error_type="timeout",
        error_message="Request to api.anthropic.com timed out after 30000ms (request_id=req_1)",
        category="routing",
        http_status=504,
        retryable=True,
        request={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100},
    )
    event.update(overrides)
    return event
