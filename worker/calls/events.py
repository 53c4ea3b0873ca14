"""Wire contract v1: the events the gateway emits for every model call.

The pydantic models are the single source of the contract: `schemas/*.json` is generated from
them (`telemetry-worker schemas`) and a test keeps the two in sync. Types are strict (a string is
never silently read as a number, a boolean or a number written with a fraction or exponent never
as an integer) because a producer bug should
reach the dead-letter topic, not the aggregates.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

MAX_LATENCY_MS = 86_400_000
MAX_TOKENS = 2**31 - 1
MAX_COST_USD = 1_000_000.0  # per call; also keeps the database's sums far from float overflow


class Layer(str, enum.Enum):
    fast = "fast"
    balanced = "balanced"
    deep = "deep"


class EventKind(str, enum.Enum):
    """What a topic carries: the two call events, quality feedback on calls, or the tools' commands
    (worker/calls/commands.py)."""

    completed = "completed"
    failed = "failed"
    command = "command"
    feedback = "feedback"


def _rfc3339_text(value: Any) -> Any:
    """Timestamps travel as RFC 3339 text; a bare number is a producer bug, not epoch seconds."""
    if not isinstance(value, (str, dt.datetime)):
        raise ValueError("must be an RFC 3339 timestamp string with a time zone")
    return value


def _uuid_text(value: Any) -> Any:
    if not isinstance(value, (str, uuid.UUID)):
        raise ValueError("must be a UUID string")
    return value


Millis = Annotated[float, Strict(), Field(ge=0, le=MAX_LATENCY_MS, allow_inf_nan=False)]
Tokens = Annotated[int, Strict(), Field(ge=0, le=MAX_TOKENS)]
Text = Annotated[str, Strict()]
ModelId = Annotated[Text, Field(min_length=1, max_length=200)]
TaskType = Annotated[Text, Field(min_length=1, max_length=100)]
CostUsd = Annotated[float, Strict(), Field(ge=0, le=MAX_COST_USD, allow_inf_nan=False)]


class CallEvent(BaseModel):
    """Fields shared by both events. Unknown fields are ignored, never aggregated."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    event_id: Annotated[uuid.UUID, BeforeValidator(_uuid_text)]
    occurred_at: Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
    request_id: Annotated[Text, Field(max_length=200)] | None = None
    model_id: ModelId
    provider: Annotated[Text, Field(max_length=100)] | None = None
    layer: Layer
    task_type: TaskType
    latency_ms: Millis
    ttft_ms: Millis | None = None
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cost_usd: CostUsd = 0.0
    routing_rule_id: Annotated[Text, Field(max_length=200)] | None = None
    experiment_id: Annotated[Text, Field(min_length=1, max_length=64)] | None = Field(
        None, description="The experiment the router put this request in (with `arm`); v1 producers omit it."
    )
    arm: Annotated[Text, Field(min_length=1, max_length=50)] | None = Field(
        None, description="The experiment's arm that routed this request."
    )
    route_probability: Annotated[float, Strict(), Field(gt=0, le=1, allow_inf_nan=False)] | None = Field(
        None,
        description="The probability with which the rule named in routing_rule_id drew this model for this "
        "request (its share of the split the router drew from): what an off-policy estimate of another rule needs.",
    )


class CallCompleted(CallEvent):
    """A model call that returned a usable answer: a success."""


class CallFailed(CallEvent):
    """A model call that failed: counted as a call that did not succeed."""

    error_type: Annotated[Text, Field(min_length=1, max_length=100)]
    error_message: Annotated[Text, Field(max_length=16_384)]
    category: Annotated[Text, Field(max_length=100)] | None = None
    http_status: Annotated[int, Strict(), Field(ge=100, le=599)] | None = None
    retryable: Annotated[bool, Strict()] | None = None
    request: dict[str, Any] | None = None


MODEL_OF_KIND: dict[EventKind, type[CallEvent]] = {
    EventKind.completed: CallCompleted,
    EventKind.failed: CallFailed,
}


class FeedbackSource(str, enum.Enum):
    user = "user"
    eval = "eval"
    judge = "judge"
    heuristic = "heuristic"
    other = "other"


MAX_FEEDBACK_COMMENT = 2_000


class CallFeedback(BaseModel):
    """How good one call's answer was (topic gateway.calls.feedback), from a user, an eval or a judge.

    It names its call by the call event's `event_id` or by the call's `request_id`. A later feedback
    (by `occurred_at`) for the same call, name and source replaces the earlier one in every aggregate.
    """

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        json_schema_extra={
            "anyOf": [
                {"required": ["call_event_id"], "properties": {"call_event_id": {"type": "string"}}},
                {"required": ["request_id"], "properties": {"request_id": {"type": "string"}}},
            ]
        },
    )

    schema_version: Literal[1] = 1
    event_id: Annotated[uuid.UUID, BeforeValidator(_uuid_text)] = Field(
        description="This feedback's own id: a re-sent feedback counts once."
    )
    call_event_id: Annotated[uuid.UUID, BeforeValidator(_uuid_text)] | None = Field(
        None, description="The `event_id` of the call event it judges (this or `request_id` is required)."
    )
    request_id: Annotated[Text, Field(min_length=1, max_length=200)] | None = Field(
        None, description="The call's `request_id`: the latest answered call with it is judged."
    )
    name: Annotated[Text, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_.:-]+$")] = Field(
        description="What was judged, e.g. correctness, thumbs, judge (letters, digits, _ . : -)."
    )
    score: Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        description="How good, from 0 (bad) to 1 (good); kept to 6 decimals."
    )
    source: FeedbackSource
    occurred_at: Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
    comment: Annotated[Text, Field(max_length=MAX_FEEDBACK_COMMENT)] | None = Field(
        None, description="Free text, redacted like failure messages before it is stored."
    )

    @model_validator(mode="after")
    def _names_a_call(self) -> CallFeedback:
        if self.call_event_id is None and self.request_id is None:
            raise ValueError("call_event_id or request_id is required: the feedback must name its call")
        return self
