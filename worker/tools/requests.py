"""What each tool accepts, with the gateway's parameter names (camelCase on the wire).

The same models validate HTTP bodies, HTTP query strings and MCP arguments, so the two surfaces
cannot drift. Unknown parameters are refused: a misspelt `taskTyp` should not silently mean "all".
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from worker.calls.commands import Category, MetricName, MetricValue, PatternText, Prose, Severity, Unit
from worker.calls.decode import scan
from worker.calls.events import CostUsd, Layer, Millis, ModelId, TaskType, Tokens
from worker.experiments.contract import ArmName, ExperimentSpec, Slug, Status
from worker.failures import junit
from worker.routing.manual_rules import checked

MAX_PAGE = 500
MAX_TEST_CODE = 65_536
MAX_DEPTH = 16


class ToolRequest(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("contains U+0000, which cannot be stored")
        if isinstance(value, dict) and (problem := scan(value, MAX_DEPTH)):
            raise ValueError(
                "contains U+0000, which cannot be stored"
                if problem == "nul_character"
                else f"nested deeper than {MAX_DEPTH} levels"
            )
        return value


MAX_OFFSET = 1_000_000


class Page(ToolRequest):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] | None = Field(
        None, description="Page size (default TOOLS_PAGE_SIZE)."
    )
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = Field(0, description="Rows to skip (at most 1,000,000).")


class CandidateWeights(ToolRequest):
    """Scoring weights to weigh against the published learned rules; a field left out keeps the task
    type's own (ROUTING_WEIGHTS, ROUTING_VALUE_USD, or an experiment's promoted weights)."""

    latency: Annotated[float, Field(ge=0, le=1)] | None = None
    cost: Annotated[float, Field(ge=0, le=1)] | None = None
    latency_ref_ms: Annotated[float, Field(gt=0, le=600_000)] | None = None
    cost_ref_usd: Annotated[float, Field(gt=0, le=1000)] | None = None
    value_usd: Annotated[float, Field(gt=0, le=1_000_000)] | None = Field(
        None, description="What a good answer is worth (task types with feedback)."
    )

    @model_validator(mode="after")
    def _some(self) -> CandidateWeights:
        if not self.overrides():
            raise ValueError("name at least one weight: latency, cost, latencyRefMs, costRefUsd or valueUsd")
        return self

    def overrides(self) -> dict[str, float]:
        return self.model_dump(exclude_none=True)


class AnalyzeMetrics(ToolRequest):
    """Model rankings per task type and the self-improvement summary."""

    task_type: TaskType | None = Field(None, description="Only this task type.")
    include_report: bool = Field(True, description="Add the self-improvement summary.")
    max_models: int = Field(
        100,
        ge=1,
        le=500,
        description="At most this many models per task type, the most called "
        "first (2,000 rows in all); modelsLeftOut counts the rest.",
    )
    candidate_weights: CandidateWeights | None = Field(
        None,
        description="Also estimate, for each published learned rule, the rule these weights would have given "
        "at its publication (learned from the calls before it, estimated on the calls after it).",
    )


class GetRoutingHeuristics(Page):
    """Routing heuristics (learned and manual), highest priority first."""

    active_only: bool = Field(True, description="Only active heuristics.")


class GetBugPatterns(Page):
    """Known bug patterns, optionally of one category."""

    category: Category | None = None


class GetRegressionTests(Page):
    """Regression tests, optionally of one category."""

    category: Category | None = None


class _Command(ToolRequest):
    command_id: uuid.UUID | None = Field(
        None, description="Idempotency key: a retried call with the same id is applied once. Generated if absent."
    )


class RecordMetric(_Command):
    """Record a free-form metric (a row of performance_metrics)."""

    name: MetricName
    value: MetricValue
    unit: Unit
    context: dict[str, Any] = Field(default_factory=dict)


class RecordBugPattern(_Command):
    """Record a bug pattern by hand; the same category and pattern adds an occurrence."""

    category: Category
    pattern: PatternText
    description: Prose = ""
    solution: Prose = ""
    severity: Severity = "medium"


class UpdateModelPerformance(_Command):
    """Report one call's outcome for a model and task type; counted like a call event."""

    model_id: ModelId
    task_type: TaskType
    success: bool
    latency_ms: Millis
    cost: CostUsd = 0.0
    layer: Layer | None = Field(None, description="The model's layer; default: the layer it was last seen in.")
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0


