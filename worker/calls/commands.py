"""Tool commands: the writes of the HTTP and MCP tools that change aggregates, as Kafka records.

They travel through `gateway.tools.commands` and are applied by the same flush transaction as
call events, so the exactly-once path stays the only writer of aggregates: a command is counted
once even when the tool call is retried (its command_id goes through the dedupe log).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, TypeAdapter

from worker.calls.events import CostUsd, Layer, Millis, ModelId, TaskType, Text, Tokens

# Field types shared with the tools' request models (worker/tools/requests.py): one place per limit.
MetricName = Annotated[Text, Field(min_length=1, max_length=200)]
MetricValue = Annotated[float, Field(allow_inf_nan=False, ge=-1e300, le=1e300)]
Unit = Annotated[Text, Field(min_length=1, max_length=50)]
Category = Annotated[Text, Field(min_length=1, max_length=100)]
PatternText = Annotated[Text, Field(min_length=1, max_length=500)]
Prose = Annotated[Text, Field(max_length=4000)]
Severity = Literal["low", "medium", "high", "critical"]


class Command(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    command_id: uuid.UUID
    issued_at: AwareDatetime


class ModelPerformanceReported(Command):
    """update_model_performance: one call outcome reported by hand; counted like a call event."""

    tool: Literal["update_model_performance"] = "update_model_performance"
    model_id: ModelId
    task_type: TaskType
    layer: Layer
    success: Annotated[bool, Strict()]
    latency_ms: Millis
    cost_usd: CostUsd = 0.0
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0


class MetricRecorded(Command):
    """record_metric: one free-form row of performance_metrics."""

    tool: Literal["record_metric"] = "record_metric"
    name: MetricName
    value: MetricValue
    unit: Unit
    context: dict[str, Any] = Field(default_factory=dict)


class BugPatternRecorded(Command):
    """record_bug_pattern: a hand-recorded pattern; the same (category, pattern) adds an occurrence."""

    tool: Literal["record_bug_pattern"] = "record_bug_pattern"
    category: Category
    pattern: PatternText
    description: Prose = ""
    solution: Prose = ""
    severity: Severity = "medium"


ToolCommand = Annotated[ModelPerformanceReported | MetricRecorded | BugPatternRecorded, Field(discriminator="tool")]


COMMAND = TypeAdapter(ToolCommand)
"""The record value is one command object; tools produce one record per call, no envelopes."""


@dataclass(frozen=True, slots=True)
class Metric:
    event_id: str  # the command_id: deduplicated like an event
    name: str
    value: float
    unit: str
    context: dict[str, Any]
    recorded_at: float


@dataclass(frozen=True, slots=True)
class BugReport:
    event_id: str
    category: str
    pattern: str
    description: str
    solution: str
    severity: str
    reported_at: float


def merged_reports(reports: Sequence[BugReport]) -> list[tuple]:
    """One row per (category, pattern), since one upsert may not touch a row twice: occurrences add up, the latest report's words win."""
    merged: dict[tuple[str, str], list] = {}
    for r in sorted(reports, key=lambda r: r.reported_at):
        row = merged.get((r.category, r.pattern))
        if row is None:
            merged[(r.category, r.pattern)] = [
                r.category,
                r.pattern,
                r.description,
                r.solution,
                1,
                r.severity,
                r.reported_at,
                r.reported_at,
            ]
            continue
        row[2] = r.description or row[2]
        row[3] = r.solution or row[3]
        row[4] += 1
        row[5] = r.severity
        row[7] = r.reported_at
    return [tuple(row) for _, row in sorted(merged.items())]


def new_command_fields(command_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {"command_id": command_id or uuid.uuid4(), "issued_at": dt.datetime.now(dt.UTC)}
