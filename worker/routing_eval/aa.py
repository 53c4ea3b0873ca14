"""The experiment analysis under the traffic operators run: seeded runs where the truth is known, looked
at by the project's own `evaluate()` at the leader's cadence (every EXPERIMENTS_INTERVAL_S, 10 s).

Each tick draws the calls of that tick for every arm (numpy), adds them to the arms' tallies exactly
as the flush does (sums, sums of squares, the latency histogram, feedback sums), and evaluates. A run
ends at its duration, or when the experiment leaves `running`. What is counted:
- a false winner: a winner declared although the arms are identical (A/A);
- a guardrail stop: an arm stopped although its guarded metric sits at or inside the limit;
- power: the better arm declared the winner (A/B), and after how many calls.
"""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from worker.calls import histogram
from worker.experiments.contract import Experiment, ExperimentSpec
from worker.experiments.evaluate import evaluate
from worker.experiments.tally import ArmTally, utility_of

TICK_S = 10.0
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ArmWorld:
    """The hidden truth of one arm's calls."""

    success: float = 0.95
    latency_median_ms: float = 800.0
    latency_sigma: float = 0.5
    cost_median_usd: float = 0.002
    cost_sigma: float = 1.0  # lognormal: heavy-tailed, as real per-call costs are
    quality_mean: float = 0.8  # feedback scores in [0, 1] (a Beta with this mean)
    feedback_share: float = 0.3  # the share of calls that get feedback
    session_sd: float = 0.0  # with session units: the spread of success between sessions (logit scale)


@dataclass(frozen=True)
class Setup:
    metric: str = "success_rate"
    shares: tuple[float, ...] = (0.5, 0.5)
    rate_per_s: float = 5.0
    duration_s: float = 2 * 3600
    arms: tuple[ArmWorld, ...] = (ArmWorld(), ArmWorld())
    guardrails: tuple[dict, ...] = ()
    minimum_effect: float | None = None
    calls_per_session: int = 1  # > 1: arms are assigned per session, and its calls share its success rate


@dataclass
class Outcome:
    winner: str | None = None
    stopped: dict[str, str] = field(default_factory=dict)  # arm -> reason
    calls: dict[str, int] = field(default_factory=dict)
    status: str = "running"
    looks: int = 0


def spec_of(setup: Setup) -> ExperimentSpec:
    arms = [
        {"name": f"arm{i}", "share": share, "strategy": {"kind": "model", "model": f"m{i}", "layer": "fast"}}
        for i, share in enumerate(setup.shares)
    ]
    fields = {
        "experiment_id": "aa",
        "name": "simulated",
        "task_types": ["coding"],
        "arms": arms,
        "primary_metric": setup.metric,
        "guardrails": list(setup.guardrails),
        "max_duration_s": max(60, int(setup.duration_s) + 60),
    }
    if setup.minimum_effect is not None:
        fields["minimum_effect"] = setup.minimum_effect
    return ExperimentSpec.model_validate(fields)


class _Stream:
    """One arm's calls, drawn up front for the whole run (numpy), consumed in order: a tick's tally is
    the running sums at the calls consumed so far, so a look costs no per-call Python work."""

    def __init__(self, world: ArmWorld, most: int, rng: np.random.Generator, per_session: int, needs: set[str]):
        n = most
        if per_session > 1 and world.session_sd > 0:  # each session's success rate drawn around the arm's
            logit = math.log(world.success / (1 - world.success)) + rng.normal(
                0, world.session_sd, n // per_session + 1
            )
            ok = rng.random(n) < np.repeat(1 / (1 + np.exp(-logit)), per_session)[:n]
        else:
            ok = rng.random(n) < world.success
        latency = rng.lognormal(math.log(world.latency_median_ms), world.latency_sigma, n)
        cost = rng.lognormal(math.log(world.cost_median_usd), world.cost_sigma, n)
        utility = utility_of(ok, latency, cost)
        self.sums = {
            "successes": np.cumsum(ok),
            "cost_sum": np.cumsum(cost),
            "cost_squares": np.cumsum(cost * cost),
            "utility_sum": np.cumsum(utility),
            "utility_squares": np.cumsum(utility * utility),
        }
        self.buckets = (
            np.ceil(np.log(np.maximum(latency, histogram.MIN_TRACKED_MS)) / math.log(histogram.GAMMA)).astype(int)
            if "latency" in needs
            else None
        )
        judged = rng.random(n) < world.feedback_share
        a = 4.0 * world.quality_mean
        scores = np.where(judged, rng.beta(a, 4.0 - a, n), 0.0)
        self.quality = (np.cumsum(judged), np.cumsum(scores), np.cumsum(scores * scores))
        self.used = 0

    def take(self, t: ArmTally, k: int) -> None:
        if k == 0:
            return
        end = self.used + k
        if self.buckets is not None:
            keys, counts = np.unique(self.buckets[self.used : end], return_counts=True)
            for key, c in zip(keys.tolist(), counts.tolist()):
                t.latency[key] = t.latency.get(key, 0) + c
        self.used = end
        i = end - 1
        t.calls = end
        t.successes = int(self.sums["successes"][i])
        for name in ("cost_sum", "cost_squares", "utility_sum", "utility_squares"):
            setattr(t, name, float(self.sums[name][i]))
        count, total, squares = (q[i] for q in self.quality)
        t.quality["correctness"] = (int(count), float(total), float(squares))


