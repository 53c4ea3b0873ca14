"""Message value (bytes) -> valid calls and rejections, each with a stable reason code.

A value is one event object or a JSON array of them (a batch envelope); each element of an
envelope is judged on its own, so one bad element never costs the good ones.

Completed events first try the typed fast path (worker/calls/structs.py: msgspec, straight from
bytes, about five times pydantic's speed); a value it does not take whole goes through the
contract models, which accept it or name the reason. Either way the same events are accepted with
the same values; a property test holds the two paths to that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
import orjson
from pydantic import ValidationError

from worker.calls import structs
from worker.calls.commands import COMMAND, BugReport, Metric, MetricRecorded, ModelPerformanceReported
from worker.calls.events import MODEL_OF_KIND, CallEvent, CallFailed, CallFeedback, EventKind
from worker.calls.redaction import redact_identifier, redact_text
from worker.calls.structs import COMPLETED, FEEDBACK


class Limits(NamedTuple):
    max_message_bytes: int = 1_048_576
    max_events_per_envelope: int = 10_000
    max_nesting_depth: int = 32
    max_ahead_s: float = 300.0  # how far occurred_at may be ahead of the broker's timestamp


class Call(NamedTuple):
    """The part of an event the aggregates need; `failure` keeps the failed event whole."""

    event_id: str
    occurred_at: float  # epoch seconds
    model_id: str
    task_type: str
    layer: str
    ok: bool
    latency_ms: float
    cost_usd: float
    input_tokens: int
    output_tokens: int
    failure: CallFailed | None = None
    experiment_id: str | None = None  # with `arm`: the experiment arm that routed the call
    arm: str | None = None
    request_id: str | None = None  # what feedback may name the call by (worker/feedback)
    routing_rule_id: str | None = None
    route_probability: float | None = None  # the propensity the router drew the model with (counterfactuals)


class Feedback(NamedTuple):
    """A judgement of one call's answer, waiting to be joined to its call (worker/feedback)."""

    event_id: str
    call_event_id: str | None
    request_id: str | None
    name: str
    source: str
    score_micro: int  # the score in millionths: sums and replacements stay exact integers
    occurred_at: float  # epoch seconds: the later feedback for a call, name and source wins
    comment: str | None = None


SCORE_UNIT = 1_000_000


Item = Call | Feedback | Metric | BugReport  # what a flush counts once per event_id


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was refused. `index` is the element's position in an envelope, else None."""

    reason: str  # stable code, sent as the dlq.reason header
    detail: str
    index: int | None = None
    element: Any = None  # the offending envelope element, for the dead letter


def to_call(event: CallEvent) -> Call:
    failed = isinstance(event, CallFailed)
    return Call(
        str(event.event_id),
        event.occurred_at.timestamp(),
        redact_identifier(event.model_id),
        redact_identifier(event.task_type),
        event.layer.value,
        not failed,
        float(event.latency_ms),
        float(event.cost_usd),
        event.input_tokens,
        event.output_tokens,
        event if isinstance(event, CallFailed) else None,
        event.experiment_id,
        event.arm,
        event.request_id,
        event.routing_rule_id,
        event.route_probability,
    )


def judged(event: CallFeedback | structs.Judged, event_id: str, call_event_id: str | None, at: float) -> Feedback:
    """A feedback of either decoding path, redacted and in millionths in one place (the ids come
    canonical from each path, the time as epoch seconds)."""
    return Feedback(
        event_id,
        call_event_id,
        event.request_id,
        redact_identifier(event.name),
        event.source.value,
        round(event.score * SCORE_UNIT),
        at,
        None if event.comment is None else redact_text(event.comment),
    )


def to_feedback(event: CallFeedback) -> Feedback:
    call_event_id = None if event.call_event_id is None else str(event.call_event_id)
    return judged(event, str(event.event_id), call_event_id, event.occurred_at.timestamp())


# msgspec rounds a fraction of a second past microseconds, pydantic truncates: 59.9999999 would change minute
_FINER_THAN_MICROSECONDS = re.compile(rb":\d\d[.,]\d{7}")


