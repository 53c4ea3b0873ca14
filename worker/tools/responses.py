"""What each tool returns. Rows keep the gateway's column names (snake_case), as its tools return them.

These models shape the answers and are the response schemas of /openapi.json; a test checks real
answers against that document.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from worker.experiments.contract import Experiment
from worker.routing.contract import RoutingHeuristic

T = TypeVar("T")

# an interval's end: infinite while there are too few calls, which JSON cannot carry, so null
Bound = Annotated[float | None, BeforeValidator(lambda x: x if x is None or math.isfinite(x) else None)]


class ToolResponse(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class QualityEstimate(ToolResponse):
    name: str = Field(description="The feedback name, e.g. correctness or thumbs.")
    feedback: int = Field(description="Feedback counted (the latest per call, name and source).")
    mean: float = Field(description="Mean score in [0, 1].")
    low: float = Field(
        description="Lower end of the mean's 95 % interval (Wilson's; wider than needed for graded scores)."
    )
    high: float = Field(description="Upper end of that interval.")


class ModelRanking(ToolResponse):
    rank: int = Field(ge=1)
    model_id: str
    task_type: str
    success_rate: float = Field(description="Percent, 0-100.")
    avg_latency_ms: float
    p95_latency_ms: float | None
    avg_cost: float = Field(description="USD per call.")
    total_calls: int
    quality: list[QualityEstimate] = Field(
        default_factory=list, description="Feedback on the answers, per name (most given first), with intervals."
    )


class TopModel(ToolResponse):
    model: str
    task_type: str
    success_rate: float
    total_calls: int


class RecentBug(ToolResponse):
    severity: str
    pattern: str
    occurrences: int
    error_type: str | None
    status: str = Field("open", description="open, resolved or regressed.")


class ImprovementReport(ToolResponse):
    regression_tests: int
    bug_patterns: int
    routing_heuristics: int
    top_models: list[TopModel]
    recent_bugs: list[RecentBug]


class Projected(ToolResponse):
    total: float = Field(description="USD over the horizon.")
    low: float = Field(description="95 % prediction interval of the total.")
    high: float
    seasonal: bool = Field(description="Weekly season fitted (two weeks of history or more).")
    checks: int = Field(
        0, description="Past origins the interval was calibrated on (its forecast against what happened)."
    )


class CostForecast(ToolResponse):
    model_id: str
    task_type: str
    history_hours: int
    last_day_usd: float
    next_day: Projected | None = Field(description="Null: the history cannot check an interval (see notes).")
    next_month: Projected | None = Field(description="Null: the history cannot check an interval (see notes).")
    notes: dict[str, str] = Field(default_factory=dict, description="Horizon -> why it has no forecast.")


class OffPolicyEstimate(ToolResponse):
    metric: str = Field(description="success (a rate), cost (USD per call) or quality (a mean score in [0, 1]).")
    value: float | None = Field(description="Null: no figure; `reason` says why.")
    low: float | None
    high: float | None
    effective_calls: float = Field(description="How many calls the weighted logged calls are worth.")
    calls: int
    reason: str = ""


class AlternativeRule(ToolResponse):
    model_id: str
    success: OffPolicyEstimate = Field(description="Success rate of all calls to this model minus the current rule's.")
    cost: OffPolicyEstimate = Field(description="Cost per call of all calls to this model minus the current rule's.")
    quality: dict[str, OffPolicyEstimate] = Field(
        default_factory=dict,
        description="Feedback name -> its mean score with all calls to this model minus the rule's.",
    )


class CandidateRule(ToolResponse):
    label: str = Field(description="The candidate, e.g. `weights cost=0.2`.")
    split: dict[str, float] = Field(description="Model -> the share of calls a router following it sends there.")
    learned_until: float = Field(description="Epoch seconds: it was learned from the calls before this.")
    success: OffPolicyEstimate = Field(description="Its success rate minus the current rule's.")
    cost: OffPolicyEstimate = Field(description="Its cost per call minus the current rule's.")
    quality: dict[str, OffPolicyEstimate] = Field(
        default_factory=dict, description="Feedback name -> its mean score minus the current rule's."
    )


class Counterfactual(ToolResponse):
    task_type: str
    rule: str = Field(description="The learned rule as published, e.g. learned:coding@v7.")
    since: float = Field(description="Epoch seconds: its publication; only calls logged after it are used.")
    calls: int = Field(description="Calls logged since then with a route_probability.")
    unweighted: int = Field(description="Calls logged since then without a usable route_probability (left out).")
    success: OffPolicyEstimate
    cost: OffPolicyEstimate
    quality: dict[str, OffPolicyEstimate] = Field(
        default_factory=dict,
        description="Feedback name -> the rule's mean score: each model's mean on its judged calls, mixed by the "
        "rule's weight of all its calls (assumes whether a call's verdict has arrived does not depend on the call, "
        "given its task type and model).",
    )
    alternatives: list[AlternativeRule]
    candidate: CandidateRule | None = Field(
        None, description="The rule of the request's candidateWeights, when asked and the logs can speak for it."
    )


class Analysis(ToolResponse):
    task_type: str | None
    rankings: dict[str, list[ModelRanking]] = Field(description="Per task type, best first.")
    report: ImprovementReport | None
    models_left_out: int = Field(
        0,
        ge=0,
        description="Models past maxModels per task type (or 2,000 rows in all), the least called: not in rankings.",
    )
    forecasts: list[CostForecast] = Field(
        default_factory=list, description="Next day's and month's cost of the 20 costliest (model, task type) pairs."
    )
    counterfactuals: list[Counterfactual] = Field(
        default_factory=list,
        description="Per learned rule: its success and cost, and every model alone against it, estimated off-policy "
        "from logged route_probability values on calls after its publication (see counterfactual_assumptions).",
    )
    counterfactual_assumptions: str = ""
    text: str = Field(description="The same analysis as readable text, in the gateway's format.")


class PageOf(ToolResponse, Generic[T]):
    items: list[T]
    total: int = Field(ge=0)
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last page.")


class BugPatternRow(BaseModel):
    id: int
    category: str
    pattern: str
    description: str
    solution: str
    occurrences: int
    severity: str
    fingerprint: str | None = Field(description="Null for hand-recorded patterns.")
    error_type: str | None
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    models: dict[str, int]
    layers: dict[str, int]
    solution_source: str
    created_at: dt.datetime
    updated_at: dt.datetime
    status: Literal["open", "resolved", "regressed"] = "open"
    status_changed_at: dt.datetime | None = None
    status_by: str | None = None  # operator:<name>, ci (its stub's runs) or worker (its occurrences)
    status_reason: str | None = None
    last_result: Literal["passed", "failed", "skipped"] | None = None  # its stub's latest CI run
    last_run_at: dt.datetime | None = None


class RegressionTestRow(BaseModel):
    id: int
    test_name: str
    category: str
    description: str
    test_code: str
    expected_behavior: str
    discovered_from: str
    metadata: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    last_result: Literal["passed", "failed", "skipped"] | None = None  # its latest CI run (record_test_results)
    last_run_at: dt.datetime | None = None
    last_commit: str | None = None
    passes: int = 0
    failures: int = 0
    flaky: bool = False  # passed and failed on the same commit


class BugPatternStatus(ToolResponse):
    id: int
    fingerprint: str | None
    status: Literal["open", "resolved", "regressed"]
    changed: bool = Field(description="False: it was resolved already; nothing changed.")


class TestResultsRecorded(ToolResponse):
    """A CI run's stub results as stored."""

    __test__ = False  # not a pytest class, whatever its name

    run_id: str
    recorded: bool = Field(description="False: this run was recorded before; nothing changed.")
    passed: int
    failed: int
    skipped: int
    regressions: list[str] = Field(description="Stubs that failed after their previous result passed (fail CI).")
    resolved_patterns: list[str] = Field(
        default_factory=list,
        description="Fingerprints of the bug patterns this run resolved: their stub passed PATTERN_RESOLVE_PASSES "
        "runs in a row and they have not occurred for PATTERN_RESOLVE_QUIET_S.",
    )
    regressed_patterns: list[str] = Field(
        default_factory=list, description="Fingerprints of resolved bug patterns whose stub failed in this run."
    )
    unknown_stubs: list[str] = Field(description="Stubs in the report this worker does not know (at most 100 named).")
    not_stubs: int = Field(description="Test cases in the report that are not regression stubs (ignored).")
    recorded_at: dt.datetime


