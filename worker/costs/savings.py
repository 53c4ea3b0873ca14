"""Counterfactual savings: what the last 24 hours would have cost, and how often they would have
succeeded, had every call of a task type followed its current learned rule, against what they did.

Each task type's calls are re-spent over the rule's split (`weights`, without the models it
excludes) at each model's own cost per call and success rate over the same 24 hours; a model the
rule names but that had no calls in them is priced from the rule's evidence, and one with neither
is left out of the split (the others renormalised). A task type without a rule, or whose rule
names no priced model, counts as it was. Calls routed by manual rules are re-spent too: the
figure says what the learned rules alone would have done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

HOURS = 24


@dataclass(frozen=True, slots=True)
class Usage:
    task_type: str
    model_id: str
    calls: int
    successes: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class TaskSavings:
    task_type: str
    calls: int
    actual_cost_usd: float
    counterfactual_cost_usd: float
    actual_success_rate: float
    counterfactual_success_rate: float
    rule: str | None  # "learned:coding@v7"; None: no rule, counted as it was


@dataclass(frozen=True, slots=True)
class Savings:
    hours: int
    calls: int
    actual_cost_usd: float
    counterfactual_cost_usd: float
    actual_success_rate: float
    counterfactual_success_rate: float
    tasks: list[TaskSavings] = field(default_factory=list)

    @property
    def saved_usd(self) -> float:
        return self.actual_cost_usd - self.counterfactual_cost_usd


def _priced(task: list[Usage], rule: Mapping) -> dict[str, tuple[float, float, float]]:
    """model -> (weight, cost per call, success rate) for the rule's models that can be priced."""
    seen = {u.model_id: u for u in task if u.calls > 0}
    evidence = rule.get("evidence") or {}
    priced = {}
    for model, weight in (rule.get("weights") or {}).items():
        if weight <= 0 or model in (rule.get("excluded") or {}):
            continue
        if model in seen:
            u = seen[model]
            priced[model] = (weight, u.cost_usd / u.calls, u.successes / u.calls)
        elif model in evidence:
            e = evidence[model]
            priced[model] = (weight, float(e["avg_cost_usd"]), float(e["success_rate"]))
    return priced


def counterfactual(usage: Iterable[Usage], rules: Mapping[str, Mapping]) -> Savings:
    """`rules`: task type -> its current learned rule record (as published)."""
    by_task: dict[str, list[Usage]] = {}
    for u in usage:
        by_task.setdefault(u.task_type, []).append(u)
    tasks = []
    for task_type, rows in sorted(by_task.items()):
        calls = sum(u.calls for u in rows)
        if calls == 0:
            continue
        cost, successes = sum(u.cost_usd for u in rows), sum(u.successes for u in rows)
        rule = rules.get(task_type)
        priced = _priced(rows, rule) if rule else {}
        total = sum(w for w, _, _ in priced.values())
        if total > 0 and rule is not None:
            cf_cost = calls * sum(w * c for w, c, _ in priced.values()) / total
            cf_rate = sum(w * s for w, _, s in priced.values()) / total
            name = f"{rule.get('heuristic_id')}@v{rule.get('version')}"
        else:
            cf_cost, cf_rate, name = cost, successes / calls, None
        tasks.append(TaskSavings(task_type, calls, cost, cf_cost, successes / calls, cf_rate, name))
    calls = sum(t.calls for t in tasks)
    return Savings(
        hours=HOURS,
        calls=calls,
        actual_cost_usd=sum(t.actual_cost_usd for t in tasks),
        counterfactual_cost_usd=sum(t.counterfactual_cost_usd for t in tasks),
        actual_success_rate=sum(t.actual_success_rate * t.calls for t in tasks) / calls if calls else 0.0,
        counterfactual_success_rate=sum(t.counterfactual_success_rate * t.calls for t in tasks) / calls
        if calls
        else 0.0,
        tasks=tasks,
    )
