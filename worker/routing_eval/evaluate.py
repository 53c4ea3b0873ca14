"""Runs the scenarios, measures each against its target, and says whether it was met."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from worker.routing_eval.routers import COMPARISONS, ObeyingRouter
from worker.routing_eval.scenarios import COLD_START, OUTAGE, SCENARIOS
from worker.routing_eval.simulate import BIN_S, EPOCH, Run, simulate
from worker.routing_eval.world import Scenario

STATIONARY_REGRET_PP = 0.2
REGAIN_FRACTION, REGAIN_WITHIN_S = 0.8, 120
NEW_MODEL_CALLS_WITHIN_S, NEW_MODEL_PREFERRED_WITHIN_S = 60, 300
TASK_EXCLUSION_WITHIN_S = 15
LATENCY_EXCLUSION_WITHIN_S = 30
MAX_SWITCHES_PER_10_MIN = 1
SLOW_SHARE_BELOW, SLOW_BELOW_WITHIN_S = 0.10, 45


@dataclass
class Check:
    what: str
    measured: float | None
    target: str
    met: bool

    def text(self) -> str:
        value = "never" if self.measured is None else f"{self.measured:.3g}"
        return f"{self.what}: {value} (target {self.target}) {'met' if self.met else 'NOT MET'}"


@dataclass
class Outcome:
    scenario: str
    runs: dict[str, Run]
    learned: ObeyingRouter
    checks: list[Check] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return all(c.met for c in self.checks)


def first_publication(router: ObeyingRouter, after_s: float, predicate) -> float | None:
    """Simulated time of the first published record after `after_s` that satisfies `predicate`."""
    for at, record in router.published:
        if at - EPOCH >= after_s and predicate(record):
            return at - EPOCH
    return None


def preferred_switches(router: ObeyingRouter, task: str) -> list[float]:
    switches, last = [], None
    for at, record in router.published:
        if record.task_type != task:
            continue
        if last is not None and record.preferred_model != last:
            switches.append(at - EPOCH)
        last = record.preferred_model
    return switches


def max_in_window(times: list[float], window_s: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window_s) for t in times), default=0)


def _at_most(what: str, value: float | None, limit: float) -> Check:
    return Check(what, value, f"<= {limit:g}", value is not None and value <= limit)


def _at_least(what: str, value: float | None, limit: float) -> Check:
    return Check(what, value, f">= {limit:g}", value is not None and value >= limit)


def _checks(name: str, run: Run, router: ObeyingRouter) -> list[Check]:
    start, end = OUTAGE
    if name == "stationary":
        return [_at_most("regret vs oracle, pp", run.regret_pp, STATIONARY_REGRET_PP)]
    if name == "outage":
        checks = []
        for task in run.scenario.rates:
            fair = run.share(task, "large", start - 600, start)
            back = run.share(task, "large", end + REGAIN_WITHIN_S - 30, end + REGAIN_WITHIN_S)
            checks.append(
                _at_least(
                    f"{task}: share 2 min after recovery / fair share", back / fair if fair else None, REGAIN_FRACTION
                )
            )
        excluded = first_publication(router, start, lambda r: "large" in r.excluded)
        bad = run.first_bad_completion.get(0)
        checks.append(
            Check(
                "exclusion after first failing completion, s",
                None if excluded is None or bad is None else excluded - bad,
                "reported",
                excluded is not None,
            )
        )
        return checks
    if name.startswith("new-model"):
        arrival = run.scenario.model("new").available_from_s
        checks = [
            _at_most(
                "first call after it became available, s",
                run.first_call.get("new", math.inf) - arrival,
                NEW_MODEL_CALLS_WITHIN_S,
            )
        ]
        for task in run.scenario.rates:
            preferred = first_publication(
                router, arrival, lambda r, t=task: r.task_type == t and r.preferred_model == "new"
            )
            checks.append(
                _at_most(
                    f"{task}: preferred after, s",
                    None if preferred is None else preferred - arrival,
                    NEW_MODEL_PREFERRED_WITHIN_S,
                )
            )
        return checks
    if name == "task-incident":
        bad = run.first_bad_completion.get(0)
        excluded = first_publication(router, start, lambda r: r.task_type == "coding" and "large" in r.excluded)
        chat_excluded = first_publication(router, 0, lambda r: r.task_type == "chat" and "large" in r.excluded)
        kept = run.share("chat", "large", start, end) / max(1e-9, run.share("chat", "large", start - 600, start))
        return [
            _at_most(
                "coding excluded after first failing completion, s",
                None if excluded is None or bad is None else excluded - bad,
                TASK_EXCLUSION_WITHIN_S,
            ),
            Check("chat: large excluded", 0.0 if chat_excluded is None else 1.0, "never", chat_excluded is None),
            _at_least("chat: share during the incident / before", kept, 0.8),
        ]
    if name == "latency":
        bad = run.first_bad_completion.get(0)
        excluded = first_publication(router, start, lambda r: "large" in r.excluded)
        return [
            _at_most(
                "excluded after first slow completion, s",
                None if excluded is None or bad is None else excluded - bad,
                LATENCY_EXCLUSION_WITHIN_S,
            )
        ]
    if name == "slow-latency":
        checks = []
        for task in ("coding",):  # large is preferred for coding; for chat it has a small share anyway
            below = next(
                (
                    t - start
                    for t in range(int(start), int(end), BIN_S)
                    if all(run.share(task, "large", u, u + BIN_S) < SLOW_SHARE_BELOW for u in range(t, int(end), BIN_S))
                ),
                None,
            )
            checks.append(
                _at_most(f"{task}: large below {SLOW_SHARE_BELOW:.0%} for good after, s", below, SLOW_BELOW_WITHIN_S)
            )
        restores = [at for at, kind, m, _ in router.alerts if kind == "model_recovered" and start <= at - EPOCH < end]
        checks.append(_at_most("restores during the incident", len(restores), 0))
        return checks
    if name == "slow-stationary":
        exclusions = [a for a in router.alerts if a[1] == "model_degraded"]
        return [_at_most("exclusions in 2 h", len(exclusions), 0)]
    if name == "cold-start":
        steady = [a for a in router.alerts if a[1] == "model_degraded" and a[2] == "steady"]
        everyone = first_publication(router, 0, lambda r: not any(v > 0 for v in r.weights.values()))
        after = COLD_START[0] + 60
        worse = max(run.share(task, "broken", after, run.scenario.duration_s) for task in run.scenario.rates)
        return [
            _at_most("exclusions of the healthy model", len(steady), 0),
            Check("a rule with no model to route to", 0.0 if everyone is None else 1.0, "never", everyone is None),
            _at_most("failing model's share from a minute in", worse, 0.06),
        ]
    if name == "tie":
        switches = preferred_switches(router, "chat")
        versions = sum(1 for _, r in router.published if r.task_type == "chat")
        return [
            _at_most("preferred switches in any 10 min", max_in_window(switches, 600), MAX_SWITCHES_PER_10_MIN),
            Check("versions published", versions, "reported", True),
        ]
    return []


def evaluate(name: str, comparisons: bool = True) -> Outcome:
    return evaluate_scenario(SCENARIOS[name], comparisons)


def evaluate_scenario(scenario: Scenario, comparisons: bool = True) -> Outcome:
    name = scenario.name
    router = ObeyingRouter(scenario)
    runs = {router.name: simulate(scenario, router)}
    if comparisons:
        for kind in COMPARISONS:
            other = kind(scenario)
            runs[other.name] = simulate(scenario, other)
    outcome = Outcome(name, runs, router)
    outcome.checks = _checks(name, runs[router.name], router)
    return outcome