def _plain(decoder: msgspec.json.Decoder, value: bytes, limits: Limits) -> Sequence[Any] | None:
    """The typed events of a value the fast path may take whole (an event or a bounded envelope, valid,
    nothing `scan` would find), or None: then the contract path judges it."""
    if _FINER_THAN_MICROSECONDS.search(value):
        return None
    try:
        decoded = decoder.decode(value)
    except msgspec.MsgspecError:
        return None
    envelope = isinstance(decoded, list)
    events = decoded if envelope else (decoded,)
    if not events or len(events) > limits.max_events_per_envelope:
        return None
    return events if is_plain(value, limits.max_nesting_depth, len(events) if envelope else 0) else None


def fast_completed(value: bytes, limits: Limits, received_at: float | None) -> list[Call] | None:
    """The calls of a value that is wholly valid and plain, or None: then the contract path judges it."""
    events = _plain(COMPLETED, value, limits)
    if events is None:
        return None
    latest = float("inf") if received_at is None else received_at + limits.max_ahead_s
    calls = []
    for e in events:  # one loop, no helper call per event: this is the hottest code of the worker
        at = e.occurred_at.timestamp()
        if at > latest:
            return None
        calls.append(
            _new_call(  # tuple.__new__ straight: a NamedTuple's own __new__ is one more Python frame per event
                Call,
                (
                    e.event_id,
                    at,
                    redact_identifier(e.model_id),
                    redact_identifier(e.task_type),
                    e.layer,
                    True,
                    e.latency_ms,  # msgspec gives float for float fields, ints included
                    e.cost_usd,
                    e.input_tokens,
                    e.output_tokens,
                    None,
                    e.experiment_id,
                    e.arm,
                    e.request_id,
                    e.routing_rule_id,
                    e.route_probability,
                ),
            )
        )
    return calls


_new_call = tuple.__new__


def fast_feedback(value: bytes, limits: Limits, received_at: float | None) -> list[Feedback] | None:
    """The feedback of a value that is wholly valid and plain, or None: then the contract path judges it."""
    votes = _plain(FEEDBACK, value, limits)
    if votes is None:
        return None
    latest = float("inf") if received_at is None else received_at + limits.max_ahead_s
    out = []
    for j in votes:
        at = j.occurred_at.timestamp()
        if at > latest or (j.call_event_id is None and j.request_id is None):
            return None
        out.append(judged(j, j.event_id, j.call_event_id, at))
    return out


def applied(command) -> Call | Metric | BugReport:
    """What the flush writes for a tool command: a reported call joins the aggregates like any event."""
    at, cid = command.issued_at.timestamp(), str(command.command_id)
    if isinstance(command, ModelPerformanceReported):
        return Call(
            cid,
            at,
            command.model_id,
            command.task_type,
            command.layer.value,
            command.success,
            float(command.latency_ms),
            float(command.cost_usd),
            command.input_tokens,
            command.output_tokens,
        )
    if isinstance(command, MetricRecorded):
        return Metric(cid, command.name, float(command.value), command.unit, command.context, at)
    return BugReport(
        cid, command.category, command.pattern, command.description, command.solution, command.severity, at
    )


def _read(element: dict, kind: EventKind) -> Item:
    if kind is EventKind.command:
        return applied(COMMAND.validate_python(element))
    if kind is EventKind.feedback:
        return to_feedback(CallFeedback.model_validate(element))
    return to_call(MODEL_OF_KIND[kind].model_validate(element))


def scan(value: Any, limit: int, depth: int = 1) -> str | None:
    """One pass over an event for what the database or the stack cannot take: nesting beyond
    `limit` ("too_deep") or a NUL character ("nul_character"). Recursion is bounded by `limit`."""
    if depth > limit:
        return "too_deep"
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        if isinstance(key, str) and "\x00" in key:
            return "nul_character"
        if isinstance(child, str):
            if "\x00" in child:
                return "nul_character"
        elif isinstance(child, (dict, list)):
            found = scan(child, limit, depth + 1)
            if found:
                return found
    return None


