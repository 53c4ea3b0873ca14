"""An experiment's state after one look at its arms' tallies: estimates, intervals, and what ends it.

Pure: the leader runs it every EXPERIMENTS_INTERVAL_S, get_experiment on demand. In order:
1. Guardrails: an arm whose always-valid interval of a guarded metric lies wholly above the limit
   is stopped at once (routers stop sending it traffic with the next record).
2. Comparisons: every pair of running arms on the primary metric, each at alpha / pairs
   (Bonferroni), so the chance of any false declaration stays within alpha.
3. The end: a winner when one running arm is declared better than every other running arm (or is
   the only one left); the maximum duration without one ends it with no winner; no arm left stops it.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

from worker.calls import histogram
from worker.experiments.contract import QUALITY_PREFIX, Experiment, higher_is_better
from worker.experiments.sequential import (
    ALPHA,
    ArmStats,
    difference,
    mean_interval,
    quantile_interval,
    rate_variance_floor,
)
from worker.experiments.tally import ArmTally

MIN_CALLS = 30  # per arm, before any interval is finite
DEFAULT_EFFECT = {
    "utility": 0.02,
    "success_rate": 0.02,
    "failure_rate": 0.02,
    "cost_per_call": 0.0005,
    "p95_latency_ms": 0.02,  # in quantile level
    QUALITY_PREFIX: 0.02,  # any quality:<name>: a mean score in [0, 1]
}
# guardrails look for a breach of a limit, not a small difference: a wider mixture stops a bad arm
# within a hundred calls or so (a 40 % failure rate against a 20 % limit: 100 calls)
GUARDRAIL_EFFECT = {"failure_rate": 0.1, "p95_latency_ms": 0.05, "cost_per_call": 0.005, QUALITY_PREFIX: 0.1}


def _effect(table: dict[str, float], metric: str) -> float:
    return table[QUALITY_PREFIX if metric.startswith(QUALITY_PREFIX) else metric]


@dataclass(frozen=True, slots=True)
class ArmEstimate:
    arm: str
    calls: int
    value: float | None  # the primary metric
    low: float
    high: float
    success_rate: float | None
    p95_latency_ms: float | None
    cost_per_call: float | None
    utility: float | None
    stopped: str | None


@dataclass(frozen=True, slots=True)
class Comparison:
    arm: str
    against: str
    estimate: float  # arm's metric minus against's
    low: float
    high: float
    better: bool  # declared better, in the metric's direction
    worse: bool


@dataclass(frozen=True, slots=True)
class Evaluation:
    experiment: Experiment  # the new state (the same object when nothing changed)
    arms: list[ArmEstimate]
    comparisons: list[Comparison]
    changed: bool  # the state moved (an arm stopped, the experiment ended): a new version to publish
    error: str | None = None  # why the estimates could not be computed (a read never fails on it)


def evaluate_or_explain(exp: Experiment, tallies: dict[str, ArmTally], now: dt.datetime) -> Evaluation:
    """`evaluate` for readers (get_experiment, the report): a stored experiment the statistics cannot
    use is shown with the reason instead of failing the read; its state is left as stored."""
    try:
        return evaluate(exp, tallies, now)
    except Exception as error:  # noqa: BLE001 - whatever a stored record provokes, the read answers
        return Evaluation(exp, [], [], False, f"{type(error).__name__}: {str(error)[:300]}")


def _stats(t: ArmTally, metric: str) -> ArmStats:
    if metric.startswith(QUALITY_PREFIX):  # n is the feedback received, not the calls
        return ArmStats(*t.quality.get(metric.removeprefix(QUALITY_PREFIX), (0, 0.0, 0.0)))
    if metric == "success_rate":
        return ArmStats(t.calls, t.successes, t.successes)
    if metric == "failure_rate":
        failures = t.calls - t.successes
        return ArmStats(t.calls, failures, failures)
    if metric == "cost_per_call":
        return ArmStats(t.calls, t.cost_sum, t.cost_squares)
    return ArmStats(t.calls, t.utility_sum, t.utility_squares)


def interval(t: ArmTally, metric: str, tau: float, alpha: float) -> tuple[float | None, float, float]:
    """(estimate, low, high) of one arm's metric, always valid at level alpha."""
    if metric == "p95_latency_ms":
        low, high = quantile_interval(t.latency, 0.95, tau, alpha, MIN_CALLS)
        return histogram.quantile(t.latency, 0.95), low, high
    s = _stats(t, metric)
    low, high = mean_interval(s, tau, alpha, MIN_CALLS, _variance_floor(s, metric))
    return (s.mean if s.n else None), low, high