class Accepted(ToolResponse):
    """A write that changes aggregates: on the commands topic, applied by the ingest pipeline's next flush."""

    accepted: bool = True
    command_id: str
    topic: str
    partition: int
    offset: int


class TestSaved(ToolResponse):
    id: int
    test_name: str
    created: bool = Field(description="False when a test of that name existed and was replaced.")


class ToolError(BaseModel):
    error: str = Field(description="Stable code: unauthorized, forbidden, invalid_request, unavailable, not_found.")
    message: str
    detail: list[dict[str, str]] = Field(default_factory=list, description="Per field: {field, reason}.")


class RoutingHeuristicsPage(PageOf[RoutingHeuristic]):
    """Routing heuristics as the router receives them, highest priority first."""


class BugPatternsPage(PageOf[BugPatternRow]):
    """Bug patterns, most frequent first."""


class RegressionTestsPage(PageOf[RegressionTestRow]):
    """Regression tests, oldest first."""


class ModelDeclared(ToolResponse):
    model_id: str
    layer: str
    task_types: list[str] | None = Field(description="null: every task type.")
    provider: str | None
    declared_at: dt.datetime


class ArmEstimate(ToolResponse):
    arm: str
    calls: int
    value: float | None = Field(description="The primary metric's estimate.")
    low: Bound = Field(description="Always-valid 95 % interval; null: unbounded (too few calls).")
    high: Bound
    success_rate: float | None = Field(description="0-1.")
    p95_latency_ms: float | None
    cost_per_call: float | None
    utility: float | None
    stopped: str | None


class ArmComparison(ToolResponse):
    arm: str
    against: str
    estimate: float = Field(description="arm's primary metric minus against's.")
    low: Bound = Field(description="Always-valid interval (Bonferroni over the pairs); null: unbounded.")
    high: Bound
    better: bool = Field(description="Declared better, in the metric's direction.")
    worse: bool


class ExperimentView(ToolResponse):
    experiment: Experiment
    estimates: list[ArmEstimate]
    comparisons: list[ArmComparison]
    method: str
    evaluation_error: str | None = Field(
        None, description="Why no estimates could be computed for this stored experiment (the read still answers)."
    )


class ExperimentCreated(ToolResponse):
    experiment: Experiment
    created: bool = Field(description="False: the same definition was already stored (a retried call).")


class ExperimentsPage(PageOf[Experiment]):
    """Experiments, newest first."""


class ExperimentPromoted(ToolResponse):
    experiment: Experiment
    arm: str
    rules: list[RoutingHeuristic] = Field(description="Manual rules the promotion created.")
    weights: dict[str, float] | None = Field(description="Scoring weights the promotion set, if any.")
    note: str
