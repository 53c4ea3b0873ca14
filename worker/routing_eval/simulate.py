"""The closed loop on a simulated clock: requests arrive, the router picks, the world answers, the
gateway reports each call when it completes, the worker's store sees it one flush later."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field

from worker.calls.decode import Call
from worker.routing_eval.world import Scenario

EPOCH = 1_800_000_000.0  # simulated time 0, in epoch seconds
FLUSH_DELAY_S = 1.0  # from a call's completion to its rows in the store (FLUSH_INTERVAL_MS)
BIN_S = 10


@dataclass
class Run:
    scenario: Scenario
    router_name: str
    calls: int = 0
    regret_sum: float = 0.0  # oracle minus chosen expected utility, summed over calls after the warm-up
    scored_calls: int = 0
    traffic: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # task -> model -> calls per bin
    first_bad_completion: dict[int, float] = field(default_factory=dict)  # incident index -> t
    first_call: dict[str, float] = field(default_factory=dict)  # model -> t of its first call

    @property
    def regret_pp(self) -> float:
        return 100.0 * self.regret_sum / self.scored_calls if self.scored_calls else 0.0

    def share(self, task: str, model: str, start_s: float, end_s: float) -> float:
        """The model's share of the task's calls started in [start_s, end_s)."""
        lo, hi = int(start_s // BIN_S), int(math.ceil(end_s / BIN_S))
        per_model = self.traffic.get(task, {})
        mine = sum(per_model.get(model, [])[lo:hi])
        total = sum(sum(bins[lo:hi]) for bins in per_model.values())
        return mine / total if total else 0.0


def simulate(scenario: Scenario, router) -> Run:
    rng = random.Random(scenario.seed)
    run = Run(scenario, router.name)
    due: dict[int, list[Call]] = defaultdict(list)  # second -> calls completed and flushed by then
    told: dict[int, list[tuple]] = defaultdict(list)  # second -> outcomes a router's callbacks see by then
    carry = dict.fromkeys(scenario.rates, 0.0)
    bins = scenario.duration_s // BIN_S + 1
    layers = {m.model_id: m.layer for m in scenario.models}
    if hasattr(router, "origin"):
        router.origin = EPOCH
    for t in range(scenario.duration_s):
        now = EPOCH + t
        flushed = due.pop(t, [])
        if router.store is not None:
            router.store.flush(flushed)
        for call, completed_at in told.pop(t, []):
            router.observe(call.model_id, call.task_type, call.ok, call.latency_ms, completed_at)
        router.tick(t, now)
        available = scenario.available(t)
        utilities = {task: {m: scenario.expected_utility(m, task, t) for m in available} for task in scenario.rates}
        for task, rate in scenario.rates.items():
            carry[task] += rate
            n = int(carry[task])
            carry[task] -= n
            oracle = max(utilities[task].values())
            per_model = run.traffic.setdefault(task, {})
            for i in range(n):
                start = t + (i + 0.5) / n
                model = router.pick(task, rng.random(), start)
                success, factor = scenario.truth(model, task, start)
                profile = scenario.model(model)
                ok = rng.random() < success
                latency = rng.lognormvariate(math.log(profile.latency_median_ms * factor), profile.latency_sigma)
                completed = start + latency / 1000.0
                run.calls += 1
                run.first_call.setdefault(model, start)
                per_model.setdefault(model, [0] * bins)[int(start // BIN_S)] += 1
                if t >= scenario.warmup_s:
                    run.regret_sum += oracle - utilities[task][model]
                    run.scored_calls += 1
                for index, incident in enumerate(scenario.incidents):
                    bad = (not ok) if incident.success is not None else factor > 1.0
                    if (
                        bad
                        and incident.model_id == model
                        and incident.task_type in (None, task)
                        and incident.start_s <= start < incident.end_s
                        and completed < run.first_bad_completion.get(index, math.inf)
                    ):
                        run.first_bad_completion[index] = completed
                call = Call("", EPOCH + completed, model, task, layers[model], ok, latency, profile.cost_usd, 0, 0)
                if router.store is not None:
                    due[math.ceil(completed + FLUSH_DELAY_S)].append(call)
                else:
                    told[math.ceil(completed)].append((call, completed))
    return run
