"""Routers in the evaluation: the one that obeys the published rules, and comparison rows that
route as LiteLLM documents its strategies (simple-shuffle, latency-based routing, cooldowns).

Each router picks a model for a request (`pick`), sees outcomes the way it would in a gateway
(`observe`, at completion), and runs its timers (`tick`). Only the obeying router reads the store.
"""

from __future__ import annotations

import datetime as dt
from collections import deque

import orjson

from worker.gateway.table import RoutingTable, choose_model
from worker.routing.breaker import Breaker
from worker.routing.contract import RoutingHeuristic
from worker.routing.degradation import Rules
from worker.routing.engine import Engine, affected_tasks
from worker.routing.evidence import ANY_TASK
from worker.routing.heuristics import Policy
from worker.routing_eval.store import SimStore
from worker.routing_eval.world import Scenario

HEALTH_SPAN_S = 60


class ObeyingRouter:
    """The worker's decision code (worker.routing.engine) on a simulated store, and a router that
    does exactly what the README says: RoutingTable.route over the models it can reach."""

    name = "learned (this worker)"

    def __init__(
        self,
        scenario: Scenario,
        policy: Policy = Policy(),
        rules: Rules = Rules(),
        interval_s: float = 60.0,
        check_s: float = 2.0,
    ):
        self.scenario = scenario
        self.engine = Engine(policy, rules, lambda task: scenario.weights)
        self.store = SimStore()
        self.table = RoutingTable()
        self.breakers: dict[tuple[str, str], Breaker] = {}
        self.records: dict[str, dict] = {}
        self.interval_s, self.check_s = interval_s, check_s
        self.published: list[tuple[float, RoutingHeuristic]] = []
        self.alerts: list[tuple[float, str, str, str]] = []  # at, kind, model, scope
        self.origin = 0.0  # epoch seconds of simulated time 0 (set by the simulation)
        self.declared: dict[str, str] = {}
        self.baselines: dict | None = None  # latency per (model, scope), refreshed by every recompute

    def pick(self, task: str, u: float, t: float) -> str:
        rule = self.table.choose(task)
        available = self.scenario.available(t)
        reachable = available if self.scenario.router_knows_models else None
        model = choose_model(rule, u, reachable) if rule is not None else None
        if model is not None:
            return model
        allowed = [m for m in available if rule is None or m not in rule.excluded] or available
        return allowed[int(u * len(allowed)) % len(allowed)]  # no rule (yet): the gateway's own default

    def observe(self, model: str, task: str, ok: bool, latency_ms: float, t: float) -> None:
        """The obeying router learns nothing by itself: everything goes through the worker."""

    def tick(self, t: float, now: float) -> None:
        if t % self.check_s == 0:
            self._check(now)
        if t % self.interval_s == 0:
            self._recompute(now)
        if t % 60 == 0:
            self.store.prune(now, self.engine.policy.window_s)

    def _check(self, now: float) -> None:
        catalogue = self.catalogue(now).get(ANY_TASK, {})
        if self.baselines is None or catalogue != self.declared:
            self.declared = catalogue  # a declared model is explored at once, not at the next period
            self._recompute(now)
        seconds = self.store.second_rows(now, HEALTH_SPAN_S)
        transitions = self.engine.check(now, self.breakers, seconds, self.baselines or {})
        for tr in transitions:
            self.breakers[(tr.breaker.model_id, tr.breaker.scope)] = tr.breaker
            self.alerts.append((now, tr.alert, tr.breaker.model_id, tr.breaker.scope))
        if transitions:
            self._recompute(now, only=affected_tasks(transitions))

    def catalogue(self, now: float) -> dict[str, dict[str, str]]:
        t = now - self.origin
        cat: dict[str, dict[str, str]] = {
            ANY_TASK: {m.model_id: m.layer for m in self.scenario.models if m.declared and m.available_from_s <= t}
        }
        for task, models in self.store.seen.items():
            cat[task] = {m: self.scenario.model(m).layer for m in models}
        return cat

    def _recompute(self, now: float, only=None) -> None:
        window = self.engine.policy.window_s
        minutes, quality = self.store.minute_rows(now, window), self.store.quality_rows(now, window)
        decisions = self.engine.recompute(
            now, minutes, self.breakers, self.catalogue(now), self.records, only, quality=quality
        )
        self.baselines = self.engine.baselines(now, minutes, self.breakers)
        for task, d in decisions.items():
            version = (self.records.get(task) or {}).get("version", 0) + 1
            record = RoutingHeuristic.learned(
                d, version, self.engine.policy.window_s, dt.datetime.fromtimestamp(now, dt.UTC)
            )
            self.records[task] = record.model_dump(mode="json")
            self.table.apply(task, orjson.dumps(self.records[task]))
            self.published.append((now, record))


