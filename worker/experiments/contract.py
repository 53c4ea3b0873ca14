"""Wire contract v1 of an experiment: what an operator defines, and the record routers follow.

The record goes to the heuristics topic (compacted) keyed `experiment:<id>`, next to the rules:
one subscription gives a router both. `schemas/routing-experiment.v1.schema.json` is generated
from `Experiment`. Every bound below is a bound on what an operator (or a stranger with the
tools' token) can make the worker and every router hold.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from worker.calls.events import Layer, ModelId, TaskType
from worker.routing.contract import RoutingHeuristic
from worker.routing.manual_rules import checked

MAX_ARMS = 10
MIN_EFFECT = 1e-6  # the intervals divide by its square: a smaller one underflows (1e-200 did, every 10 s)
MAX_GUARDRAILS = 10
MAX_TASK_TYPES = 100
MAX_DURATION_S = 90 * 86_400
MAX_WEIGHTED_TASK_TYPES = 20  # a `weights` arm carries one rule per task type in the record: it must stay small
Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
ArmName = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
QUALITY_PREFIX = "quality:"
# the mean feedback score of the arm's answered calls for one feedback name, e.g. quality:correctness
QualityMetric = Annotated[str, Field(pattern=r"^quality:[A-Za-z0-9_.:-]{1,50}$")]
Metric = Literal["utility", "success_rate", "p95_latency_ms", "cost_per_call"] | QualityMetric
GuardedMetric = Literal["failure_rate", "p95_latency_ms", "cost_per_call"] | QualityMetric
Status = Literal["running", "completed", "stopped", "promoted"]
HIGHER_IS_BETTER: dict[str, bool] = {
    "utility": True,
    "success_rate": True,
    "p95_latency_ms": False,
    "cost_per_call": False,
}


def higher_is_better(metric: str) -> bool:
    return metric.startswith(QUALITY_PREFIX) or HIGHER_IS_BETTER[metric]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoringWeights(_Strict):
    """The learned rule's scoring weights (ROUTING_WEIGHTS' fields) for a `weights` arm."""

    latency: Annotated[float, Field(ge=0, le=1)] = 0.03
    cost: Annotated[float, Field(ge=0, le=1)] = 0.02
    latency_ref_ms: Annotated[float, Field(gt=0, le=600_000)] = 4000.0
    cost_ref_usd: Annotated[float, Field(gt=0, le=1000)] = 0.01


class Strategy(_Strict):
    """How an arm routes: `learned` (the published rule), `model` (one fixed model), `manual` (a
    manual rule: requests matching `pattern` go to `model`, the others follow the learned rule), or
    `weights` (a learned rule scored with other weights, computed by the worker for this arm)."""

    kind: Literal["learned", "model", "manual", "weights"]
    model: ModelId | None = None
    layer: Layer | None = None
    pattern: Annotated[str, Field(max_length=512)] | None = None
    weights: ScoringWeights | None = None

    @field_validator("pattern")
    @classmethod
    def _re2(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            if "\x00" in pattern:
                raise ValueError("contains U+0000, which cannot be stored")
            checked(pattern)
        return pattern

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Strategy:
        needs = {"learned": set(), "model": {"model", "layer"}, "manual": {"model", "layer", "pattern"}}
        needs["weights"] = {"weights"}
        given = {f for f in ("model", "layer", "pattern", "weights") if getattr(self, f) is not None}
        if missing := needs[self.kind] - given:
            raise ValueError(f"a {self.kind!r} strategy needs {', '.join(sorted(missing))}")
        if extra := given - needs[self.kind]:
            raise ValueError(f"a {self.kind!r} strategy takes no {', '.join(sorted(extra))}")
        return self


class ArmSpec(_Strict):
    name: ArmName
    share: Annotated[float, Field(gt=0, le=1, description="Share of the experiment's traffic (normalised).")]
    strategy: Strategy


class Guardrail(_Strict):
    """Stop an arm at once when its always-valid interval of `metric` lies wholly above `above` (a
    failure rate, a latency, a cost) or, for a quality score, wholly below `below`."""

    metric: GuardedMetric
    above: Annotated[float, Field(ge=0, le=1e9)] | None = None
    below: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="For a quality:<name> guardrail: the lowest mean score an arm may keep."
    )

    @model_validator(mode="after")
    def _one_limit(self) -> Guardrail:
        quality = self.metric.startswith(QUALITY_PREFIX)
        if quality and (self.below is None or self.above is not None):
            raise ValueError(f"a {self.metric} guardrail takes `below` (the lowest mean score an arm may keep)")
        if not quality and (self.above is None or self.below is not None):
            raise ValueError(f"a {self.metric} guardrail takes `above` (the highest value an arm may reach)")
        return self


class ExperimentSpec(_Strict):
    """What an operator defines (camelCase at the top, as every tool's parameters). The first arm is the control."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    experiment_id: Slug
    name: Annotated[str, Field(min_length=1, max_length=200)]
    task_types: Annotated[list[TaskType], Field(min_length=1, max_length=MAX_TASK_TYPES)] | None = Field(
        None, description="The task types it covers; null: all."
    )
    arms: Annotated[list[ArmSpec], Field(min_length=2, max_length=MAX_ARMS)]
    primary_metric: Metric = "utility"
    minimum_effect: Annotated[float, Field(ge=MIN_EFFECT, le=1e6)] | None = Field(
        None,
        description="The smallest difference worth finding (the mixture's tau): in the metric's unit, and for "
        "p95_latency_ms in quantile level (0.02: the other arm's p95 sits at our p93 or p97). Default per metric.",
    )
    guardrails: Annotated[list[Guardrail], Field(max_length=MAX_GUARDRAILS)] = Field(default_factory=list)
    max_duration_s: Annotated[int, Field(ge=60, le=MAX_DURATION_S)] = 14 * 86_400
    unit: Literal["request", "session"] = Field(
        "request",
        description="What routers hash to pick the arm: the request id. 'session' is refused: the analysis "
        "treats calls as independent, and calls of one session are not.",
    )

    @field_validator("unit")
    @classmethod
    def _request_unit(cls, unit: str) -> str:
        if unit == "session":
            raise ValueError(
                "unit 'session' is not offered: the analysis treats calls as independent, and calls of one "
                "session are correlated (with 20 calls per session, 47 % of 100 seeded A/A experiments declared a "
                "winner, worker/routing_eval/aa.py); use unit 'request'"
            )
        return unit

    @field_validator("name")
    @classmethod
    def _no_nul(cls, name: str) -> str:
        if "\x00" in name:
            raise ValueError("contains U+0000, which cannot be stored")
        return name

    @model_validator(mode="after")
    def _distinct_arms(self) -> ExperimentSpec:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must be distinct")
        weighted = any(a.strategy.kind == "weights" for a in self.arms)
        if weighted and (self.task_types is None or len(self.task_types) > MAX_WEIGHTED_TASK_TYPES):
            raise ValueError(
                f"an experiment with a `weights` arm must list its task types (at most {MAX_WEIGHTED_TASK_TYPES}): "
                "the record carries that arm's own rule for each of them"
            )
        return self


class ArmState(_Strict):
    name: ArmName
    share: float
    strategy: Strategy
    stopped: str | None = Field(None, description="Why the arm was stopped (a guardrail); null: it runs.")
    routes: dict[str, RoutingHeuristic] = Field(
        default_factory=dict, description="A `weights` arm's own learned rule per task type, computed by the worker."
    )


class Experiment(_Strict):
    """The record routers follow: while `status` is running, a request of a covered task type
    whose arm runs is routed by that arm's strategy and its events carry experiment_id and arm."""

    schema_version: Literal[1] = 1
    kind: Literal["experiment"] = "experiment"
    experiment_id: Slug
    name: str
    task_types: list[str] | None
    primary_metric: Metric
    minimum_effect: float | None = None
    guardrails: list[Guardrail] = Field(default_factory=list)
    unit: Literal["request", "session"] = "request"
    arms: list[ArmState]
    status: Status
    winner: str | None = Field(None, description="The arm the evidence named best, if any.")
    promoted: str | None = Field(None, description="The arm promoted to the routing rules.")
    reason: str = ""
    started_at: dt.datetime
    ends_at: dt.datetime
    version: int = Field(ge=1)

    @classmethod
    def start(cls, spec: ExperimentSpec, now: dt.datetime) -> Experiment:
        return cls(
            experiment_id=spec.experiment_id,
            name=spec.name,
            task_types=spec.task_types,
            primary_metric=spec.primary_metric,
            minimum_effect=spec.minimum_effect,
            guardrails=spec.guardrails,
            unit=spec.unit,
            arms=[ArmState(name=a.name, share=a.share, strategy=a.strategy) for a in spec.arms],
            status="running",
            reason="started",
            started_at=now,
            ends_at=now + dt.timedelta(seconds=spec.max_duration_s),
            version=1,
        )

    def covers(self, task_type: str) -> bool:
        return self.status == "running" and (self.task_types is None or task_type in self.task_types)

    def overlaps(self, other: Experiment) -> bool:
        """Both could cover one task type: a request must have one arm, so they cannot run at once."""
        if self.task_types is None or other.task_types is None:
            return True
        return bool(set(self.task_types) & set(other.task_types))

    def arm(self, name: str) -> ArmState | None:
        return next((a for a in self.arms if a.name == name), None)

    def changed(self, **fields) -> Experiment:
        return self.model_copy(update={**fields, "version": self.version + 1})


def experiment_key(experiment_id: str) -> str:
    """An experiment's key on the heuristics topic (a rule's is routing.contract.rule_key)."""
    return f"experiment:{experiment_id}"