class UpdateRoutingHeuristic(ToolRequest):
    """Add (or, with ruleId, change) a manual routing rule; published to the routers."""

    pattern: str = Field(description="RE2 regex matched against the request text (linear time, no backreferences).")
    preferred_layer: Layer
    preferred_model: ModelId | None = None
    reasoning: Annotated[str, Field(max_length=2000)] = ""
    success_rate: Annotated[float, Field(ge=0, le=100)] | None = None
    usage_count: Annotated[int, Field(ge=0)] | None = None
    active: bool = True
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 100
    rule_id: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Change this manual rule instead of adding one."
    )

    @field_validator("pattern")
    @classmethod
    def _re2(cls, pattern: str) -> str:
        return checked(pattern)


class GenerateRegressionTest(ToolRequest):
    """Store a regression test (replaces one of the same name). The code is stored, never run."""

    test_name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")]
    category: Category
    description: Prose
    test_code: Annotated[str, Field(min_length=1, max_length=MAX_TEST_CODE)]
    expected_behavior: Prose
    discovered_from: Annotated[str, Field(min_length=1, max_length=50)] = "user-feedback"
    metadata: dict[str, Any] = Field(default_factory=dict)


class DeclareModel(ToolRequest):
    """Declare a model the gateway can route to: the routing rules explore it before it has any data."""

    model_id: ModelId
    layer: Layer
    task_types: Annotated[list[TaskType], Field(min_length=1, max_length=100)] | None = Field(
        None, description="The task types it serves; omitted: every task type."
    )
    provider: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class CreateExperiment(ExperimentSpec):
    """Start an experiment on routing strategies: routers split its task types' traffic over the arms,
    and it ends by itself (a clear winner, a guardrail, its maximum duration). Published to the
    routers within EXPERIMENTS_INTERVAL_S; the same definition again is answered with the stored one."""


class GetExperiment(ToolRequest):
    """An experiment with its arms' estimates and always-valid intervals, and every comparison of arms."""

    experiment_id: Slug


class ListExperiments(Page):
    """Experiments, newest first, optionally of one status."""

    status: Status | None = None


class StopExperiment(ToolRequest):
    """Stop a running experiment: routers stop splitting its traffic; nothing is promoted."""

    experiment_id: Slug
    reason: Annotated[str, Field(max_length=500)] = ""


class PromoteExperiment(ToolRequest):
    """Make an arm's strategy the routing for the experiment's task types (default: the winner): a
    fixed model or a manual rule becomes a manual rule per task type, a `weights` arm's weights
    replace the scoring weights; the experiment ends."""

    experiment_id: Slug
    arm: ArmName | None = Field(None, description="The arm to promote; default: the experiment's winner.")
    force: bool = Field(
        False,
        description="Promote an arm that is not the winner, or that a guardrail stopped; needs `reason`, "
        "which is recorded with the promotion.",
    )
    reason: str | None = Field(None, min_length=3, max_length=500, description="Why, when forcing.")

    @model_validator(mode="after")
    def _forcing_says_why(self) -> PromoteExperiment:
        if self.force and not self.reason:
            raise ValueError("force needs a reason (it is recorded with the promotion)")
        return self


class ResolveBugPattern(ToolRequest):
    """Mark a bug pattern resolved (fixed): if its occurrences come back, or its stub fails in CI, it
    becomes `regressed`, with a higher severity and an alert."""

    id: int | None = Field(None, ge=1, description="The pattern's id (hand-recorded patterns have only this).")
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")] | None = None
    by: str = Field(min_length=1, max_length=100, description="Who resolves it (recorded with the transition).")
    reason: str = Field(min_length=3, max_length=500, description="Why: the fix, a ticket (recorded).")

    @model_validator(mode="after")
    def _one_way_to_name_it(self) -> ResolveBugPattern:
        if (self.id is None) == (self.fingerprint is None):
            raise ValueError("name the pattern by id or by fingerprint, one of the two")
        return self


_RUN_TEXT = r"^[0-9A-Za-z._:/@+-]{1,200}$"


class RecordTestResults(ToolRequest):
    """A CI run's results of the regression stubs (the JUnit XML that pytest and Vitest write)."""

    junit_xml: str = Field(
        min_length=1,
        max_length=junit.MAX_BYTES,
        description="The run's JUnit XML (pytest --junitxml, vitest --reporter=junit); at most 1,000,000 "
        "characters: send a large suite one category at a time.",
    )
    commit: str = Field(pattern=_RUN_TEXT, description="The gateway's commit the stubs ran against.")
    environment: str = Field("ci", pattern=_RUN_TEXT, description="Where they ran (ci, staging, ...).")
    run_id: str | None = Field(
        None,
        pattern=_RUN_TEXT,
        description="Idempotency key: a run sent again is recorded once (default: a hash of the report, the "
        "commit and the environment; CI should pass its run id and attempt).",
    )
