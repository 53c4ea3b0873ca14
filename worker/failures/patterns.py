"""Failed calls -> bug-pattern deltas, one per fingerprint, added up like the other aggregates.

Only redacted text leaves this module: messages and captured requests go through
worker.calls.redaction before they are kept as examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from worker.calls.decode import Call
from worker.calls.redaction import redact_identifier, redact_payload, redact_text
from worker.failures.fingerprint import Fingerprint, fingerprint
from worker.failures.remedies import remedy_for
from worker.failures.stubs import StubSpec, render_vitest

MAX_EXAMPLES = 5
MAX_EXAMPLE_STRING = 2000
MAX_EXAMPLE_REQUEST_BYTES = 65_536


@dataclass(slots=True)
class PatternDelta:
    fingerprint: Fingerprint
    first_event_id: str
    example_message: str
    example_request: Any = None
    occurrences: int = 0
    retryable: int = 0
    first_seen: float = float("inf")
    last_seen: float = float("-inf")
    models: dict[str, int] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)
    pairs: set[tuple[str, str]] = field(default_factory=set)
    example_event_ids: list[str] = field(default_factory=list)


def _shortened(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_EXAMPLE_STRING:
        return value[:MAX_EXAMPLE_STRING] + f"...[{len(value) - MAX_EXAMPLE_STRING} more characters]"
    if isinstance(value, dict):
        return {k: _shortened(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shortened(v) for v in value]
    return value


def captured_request(request: Any) -> Any:
    """The request as a stub may embed it: redacted, long strings cut, dropped when still too big."""
    if request is None:
        return None
    kept = _shortened(redact_payload(request))
    try:
        size = len(orjson.dumps(kept))
    except TypeError:  # an integer beyond 64 bits: not representable in the stubs' JSON either
        return None
    return kept if size <= MAX_EXAMPLE_REQUEST_BYTES else None


def pattern_deltas(calls: Iterable[Call]) -> dict[str, PatternDelta]:
    deltas: dict[str, PatternDelta] = {}
    for call in calls:
        failure = call.failure
        if failure is None:
            continue
        error_type = redact_identifier(failure.error_type)
        category = redact_identifier(failure.category) if failure.category else remedy_for(error_type).default_category
        fp = fingerprint(error_type, category, failure.error_message, call.model_id)
        delta = deltas.get(fp.digest)
        if delta is None:
            delta = deltas[fp.digest] = PatternDelta(
                fp,
                call.event_id,
                redact_text(failure.error_message)[:MAX_EXAMPLE_STRING],
                captured_request(failure.request),
            )
        delta.occurrences += 1
        delta.retryable += bool(failure.retryable)
        delta.first_seen = min(delta.first_seen, call.occurred_at)
        delta.last_seen = max(delta.last_seen, call.occurred_at)
        delta.models[call.model_id] = delta.models.get(call.model_id, 0) + 1
        delta.layers[call.layer] = delta.layers.get(call.layer, 0) + 1
        delta.pairs.add((call.model_id, call.task_type))
        if len(delta.example_event_ids) < MAX_EXAMPLES:
            delta.example_event_ids.append(call.event_id)
        if delta.example_request is None and failure.request is not None:
            delta.example_request = captured_request(failure.request)
    return deltas


OVERFLOW_ERROR_TYPE = "pattern_limit_reached"
# one pattern for all of them: categories come from the events too, so one per category would not be a bound
OVERFLOW = fingerprint(OVERFLOW_ERROR_TYPE, "other", "new failure kinds past PATTERNS_MAX_NEW_PER_HOUR")


def fold_past_budget(
    deltas: dict[str, PatternDelta], existing: set[str], budget: int
) -> tuple[dict[str, PatternDelta], int]:
    """Keep every delta of a known pattern and at most `budget` new ones (the most frequent first);
    fold the rest into the one overflow pattern, so that 20,000 distinct error types cost
    a bounded number of patterns and stubs, and no failure goes uncounted. Returns the deltas and
    how many occurrences were folded."""
    new = sorted(
        (d for k, d in deltas.items() if k not in existing), key=lambda d: (-d.occurrences, d.fingerprint.digest)
    )
    if len(new) <= budget:
        return deltas, 0
    kept = {k: d for k, d in deltas.items() if k in existing}
    kept |= {d.fingerprint.digest: d for d in new[: max(0, budget)]}
    folded = 0
    for d in new[max(0, budget) :]:
        into = kept.get(OVERFLOW.digest)
        if into is None:
            example = f"{d.fingerprint.error_type} ({d.fingerprint.category}): {d.example_message}"
            into = kept[OVERFLOW.digest] = PatternDelta(OVERFLOW, d.first_event_id, example[:MAX_EXAMPLE_STRING])
        into.occurrences += d.occurrences
        into.retryable += d.retryable
        into.first_seen, into.last_seen = min(into.first_seen, d.first_seen), max(into.last_seen, d.last_seen)
        for model, n in d.models.items():
            into.models[model] = into.models.get(model, 0) + n
        for layer, n in d.layers.items():
            into.layers[layer] = into.layers.get(layer, 0) + n
        into.pairs |= d.pairs
        into.example_event_ids = (into.example_event_ids + d.example_event_ids)[:MAX_EXAMPLES]
        folded += d.occurrences
    return kept, folded


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _description(d: PatternDelta) -> str:
    fp = d.fingerprint
    return f"{fp.error_type} ({fp.category}), first on {next(iter(d.models))}: {d.example_message}"[:2000]


def pattern_columns(ordered: list[PatternDelta]) -> list[list]:
    """The bug_patterns upsert's column arrays, one row per delta."""
    rows = (
        (
            d.fingerprint.digest,
            d.fingerprint.error_type,
            d.fingerprint.category,
            d.fingerprint.template,
            _description(d),
            remedy_for(d.fingerprint.error_type).solution,
            d.occurrences,
            d.first_seen,
            d.last_seen,
            _json(d.models),
            _json(d.layers),
            d.retryable,
            ",".join(d.example_event_ids),
            None if d.example_request is None else _json(d.example_request),
        )
        for d in ordered
    )
    return [list(col) for col in zip(*rows, strict=True)]


def stub_row(d: PatternDelta) -> tuple:
    """The regression_tests row of a pattern seen for the first time: its rendered stub and metadata."""
    fp = d.fingerprint
    remedy = remedy_for(fp.error_type)
    spec = StubSpec(fp.digest, fp.error_type, fp.category, fp.template, remedy.expected_behavior, d.example_request)
    metadata = {
        "fingerprint": fp.digest,
        "error_type": fp.error_type,
        "template": fp.template,
        "first_event_id": d.first_event_id,
        "occurrences_at_creation": d.occurrences,
        "models_at_creation": d.models,
        "framework": "vitest",
    }
    return (
        spec.test_name,
        fp.category,
        f"Prevent {fp.error_type} ({fp.category}) from recurring: {fp.template}"[:2000],
        render_vitest(spec),
        remedy.expected_behavior,
        "bug",
        _json(metadata),
    )
