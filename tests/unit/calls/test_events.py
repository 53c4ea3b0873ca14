"""The wire contract v1: what is accepted, what is refused, and why."""

import pytest
from pydantic import ValidationError

from tests import samples
from worker.calls.events import CallCompleted, CallFailed, Layer


def test_a_complete_event_is_accepted_with_its_values():
    event = CallCompleted.model_validate(samples.completed(latency_ms=12, layer="fast"))
    assert event.latency_ms == 12.0
    assert event.layer is Layer.fast
    assert event.occurred_at.utcoffset().total_seconds() == 0


def test_optional_fields_take_their_defaults():
    minimal = {
        k: v
        for k, v in samples.completed().items()
        if k in ("event_id", "occurred_at", "model_id", "layer", "task_type", "latency_ms")
    }
    event = CallCompleted.model_validate(minimal)
    assert (event.input_tokens, event.output_tokens, event.cost_usd, event.schema_version) == (0, 0, 0.0, 1)


def test_unknown_fields_are_ignored_not_refused():
    event = CallCompleted.model_validate(samples.completed(shiny_new_field={"a": 1}))
    assert not hasattr(event, "shiny_new_field")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "not-a-uuid"),
        ("event_id", 12345),
        ("occurred_at", "2026-11-24T10:15:30"),  # no time zone
        ("occurred_at", 1_790_000_000),  # epoch seconds are not RFC 3339
        ("model_id", ""),
        ("model_id", "m" * 201),
        ("model_id", 42),
        ("layer", "turbo"),
        ("task_type", ""),
        ("latency_ms", -1),
        ("latency_ms", 86_400_001),
        ("latency_ms", "120"),
        ("latency_ms", True),
        ("input_tokens", 1.5),
        ("input_tokens", 2**31),
        ("input_tokens", True),
        ("cost_usd", -0.01),
        ("cost_usd", 1e7),  # per call; sums of such values could overflow the database's doubles
        ("schema_version", 2),
    ],
)
def test_out_of_contract_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError) as caught:
        CallCompleted.model_validate(samples.completed(**{field: value}))
    assert caught.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize("missing", ["event_id", "occurred_at", "model_id", "layer", "task_type", "latency_ms"])
def test_required_fields_are_required(missing):
    event = samples.completed()
    del event[missing]
    with pytest.raises(ValidationError) as caught:
        CallCompleted.model_validate(event)
    assert caught.value.errors()[0]["loc"] == (missing,)


def test_a_failed_call_needs_its_error_fields():
    event = samples.failed()
    assert CallFailed.model_validate(event).error_type == "timeout"
    del event["error_message"]
    with pytest.raises(ValidationError):
        CallFailed.model_validate(event)


@pytest.mark.parametrize(("field", "value"), [("http_status", 99), ("http_status", "504"), ("retryable", "yes")])
def test_failed_call_extras_are_typed(field, value):
    with pytest.raises(ValidationError):
        CallFailed.model_validate(samples.failed(**{field: value}))