def is_plain(value: bytes, depth_limit: int, elements: int = 0) -> bool:
    """True when `scan` finds nothing in any event of `value`, decided on the raw bytes at C speed:
    JSON can only carry U+0000 escaped (orjson refuses a raw one), and nesting needs one bracket per
    level. In an envelope of `elements` objects or arrays, each holds at least its own bracket, so
    none can hold more than the value's brackets less the others' and the envelope's: an envelope of
    100 flat events is plain, as each of them alone would be."""
    if b"\\u0000" in value:
        return False
    return value.count(b"{") + value.count(b"[") - elements <= depth_limit


def containers(parsed: Any) -> int:
    """How many elements of an envelope are objects or arrays (0 for a single event): see is_plain."""
    return sum(isinstance(e, (dict, list)) for e in parsed) if isinstance(parsed, list) else 0


def _explain(error: ValidationError) -> str:
    parts = []
    for e in error.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "(event)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def _judge(
    element: Any,
    kind: EventKind,
    limits: Limits,
    index: int | None,
    plain: bool = False,
    received_at: float | None = None,
) -> Item | Rejection:
    if not isinstance(element, dict):
        return Rejection("not_an_object", f"expected an event object, got {type(element).__name__}", index, element)
    problem = None if plain else scan(element, limits.max_nesting_depth)
    if problem == "too_deep":
        return Rejection("too_deep", f"nesting deeper than {limits.max_nesting_depth} levels", index, element)
    if problem == "nul_character":
        return Rejection("nul_character", "a key or string contains U+0000, which cannot be stored", index, element)
    try:
        item = _read(element, kind)
    except ValidationError as error:
        return Rejection("invalid_event", _explain(error), index, element)
    if (
        isinstance(item, (Call, Feedback))  # commands are not events: the gateway's clock does not date them
        and received_at is not None
        and item.occurred_at > received_at + limits.max_ahead_s
    ):
        ahead = item.occurred_at - received_at
        return Rejection(
            "from_the_future",
            f"occurred_at is {ahead:,.0f} s ahead of the broker's timestamp; at most "
            f"{limits.max_ahead_s:,.0f} s (EVENT_MAX_AHEAD_S) is accepted",
            index,
            element,
        )
    return item


def decode(
    value: bytes | None, kind: EventKind, limits: Limits = Limits(), received_at: float | None = None
) -> tuple[list, list[Rejection]]:
    """Valid items (calls; on the commands topic also metrics and bug reports) and rejections.

    `received_at` (epoch seconds, the broker's timestamp of the message): an event dated more than
    `limits.max_ahead_s` after it is refused ("from_the_future"), so that no clock or hostile
    producer can date calls in the future (where they would rule the health windows) or past what
    the reports can read back (a legal RFC 3339 time that lands in year 10000 once in UTC).
    """
    if not value:
        return [], [Rejection("empty", "message has no value")]
    if len(value) > limits.max_message_bytes:
        return [], [Rejection("too_large", f"{len(value)} bytes > limit {limits.max_message_bytes}")]
    if kind is EventKind.completed:
        fast: list | None = fast_completed(value, limits, received_at)
        if fast is not None:
            return fast, []
    elif kind is EventKind.feedback:
        fast = fast_feedback(value, limits, received_at)
        if fast is not None:
            return fast, []
    return by_contract(value, kind, limits, received_at)


def by_contract(
    value: bytes, kind: EventKind, limits: Limits, received_at: float | None
) -> tuple[list, list[Rejection]]:
    """The contract path (orjson, then each element through its pydantic model): judges everything."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        return [], [Rejection("not_json", str(error)[:500])]
    plain = is_plain(value, limits.max_nesting_depth, containers(parsed))
    if not isinstance(parsed, list):
        outcome = _judge(parsed, kind, limits, None, plain, received_at)
        return ([], [outcome]) if isinstance(outcome, Rejection) else ([outcome], [])
    if not parsed:
        return [], [Rejection("empty_envelope", "batch envelope holds no events")]
    if len(parsed) > limits.max_events_per_envelope:
        return [], [Rejection("envelope_too_large", f"{len(parsed)} events > limit {limits.max_events_per_envelope}")]
    calls: list[Item] = []
    rejections: list[Rejection] = []
    for index, element in enumerate(parsed):
        outcome = _judge(element, kind, limits, index, plain, received_at)
        if isinstance(outcome, Rejection):
            rejections.append(outcome)
        else:
            calls.append(outcome)
    return calls, rejections
