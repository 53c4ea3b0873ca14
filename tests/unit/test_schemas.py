"""The published JSON Schema files match the models, and agree with them on real and broken events."""

import datetime as dt
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from tests import samples
from worker import schemas
from worker.calls.events import CallCompleted, CallFailed
from worker.simulation.traffic import generate

FOLDER = Path(__file__).resolve().parents[2] / "schemas"


def validator(filename):
    schema = __import__("json").loads((FOLDER / filename).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_schema_files_are_generated_from_the_models():
    assert schemas.stale(FOLDER) == [], "run: telemetry-worker schemas"


def test_simulated_events_and_envelopes_satisfy_the_schemas():
    completed = validator("call-completed.v1.schema.json")
    failed = validator("call-failed.v1.schema.json")
    clock = lambda: dt.datetime.now(dt.UTC).isoformat()
    events = list(generate(300, seed=3, clock=clock))
    for kind, event in events:
        (completed if kind.value == "completed" else failed).validate(event)
    failed.validate([e for k, e in events if k.value == "failed"])


@pytest.mark.parametrize(
    "broken",
    [
        {"latency_ms": -1},
        {"layer": "turbo"},
        {"model_id": ""},
        {"input_tokens": "12"},
        {"event_id": "nope"},
        {"schema_version": 2},
    ],
)
def test_schema_and_model_refuse_the_same_broken_events(broken):
    event = samples.failed(**broken)
    with pytest.raises(jsonschema.ValidationError):
        validator("call-failed.v1.schema.json").validate(event)
    with pytest.raises(ValidationError):
        CallFailed.model_validate(event)


def test_a_missing_error_type_is_refused_by_both():
    event = samples.failed()
    del event["error_type"]
    with pytest.raises(jsonschema.ValidationError):
        validator("call-failed.v1.schema.json").validate(event)
    with pytest.raises(ValidationError):
        CallFailed.model_validate(event)
    CallCompleted.model_validate(event)  # the completed contract does not need it
