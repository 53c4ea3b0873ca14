"""OpenTelemetry GenAI spans -> call events (the mapping of docs/otlp.md, one table in one place).

A span is a model call when it carries a GenAI attribute (`gen_ai.operation.name`, `gen_ai.provider.name`
or the older `gen_ai.system`); its model is `gen_ai.response.model`, else `gen_ai.request.model`. Other
spans (HTTP, database, the application's own) are ignored and counted. A GenAI span that cannot become a
valid event (no model, a bound exceeded, a value the contract refuses) is rejected with the reason:
the receiver answers it as OTLP partial success.

The event id is derived from the trace and span ids, so an exporter's retry of the same spans counts
once (the worker drops re-sent event ids). Prompts and completions that instrumentations record as
attributes are never read: only the attributes below.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from worker.calls.events import CallCompleted, CallFailed, Layer
from worker.calls.redaction import redact_text

SPAN_NAMESPACE = uuid.UUID("5b0c7f4e-6d0a-4d2f-9a43-0b7f0c6e4a11")  # event id = uuid5(this, trace:span)
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
GENAI_MARKERS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
TTFT_SECONDS = ("gen_ai.server.time_to_first_token", "gen_ai.server.ttft")


@dataclass(frozen=True)
class SpanMapping:
    """What the deployment decides (OTLP_* settings): where task type, layer and cost come from."""

    task_type_attributes: tuple[str, ...] = ("gateway.task_type", "task_type")
    layer_attributes: tuple[str, ...] = ("gateway.layer", "layer")
    cost_attributes: tuple[str, ...] = ("gen_ai.usage.cost", "gateway.cost_usd")
    layers: Mapping[str, str] = field(default_factory=dict)  # model -> layer, when no attribute names one
    default_layer: str = "balanced"
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # model -> USD per 1M in, out
    max_attributes: int = 256  # per span (and per resource): more is refused, not scanned


@dataclass
class Mapped:
    events: list[CallCompleted | CallFailed] = field(default_factory=list)
    ignored: int = 0  # spans that are not model calls
    rejected: list[str] = field(default_factory=list)  # one reason per rejected GenAI span

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)


def _value(any_value: Any) -> Any:
    """An OTLP AnyValue's Python value (strings, numbers, booleans; arrays and maps are not read)."""
    kind = any_value.WhichOneof("value")
    if kind in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(any_value, kind)
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values[:64]]
    return None


def _attributes(key_values: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


def _first(attrs: Mapping[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None and value != "":
            return value
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def map_request(request: Any, mapping: SpanMapping, *, max_spans: int) -> Mapped:
    """An ExportTraceServiceRequest -> events, ignored and rejected spans. Raises ValueError (the whole
    request refused, with the reason) past `max_spans`."""
    total = sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
    if total > max_spans:
        raise ValueError(f"{total} spans in one request; at most {max_spans} (OTLP_MAX_SPANS)")
    out = Mapped()
    for resource_spans in request.resource_spans:
        resource_kvs = resource_spans.resource.attributes
        if len(resource_kvs) > mapping.max_attributes:
            spans = sum(len(s.spans) for s in resource_spans.scope_spans)
            out.rejected += [f"resource with {len(resource_kvs)} attributes; at most {mapping.max_attributes}"] * spans
            continue
        resource = _attributes(resource_kvs)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                _map_span(span, resource, mapping, out)
    return out


def _map_span(span: Any, resource: Mapping[str, Any], mapping: SpanMapping, out: Mapped) -> None:
    if len(span.attributes) > mapping.max_attributes:
        if any(kv.key in GENAI_MARKERS for kv in span.attributes[: mapping.max_attributes]):
            out.rejected.append(
                f"span {span.name[:80]!r}: {len(span.attributes)} attributes; at most {mapping.max_attributes}"
            )
        else:
            out.ignored += 1
        return
    attrs = _attributes(span.attributes)
    if not any(attrs.get(marker) for marker in GENAI_MARKERS):
        out.ignored += 1
        return
    try:
        out.events.append(span_event(span, attrs, resource, mapping))
    except ValueError as error:
        out.rejected.append(f"span {span.name[:80]!r}: {error}")


def span_event(
    span: Any, attrs: Mapping[str, Any], resource: Mapping[str, Any], mapping: SpanMapping
) -> CallCompleted | CallFailed:
    """One GenAI span's call event; ValueError with the reason when it cannot be one."""
    model = _first(attrs, ("gen_ai.response.model", "gen_ai.request.model"))
    if not isinstance(model, str):
        raise ValueError("no gen_ai.response.model or gen_ai.request.model")
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        raise ValueError("trace_id and span_id must be 16 and 8 bytes")
    if span.end_time_unix_nano < span.start_time_unix_nano or span.end_time_unix_nano == 0:
        raise ValueError("end_time_unix_nano missing or before start_time_unix_nano")
    both = {**resource, **attrs}  # a span's own attribute wins over its resource's
    input_tokens = _number(_first(attrs, INPUT_TOKENS)) or 0.0
    output_tokens = _number(_first(attrs, OUTPUT_TOKENS)) or 0.0
    cost = _number(_first(both, mapping.cost_attributes))
    if cost is None and model in mapping.prices:
        per_input, per_output = mapping.prices[model]
        cost = (input_tokens * per_input + output_tokens * per_output) / 1_000_000
    layer = _first(both, mapping.layer_attributes) or mapping.layers.get(model) or mapping.default_layer
    operation = attrs.get("gen_ai.operation.name")
    ttft = _number(_first(attrs, TTFT_SECONDS))
    fields: dict[str, Any] = {
        "event_id": str(uuid.uuid5(SPAN_NAMESPACE, f"{span.trace_id.hex()}:{span.span_id.hex()}")),
        "occurred_at": dt.datetime.fromtimestamp(span.end_time_unix_nano / 1e9, dt.UTC).isoformat(),
        "model_id": model,
        "provider": _text(_first(attrs, ("gen_ai.provider.name", "gen_ai.system")), 100),
        "layer": str(layer),
        "task_type": str(_first(both, mapping.task_type_attributes) or operation or "default"),
        "latency_ms": (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
        "ttft_ms": ttft * 1000 if ttft is not None and ttft >= 0 else None,
        "input_tokens": int(input_tokens),
        "output_tokens": int(output_tokens),
        "cost_usd": cost or 0.0,
        "request_id": _text(attrs.get("gen_ai.response.id"), 200),
    }
    error_type = attrs.get("error.type")
    if span.status.code != STATUS_ERROR and not error_type:
        return _valid(CallCompleted, fields)
    exception = next((_attributes(e.attributes) for e in span.events if e.name == "exception"), {})
    message = exception.get("exception.message") or span.status.message or ""
    fields |= {
        "error_type": _text(error_type or exception.get("exception.type") or "error", 100),
        "error_message": redact_text(str(message))[:16_384],
    }
    return _valid(CallFailed, fields)


def _text(value: Any, limit: int) -> str | None:
    return None if value is None or value == "" else str(value)[:limit]


def _valid(model: type[CallCompleted] | type[CallFailed], fields: dict[str, Any]) -> CallCompleted | CallFailed:
    if fields["layer"] not in {layer.value for layer in Layer}:
        raise ValueError(f"layer {fields['layer']!r} is not one of fast, balanced, deep")
    try:
        return model.model_validate(fields)
    except ValidationError as problem:
        first = problem.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from None
