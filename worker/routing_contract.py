"""Wire contract v1 of what the worker publishes for routers: heuristics and alerts.

Heuristics go to the compacted topic gateway.routing.heuristics: learned rules keyed by task_type,
manual rules keyed `rule:<id>` (a deleted manual rule is a tombstone). Alerts go to
gateway.routing.alerts, keyed by model_id. JSON Schema files in schemas/ are generated from here.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.events import Layer


class ModelEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layer: Layer
    calls: int = Field(ge=0)
    success_rate: float = Field(ge=0, le=1)
    lower_bound: float = Field(ge=0, le=1, description="Wilson 95 % lower bound of the success rate.")
    p95_latency_ms: float = Field(ge=0)
    avg_cost_usd: float = Field(ge=0)
    score: float


class RoutingHeuristic(BaseModel):
    """One routing rule as the router applies it: the highest priority matching active rule wins."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    heuristic_id: str = Field(description="learned:<task_type> or manual:<id>")
    task_type: str | None = Field(description="The task type a learned rule decides; null: a manual rule for any.")
    pattern: str | None = Field(description="RE2 regex a manual rule matches against the request; null for learned rules.")
    preferred_layer: Layer
    preferred_model: str | None
    fallback_models: list[str] = Field(default_factory=list)
    weights: dict[str, float] = Field(default_factory=dict, description="Traffic split over models; sums to 1.")
    priority: int
    active: bool
    version: int = Field(ge=1, description="Increases by one with every change of this rule.")
    computed_at: dt.datetime
    window_s: int | None = Field(description="Evidence window of a learned rule, in seconds.")
    evidence: dict[str, ModelEvidence] = Field(default_factory=dict)
    excluded: dict[str, str] = Field(default_factory=dict, description="Models left out right now, with the reason.")
    reasoning: str


class RoutingAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    kind: Literal["model_degraded", "model_recovered"]
    model_id: str
    reason: str
    at: dt.datetime