def run(setup: Setup, seed: int) -> Outcome:
    """One experiment from start to end, looked at every TICK_S as the leader does."""
    rng = np.random.default_rng(seed)
    exp = Experiment.start(spec_of(setup), T0)
    names = [a.name for a in exp.arms]
    metrics = {setup.metric, *(g["metric"] for g in setup.guardrails)}
    needs = {"latency"} if "p95_latency_ms" in metrics else set()
    most = int(setup.rate_per_s * setup.duration_s) + 1
    streams = {
        name: _Stream(world, most, rng, setup.calls_per_session, needs) for name, world in zip(names, setup.arms)
    }
    tallies = {name: ArmTally() for name in names}
    shares = np.asarray(setup.shares) / sum(setup.shares)
    carry, t, out = 0.0, 0.0, Outcome()
    while t < setup.duration_s:
        t += TICK_S
        carry += setup.rate_per_s * TICK_S / setup.calls_per_session
        n = int(carry)  # requests, or sessions
        carry -= n
        live = np.array([0.0 if a.stopped else 1.0 for a in exp.arms])
        p = shares * live  # a stopped arm's requests route as usual, untagged: they are not in the tallies
        if p.sum() > 0:
            for name, k in zip(names, rng.multinomial(n, p / p.sum())):
                streams[name].take(tallies[name], int(k) * setup.calls_per_session)
        evaluation = evaluate(exp, tallies, T0 + dt.timedelta(seconds=t))
        out.looks += 1
        exp = evaluation.experiment
        if exp.status != "running":
            break
    out.winner, out.status = exp.winner, exp.status
    out.stopped = {a.name: a.stopped for a in exp.arms if a.stopped}
    out.calls = {name: tallies[name].calls for name in names}
    return out


@dataclass(frozen=True)
class Rate:
    """How often something happened over seeded runs, with its standard error."""

    hits: int
    runs: int

    @property
    def value(self) -> float:
        return self.hits / self.runs if self.runs else 0.0

    @property
    def se(self) -> float:
        return math.sqrt(self.value * (1 - self.value) / self.runs) if self.runs else 0.0

    def __str__(self) -> str:
        return f"{self.value:.1%} (SE {self.se:.1%}, {self.hits}/{self.runs})"


def outcomes(setup: Setup, runs: int, seed: int = 0, processes: int = 1) -> list[Outcome]:
    """Runs seeded seed, seed + 1, ...: each is independent, so `processes` > 1 spreads them over cores
    (the same outcomes, in the same order)."""
    seeds = range(seed, seed + runs)
    if processes <= 1:
        return [run(setup, s) for s in seeds]
    context = multiprocessing.get_context("forkserver")  # no fork of a process that may hold threads
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        return list(pool.map(run, [setup] * runs, seeds, chunksize=max(1, runs // (4 * processes))))


def false_winners(setup: Setup, runs: int, seed: int = 0, processes: int = 1) -> Rate:
    return Rate(sum(o.winner is not None for o in outcomes(setup, runs, seed, processes)), runs)


def guardrail_stops(setup: Setup, runs: int, seed: int = 0, processes: int = 1) -> tuple[Rate, Rate]:
    """(runs with an arm stopped by a guardrail, runs where such a stop was followed by a winner)."""
    outcomes_ = outcomes(setup, runs, seed, processes)
    stopped = sum(bool(o.stopped) for o in outcomes_)
    crowned = sum(bool(o.stopped) and o.winner is not None for o in outcomes_)
    return Rate(stopped, runs), Rate(crowned, runs)


METRICS = ("success_rate", "utility", "cost_per_call", "p95_latency_ms", "quality:correctness")


def main() -> None:
    """The grid behind docs/experiments.md: A/A false winners per metric, shares, rate and duration,
    and stops of an arm whose p95 sits at its guardrail's limit. Progress on stderr, a table on stdout."""
    import argparse
    import sys
    import time

    p = argparse.ArgumentParser(description="A/A runs of the experiment analysis at the leader's cadence")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--rates", type=float, nargs="+", default=[5.0, 50.0])
    p.add_argument("--hours", type=float, nargs="+", default=[2.0])
    p.add_argument("--metrics", nargs="+", default=list(METRICS))
    p.add_argument("--shares", nargs="+", default=["0.5,0.5", "0.9,0.1"])
    p.add_argument("--guardrail", action="store_true", help="p95 at its guardrail's limit instead of A/A")
    p.add_argument("--processes", type=int, default=1, help="spread the runs over this many cores")
    a = p.parse_args()
    print("| what | shares | calls/s | hours | rate (SE, runs) |\n| --- | --- | ---: | ---: | --- |")
    for hours in a.hours:
        for rate in a.rates:
            for shares_text in a.shares:
                shares = tuple(float(x) for x in shares_text.split(","))
                for metric in ["guardrail: p95 at its limit"] if a.guardrail else a.metrics:
                    began = time.monotonic()
                    if a.guardrail:
                        world = ArmWorld()
                        limit = world.latency_median_ms * math.exp(1.6448536269514722 * world.latency_sigma)
                        setup = Setup(
                            shares=shares,
                            rate_per_s=rate,
                            duration_s=hours * 3600,
                            guardrails=({"metric": "p95_latency_ms", "above": limit},),
                        )
                        result, crowned = guardrail_stops(setup, a.runs, processes=a.processes)
                        text = f"{result}; then a winner: {crowned}"
                    else:
                        setup = Setup(metric=metric, shares=shares, rate_per_s=rate, duration_s=hours * 3600)
                        text = str(false_winners(setup, a.runs, processes=a.processes))
                    print(f"| {metric} | {shares_text} | {rate:g} | {hours:g} | {text} |", flush=True)
                    print(
                        f"{metric} {shares_text} {rate:g}/s {hours:g} h: {time.monotonic() - began:.0f} s",
                        file=sys.stderr,
                    )


if __name__ == "__main__":
    main()