def _variance_floor(s: ArmStats, metric: str) -> float:
    """Rates are 0 or 1 per call, scores lie in [0, 1]: none has a variance of 0 because the first
    calls happened to agree. Costs and utilities have no such bound: their own variance stands."""
    if metric in ("success_rate", "failure_rate"):
        return rate_variance_floor(s)
    if metric.startswith(QUALITY_PREFIX) and s.variance == 0:
        return rate_variance_floor(s)
    return 0.0


def compare(a: ArmTally, b: ArmTally, metric: str, tau: float, alpha: float) -> tuple[float, float, float]:
    """(estimate, low, high) of b's metric minus a's, always valid at level alpha."""
    if metric == "p95_latency_ms":
        ea, la, ha = interval(a, metric, tau, alpha / 2)
        eb, lb, hb = interval(b, metric, tau, alpha / 2)
        estimate = (eb or 0.0) - (ea or 0.0)
        return estimate, lb - ha, hb - la
    d = difference(_stats(a, metric), _stats(b, metric), tau, alpha, MIN_CALLS)
    return d.estimate, d.low, d.high


def evaluate(exp: Experiment, tallies: dict[str, ArmTally], now: dt.datetime, alpha: float = ALPHA) -> Evaluation:
    metric = exp.primary_metric
    tau = exp.minimum_effect or _effect(DEFAULT_EFFECT, metric)
    tally = {a.name: tallies.get(a.name) or ArmTally() for a in exp.arms}
    arms = list(exp.arms)
    changed = False
    if exp.status == "running":
        # guardrails guard the treatments (the control is what runs anyway), each test at alpha over
        # the number of tests: a family of arms x guardrails at alpha in all
        guarded_level = alpha / max(1, (len(arms) - 1) * len(exp.guardrails))
        for i, arm in enumerate(arms):
            if i == 0 or arm.stopped is not None:
                continue
            for g in exp.guardrails:
                _, low, high = interval(tally[arm.name], g.metric, _effect(GUARDRAIL_EFFECT, g.metric), guarded_level)
                if g.above is not None and low > g.above:
                    reason = (
                        f"guardrail: {g.metric} is above {g.above:g} (at least {low:.4g}, "
                        f"always-valid interval at {guarded_level:.3g}, after {tally[arm.name].calls} calls)"
                    )
                elif g.below is not None and high < g.below:
                    reason = (
                        f"guardrail: {g.metric} is below {g.below:g} (at most {high:.4g}, always-valid interval "
                        f"at {guarded_level:.3g}, after {_stats(tally[arm.name], g.metric).n} feedback)"
                    )
                else:
                    continue
                arms[i] = arm.model_copy(update={"stopped": reason})
                changed = True
                break
    running = [a.name for a in arms if a.stopped is None]
    pairs = list(itertools.combinations(running, 2))
    level = alpha / max(1, len(pairs))
    higher = higher_is_better(metric)
    comparisons = []
    for a, b in pairs:
        estimate, low, high = compare(tally[a], tally[b], metric, tau, level)
        b_better = low > 0 if higher else high < 0
        b_worse = high < 0 if higher else low > 0
        comparisons.append(Comparison(b, a, estimate, low, high, b_better, b_worse))
    status, winner, reason = exp.status, exp.winner, exp.reason
    if exp.status == "running":
        beats = {name: 0 for name in running}
        for c in comparisons:
            if c.better:
                beats[c.arm] += 1
            elif c.worse:
                beats[c.against] += 1
        best = [name for name, n in beats.items() if n == len(running) - 1]
        if len(running) == 1 and len(arms) > 1:  # the control alone: nothing is left to compare it with
            status = "completed"
            reason = f"every arm but the control {running[0]} was stopped by a guardrail: no winner"
        elif len(best) == 1:
            status, winner = "completed", best[0]
            reason = f"{best[0]} is better than every other arm on {metric} (always-valid intervals at {alpha:g})"
        elif now >= exp.ends_at:
            status, reason = "completed", "reached its maximum duration without a clear winner"
        changed = changed or status != exp.status
    new = exp.changed(arms=arms, status=status, winner=winner, reason=reason) if changed else exp
    estimates = []
    for arm in arms:
        t = tally[arm.name]
        value, low, high = interval(t, metric, tau, alpha)
        estimates.append(
            ArmEstimate(
                arm=arm.name,
                calls=t.calls,
                value=value,
                low=low,
                high=high,
                success_rate=t.successes / t.calls if t.calls else None,
                p95_latency_ms=histogram.quantile(t.latency, 0.95),
                cost_per_call=t.cost_sum / t.calls if t.calls else None,
                utility=t.utility_sum / t.calls if t.calls else None,
                stopped=arm.stopped,
            )
        )
    return Evaluation(new, estimates, comparisons, changed)
