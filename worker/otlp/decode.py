"""An OTLP/HTTP request body -> ExportTraceServiceRequest: protobuf or JSON, plain or gzip.

OTLP/JSON is protobuf's JSON mapping with two differences (OTLP specification, "JSON Protobuf
Encoding"): trace and span ids are hex strings, not base64, and enum values may be integers. The ids are
rewritten before protobuf's parser reads them.
"""

from __future__ import annotations

import base64

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class BadRequest(ValueError):
    """The whole request refused (400), with the reason."""


INFLATED_BY_THE_SERVER = frozenset({"gzip", "deflate", "br"})


def body(raw: bytes, encoding: str) -> bytes:
    """The request body as protobuf or JSON. aiohttp inflates gzip, deflate and br request bodies itself,
    chunk by chunk, and its `client_max_size` (OTLP_MAX_BODY_BYTES) bounds what they inflate to: a small
    body that inflates past it is refused with 413 before it is held whole."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity") or encoding in INFLATED_BY_THE_SERVER:
        return raw
    raise BadRequest(f"Content-Encoding {encoding!r} is not supported; send gzip or none")


def request(data: bytes, content_type: str) -> ExportTraceServiceRequest:
    kind = content_type.split(";")[0].strip().lower()
    message = ExportTraceServiceRequest()
    if kind == PROTOBUF:
        try:
            message.ParseFromString(data)
        except DecodeError as error:
            raise BadRequest(f"not an ExportTraceServiceRequest in protobuf ({error})") from None
        return message
    if kind == JSON:
        try:
            document = orjson.loads(data)
            _hex_ids_to_base64(document)
            json_format.ParseDict(document, message, ignore_unknown_fields=True)
        except (orjson.JSONDecodeError, json_format.ParseError, ValueError, TypeError) as error:
            raise BadRequest(f"not an ExportTraceServiceRequest in OTLP/JSON ({error})"[:500]) from None
        return message
    raise BadRequest(f"Content-Type {kind!r} is not supported; send {PROTOBUF} or {JSON}")


def _hex_ids_to_base64(document: object) -> None:
    if not isinstance(document, dict):
        raise BadRequest("the JSON body is not an object")
    for resource_spans in document.get("resourceSpans") or []:
        for scope_spans in (resource_spans or {}).get("scopeSpans") or []:
            for span in (scope_spans or {}).get("spans") or []:
                for key in ("traceId", "spanId", "parentSpanId"):
                    value = span.get(key) if isinstance(span, dict) else None
                    if isinstance(value, str) and value:
                        try:
                            span[key] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError:
                            raise BadRequest(f"{key} {value[:40]!r} is not hex") from None


def response(rejected: int, message: str, content_type: str) -> tuple[bytes, str]:
    """The ExportTraceServiceResponse (partial success when some spans were rejected), in the request's encoding."""
    answer = ExportTraceServiceResponse()
    if rejected:
        answer.partial_success.rejected_spans = rejected
        answer.partial_success.error_message = message
    if content_type.split(";")[0].strip().lower() == JSON:
        return orjson.dumps(json_format.MessageToDict(answer)), JSON
    return answer.SerializeToString(), PROTOBUF
