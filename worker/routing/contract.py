"""Wire contract v1 of what the worker publishes for routers: heuristics and alerts.

Heuristics go to the compacted topic gateway.routing.heuristics: learned rules keyed by task_type,
manual rules keyed `rule:<id>` (a deleted manual rule is a tombstone). Alerts go to
gateway.routing.alerts, keyed by model_id. JSON Schema files in schemas/ are generated from here.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.calls.events import Layer

if TYPE_CHECKING:  # the decisions stay out of what gateways import (numpy, the scoring)
    from worker.routing.heuristics import Decision


class QualityEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The feedback name this task type's rule weighs.")
    mean: float = Field(ge=0, le=1, description="Posterior mean quality score of the answered calls.")
    low: float = Field(ge=0, le=1, description="Lower end of its 95 % interval.")
    high: float = Field(ge=0, le=1, description="Upper end of its 95 % interval.")
    feedback: int = Field(ge=0, description="Feedback in the evidence window.")
    effective_feedback: float = Field(ge=0, description="Feedback weighted by the age of the calls it judges.")
    value_usd: float = Field(ge=0, description="V: what a good answer is worth in this task type's objective.")


class ModelEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layer: Layer
    calls: int = Field(ge=0, description="Calls in the evidence window.")
    effective_calls: float | None = Field(None, ge=0, description="Calls weighted by age (halving every half-life).")
    success_rate: float = Field(ge=0, le=1)
    lower_bound: float = Field(ge=0, le=1, description="Wilson 95 % lower bound of the success rate.")
    p95_latency_ms: float = Field(ge=0)
    avg_cost_usd: float = Field(ge=0)
    score: float = Field(description="The objective: utility without feedback, USD of value per call with it.")
    quality: QualityEvidence | None = Field(None, description="Feedback on the answers, where the task type has any.")


class RoutingHeuristic(BaseModel):
    """One routing rule as the router applies it: the highest priority matching active rule wins."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    heuristic_id: str = Field(description="learned:<task_type> or manual:<id>")
    task_type: str | None = Field(
        description="The task type a learned rule decides, or a manual rule is limited to; null: a manual rule for any."
    )
    pattern: str | None = Field(
        description="RE2 regex a manual rule matches against the request; null for learned rules."
    )
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
    probes: dict[str, float] = Field(
        default_factory=dict, description="Shares of `weights` that probe a model whose breaker is half-open."
    )
    reasoning: str

    @classmethod
    def learned(cls, d: Decision, version: int, window_s: int, computed_at: dt.datetime) -> RoutingHeuristic:
        """The one constructor of a learned rule's record, for the worker and the routing evaluation alike."""
        return cls(
            heuristic_id=f"learned:{d.task_type}",
            task_type=d.task_type,
            pattern=None,
            preferred_layer=d.preferred_layer,
            preferred_model=d.preferred_model,
            fallback_models=d.fallback_models,
            weights=d.weights,
            priority=0,
            active=True,
            version=version,
            computed_at=computed_at,
            window_s=window_s,
            evidence=d.evidence,
            excluded=d.excluded,
            probes=d.probes,
            reasoning=d.reasoning,
        )

    @classmethod
    def manual(
        cls,
        rule_id: int,
        version: int,
        pattern: str,
        layer: str,
        model: str | None,
        priority: int,
        active: bool,
        reasoning: str,
        task_type: str | None = None,
    ) -> RoutingHeuristic:
        """The one constructor of a manual rule's record (`task_type`: only for that task type)."""
        return cls(
            heuristic_id=f"manual:{rule_id}",
            task_type=task_type,
            pattern=pattern,
            preferred_layer=Layer(layer),
            preferred_model=model,
            fallback_models=[],
            weights={model: 1.0} if model else {},
            priority=priority,
            active=active,
            version=version,
            computed_at=dt.datetime.now(dt.UTC),
            window_s=None,
            reasoning=reasoning,
        )


class ModelDeclaration(BaseModel):
    """A model the gateway can route to, declared to the catalogue so it is explored before it has data."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=200)
    layer: Layer
    task_types: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None, max_length=100, description="The task types it serves; null: every task type."
    )
    provider: str | None = Field(None, max_length=100)


def rule_key(record: dict) -> bytes:
    """A rule's key on the heuristics topic: a learned rule's is its task type, a manual one's (even one limited
    to a task type) its id (an experiment's is experiments.contract.experiment_key)."""
    kind, _, ident = record["heuristic_id"].partition(":")
    return (record["task_type"] if kind == "learned" else f"rule:{ident}").encode()


class RoutingAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    kind: Literal["model_degraded", "model_probing", "model_recovered"]
    model_id: str
    task_type: str | None = Field(None, description="The task type the breaker covers; null: every task type.")
    reason: str
    at: dt.datetime