class ShuffleRouter:
    """LiteLLM simple-shuffle without weights: uniform over the deployments, blind to health."""

    name = "shuffle (LiteLLM-style)"
    store = None

    def __init__(self, scenario: Scenario):
        self.scenario = scenario

    def healthy(self, t: float) -> list[str]:
        return self.scenario.available(t)

    def pick(self, task: str, u: float, t: float) -> str:
        models = self.healthy(t) or self.scenario.available(t)
        return models[int(u * len(models)) % len(models)]

    def observe(self, model: str, task: str, ok: bool, latency_ms: float, t: float) -> None:
        pass

    def tick(self, t: float, now: float) -> None:
        pass


class CooldownRouter(ShuffleRouter):
    """LiteLLM's cooldowns on top of the shuffle: a deployment with more than `allowed_fails`
    failures in the current minute, or more than half of its calls failed (5+ calls), is left out
    for `cooldown_s`, then simply gets traffic again (no probing)."""

    name = "shuffle + cooldown (LiteLLM-style)"
    allowed_fails = 3
    cooldown_s = 5.0

    def __init__(self, scenario: Scenario):
        super().__init__(scenario)
        self.minute: dict[str, list[int]] = {}
        self.minute_started = 0.0
        self.cooled_until: dict[str, float] = {}

    def healthy(self, t: float) -> list[str]:
        return [m for m in self.scenario.available(t) if self.cooled_until.get(m, -1.0) <= t]

    def observe(self, model: str, task: str, ok: bool, latency_ms: float, t: float) -> None:
        if t - self.minute_started >= 60:
            self.minute, self.minute_started = {}, t - t % 60
        calls = self.minute.setdefault(model, [0, 0])
        calls[0] += 1
        calls[1] += not ok
        if not ok and (calls[1] > self.allowed_fails or (calls[0] >= 5 and calls[1] / calls[0] > 0.5)):
            self.cooled_until[model] = t + self.cooldown_s


class LowestLatencyRouter(CooldownRouter):
    """LiteLLM latency-based routing: the deployment with the lowest mean of its last 10 latencies
    (no samples counts as 0, so it is tried first; a failure counts as a very slow call, as LiteLLM
    records timeouts), with the same cooldowns."""

    name = "lowest-latency + cooldown (LiteLLM-style)"
    failure_latency_ms = 600_000.0

    def __init__(self, scenario: Scenario):
        super().__init__(scenario)
        self.samples: dict[str, deque] = {}

    def pick(self, task: str, u: float, t: float) -> str:
        models = self.healthy(t) or self.scenario.available(t)

        def mean(m: str) -> float:
            s = self.samples.get(m)
            return sum(s) / len(s) if s else 0.0

        best = min(mean(m) for m in models)
        tied = [m for m in models if mean(m) == best]
        return tied[int(u * len(tied)) % len(tied)]

    def observe(self, model: str, task: str, ok: bool, latency_ms: float, t: float) -> None:
        super().observe(model, task, ok, latency_ms, t)
        self.samples.setdefault(model, deque(maxlen=10)).append(latency_ms if ok else self.failure_latency_ms)


COMPARISONS = (ShuffleRouter, LowestLatencyRouter, CooldownRouter)
