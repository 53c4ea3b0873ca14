"""JSON Schema files of the wire contract, generated from the pydantic models in worker/calls/events.py.

A message value is one event or a batch envelope (an array of events); the schemas say both.
`telemetry-worker schemas` writes them to schemas/; a test fails when they drift.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from worker.calls.events import CallCompleted, CallFailed, CallFeedback
from worker.experiments.contract import Experiment
from worker.routing.contract import RoutingAlert, RoutingHeuristic

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
MAX_ENVELOPE = 10_000

FILES: dict[str, tuple[type[BaseModel], str]] = {
    "call-completed.v1.schema.json": (CallCompleted, "A gateway call that succeeded (topic gateway.calls.completed)."),
    "call-failed.v1.schema.json": (CallFailed, "A gateway call that failed (topic gateway.calls.failed)."),
    "call-feedback.v1.schema.json": (
        CallFeedback,
        "How good a call's answer was, from a user, an eval or a judge (topic gateway.calls.feedback).",
    ),
}


def message_schema(model: type[BaseModel], description: str) -> dict:
    event = model.model_json_schema(mode="validation")
    defs = event.pop("$defs", {})
    name = model.__name__
    defs[name] = event
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:gateway-telemetry:{name}:v1",
        "title": f"{name} message v1",
        "description": description + " The value is one event object or a batch envelope: an array of them, "
        "each judged on its own. Unknown fields are allowed and ignored.",
        "anyOf": [
            {"$ref": f"#/$defs/{name}"},
            {"type": "array", "items": {"$ref": f"#/$defs/{name}"}, "minItems": 1, "maxItems": MAX_ENVELOPE},
        ],
        "$defs": defs,
    }


OUTPUTS: dict[str, tuple[type[BaseModel], str]] = {
    "routing-heuristic.v1.schema.json": (RoutingHeuristic, "A routing rule (topic gateway.routing.heuristics)."),
    "routing-alert.v1.schema.json": (RoutingAlert, "A model degraded or recovered (topic gateway.routing.alerts)."),
    "routing-experiment.v1.schema.json": (
        Experiment,
        "An experiment on routing strategies (topic gateway.routing.heuristics, key experiment:<id>).",
    ),
}


def output_schema(model: type[BaseModel], description: str) -> dict:
    schema = model.model_json_schema(mode="serialization", by_alias=False)  # the records' own field names
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:gateway-telemetry:{model.__name__}:v1",
        "description": description,
        **schema,
    }


def rendered() -> dict[str, str]:
    schemas = {name: message_schema(model, text) for name, (model, text) in FILES.items()}
    schemas |= {name: output_schema(model, text) for name, (model, text) in OUTPUTS.items()}
    return {name: json.dumps(schema, indent=2, sort_keys=True) + "\n" for name, schema in schemas.items()}


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in rendered().items():
        path = folder / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(folder: Path) -> list[str]:
    """Files in `folder` that differ from what the models generate."""
    return [
        name
        for name, text in rendered().items()
        if not (folder / name).exists() or (folder / name).read_text(encoding="utf-8") != text
    ]
