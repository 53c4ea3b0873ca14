"""msgspec twins of a completed call event and of a feedback, for the hot path: typed decoding straight from bytes.

The pydantic model in worker/calls/events.py stays the contract and the judge. This twin is only
ever as strict or stricter (a test checks it on generated events): whatever it accepts the
contract accepts with the same values, and whatever it refuses goes to the contract model, which
either accepts it or names the reason. Failed events take the contract path whole: they are the
minority, and bug patterns and stubs read the full event.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from worker.calls.events import MAX_COST_USD, MAX_FEEDBACK_COMMENT, MAX_LATENCY_MS, MAX_TOKENS, FeedbackSource

Millis = Annotated[float, msgspec.Meta(ge=0, le=MAX_LATENCY_MS)]
Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
CostUsd = Annotated[float, msgspec.Meta(ge=0, le=MAX_COST_USD)]
Aware = Annotated[dt.datetime, msgspec.Meta(tz=True)]
# the canonical text of a UUID only (what str(uuid.UUID(...)) gives): other spellings take the contract path,
# which canonicalises them; a fast path that kept them as sent would dedupe them under another spelling
CanonicalUuid = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
ModelId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
TaskType = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Text100 = Annotated[str, msgspec.Meta(max_length=100)]
Text200 = Annotated[str, msgspec.Meta(max_length=200)]
# the layer as its plain value (an enum member would cost a lookup through enum's descriptor per event);
# a test holds it to Layer's values
LayerName = Literal["fast", "balanced", "deep"]


class Completed(msgspec.Struct, gc=False):
    """The fields of CallCompleted with the same bounds; unknown fields are ignored, as there."""

    event_id: CanonicalUuid
    occurred_at: Aware
    model_id: ModelId
    layer: LayerName
    task_type: TaskType
    latency_ms: Millis
    schema_version: Literal[1] = 1
    request_id: Text200 | None = None
    provider: Text100 | None = None
    ttft_ms: Millis | None = None
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cost_usd: CostUsd = 0.0
    routing_rule_id: Text200 | None = None
    experiment_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    arm: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None
    route_probability: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None


# one value: an event object or an envelope (array) of them; any refusal sends the value to the contract path
COMPLETED = msgspec.json.Decoder(Completed | list[Completed])


class Judged(msgspec.Struct, gc=False):
    """The fields of CallFeedback with the same bounds; the rule that it names a call is checked by the
    caller (a value that names none takes the contract path, which says why)."""

    event_id: CanonicalUuid
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern="^[A-Za-z0-9_.:-]+$")]
    score: Annotated[float, msgspec.Meta(ge=0, le=1)]
    source: FeedbackSource
    occurred_at: Aware
    schema_version: Literal[1] = 1
    call_event_id: CanonicalUuid | None = None
    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    comment: Annotated[str, msgspec.Meta(max_length=MAX_FEEDBACK_COMMENT)] | None = None


FEEDBACK = msgspec.json.Decoder(Judged | list[Judged])
