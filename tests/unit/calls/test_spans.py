"""The GenAI span mapping (docs/otlp.md), row by row, on protobuf spans as exporters send them."""

import time
import uuid

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from worker.calls.events import CallCompleted, CallFailed
from worker.calls.spans import SPAN_NAMESPACE, STATUS_ERROR, SpanMapping, map_request


def export(*spans: dict, resource: dict | None = None) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (resource or {}).items():
        _set(resource_spans.resource.attributes.add(), key, value)
    scope = resource_spans.scope_spans.add()
    now = time.time_ns()
    for i, fields in enumerate(spans):
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = bytes([7]) * 16, bytes([i + 1]) * 8, "chat"
        span.start_time_unix_nano, span.end_time_unix_nano = now - 1_500_000_000, now
        for key, value in fields.items():
            if key == "status":
                span.status.code, span.status.message = value
            elif key == "exception":
                event = span.events.add()
                event.name = "exception"
                for k, v in value.items():
                    _set(event.attributes.add(), k, v)
            else:
                _set(span.attributes.add(), key, value)
    return request


def _set(attribute, key, value) -> None:
    attribute.key = key
    if isinstance(value, bool):
        attribute.value.bool_value = value
    elif isinstance(value, int):
        attribute.value.int_value = value
    elif isinstance(value, float):
        attribute.value.double_value = value
    else:
        attribute.value.string_value = value


CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}


def test_a_chat_span_with_every_mapped_attribute():
    mapped = map_request(
        export(
            CHAT
            | {
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.server.time_to_first_token": 0.25,
                "gen_ai.response.id": "chatcmpl-1",
                "gateway.task_type": "coding",
                "gen_ai.prompt.0.content": "never read",
            }
        ),
        SpanMapping(layers={"gpt-4o-2024-08-06": "deep"}, prices={"gpt-4o-2024-08-06": (2.5, 10.0)}),
        max_spans=10,
    )
    (event,) = mapped.events
    assert isinstance(event, CallCompleted)
    assert (event.model_id, event.provider, event.task_type, event.layer.value) == (
        "gpt-4o-2024-08-06",
        "openai",
        "coding",
        "deep",
    )
    assert (event.input_tokens, event.output_tokens, event.ttft_ms, event.request_id) == (120, 30, 250.0, "chatcmpl-1")
    assert event.latency_ms == pytest.approx(1500.0)
    assert event.cost_usd == pytest.approx((120 * 2.5 + 30 * 10.0) / 1e6)
    assert str(event.event_id) == str(uuid.uuid5(SPAN_NAMESPACE, f"{'07' * 16}:{'01' * 8}"))
    assert "never read" not in event.model_dump_json()


def test_older_names_resource_attributes_and_defaults():
    mapped = map_request(
        export(
            {
                "gen_ai.system": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4",
                "gen_ai.usage.prompt_tokens": 9,
                "gen_ai.usage.completion_tokens": 4,
                "gen_ai.usage.cost": 0.002,
            },
            CHAT,
        ),
        SpanMapping(),
        max_spans=10,
    )
    first, second = mapped.events
    assert (first.provider, first.input_tokens, first.output_tokens, first.cost_usd) == ("anthropic", 9, 4, 0.002)
    assert (first.task_type, first.layer.value) == ("default", "balanced")  # no operation name: default
    assert (second.task_type, second.cost_usd) == ("chat", 0.0)  # the operation name; no cost, no price
    by_resource = map_request(
        export(CHAT, resource={"gateway.task_type": "rag", "layer": "fast"}), SpanMapping(), max_spans=1
    )
    assert (by_resource.events[0].task_type, by_resource.events[0].layer.value) == ("rag", "fast")


def test_a_failed_span_carries_its_error_type_and_a_redacted_message():
    mapped = map_request(
        export(
            CHAT
            | {
                "error.type": "RateLimitError",
                "status": (STATUS_ERROR, "429"),
                "exception": {
                    "exception.type": "openai.RateLimitError",
                    "exception.message": "key sk-abcdefghijklmnopqrstuv1234 over quota",
                },
            },
            CHAT | {"status": (STATUS_ERROR, "upstream timed out")},
        ),
        SpanMapping(),
        max_spans=10,
    )
    first, second = mapped.events
    assert isinstance(first, CallFailed) and first.error_type == "RateLimitError"
    assert "sk-abcdefghijklmnopqrstuv1234" not in first.error_message and "over quota" in first.error_message
    assert isinstance(second, CallFailed) and (second.error_type, second.error_message) == (
        "error",
        "upstream timed out",
    )


def test_other_spans_are_ignored_and_unmappable_genai_spans_rejected_with_the_reason():
    mapped = map_request(
        export(
            {"http.request.method": "GET"},
            {"gen_ai.operation.name": "chat"},
            CHAT | {"gateway.layer": "turbo"},
            CHAT | {"gen_ai.usage.input_tokens": -5},
            CHAT | {f"extra.{i}": i for i in range(300)},
        ),
        SpanMapping(),
        max_spans=10,
    )
    assert (len(mapped.events), mapped.ignored) == (0, 1)
    assert mapped.rejected == [
        "span 'chat': no gen_ai.response.model or gen_ai.request.model",
        "span 'chat': layer 'turbo' is not one of fast, balanced, deep",
        "span 'chat': input_tokens: Input should be greater than or equal to 0",
        "span 'chat': 302 attributes; at most 256",
    ]
    with pytest.raises(ValueError, match="at most 3"):
        map_request(export(CHAT, CHAT, CHAT, CHAT), SpanMapping(), max_spans=3)
