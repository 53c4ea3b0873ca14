"""Experiments in the closed loop, on a simulated clock: a router that obeys the published record.

Every request goes through `RoutingTable.pick` (the routers' own code) with its request id; only
tagged calls add to their arm (what the worker's flush does), and every `LOOK_S` the leader's
`evaluate` runs on the sums. A new version reaches the router `RECORD_LAG_S` later (the leader's
tick plus the topic), so a stopped arm keeps some traffic for that long, as in production.
`telemetry-worker experiment-eval` prints the table and writes one PNG per scenario.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from worker.experiments.contract import Experiment, ExperimentSpec, experiment_key
from worker.experiments.evaluate import Evaluation, evaluate
from worker.experiments.tally import ArmTally
from worker.gateway.table import RoutingTable
from worker.routing.contract import RoutingHeuristic
from worker.routing.heuristics import Decision

START = dt.datetime(2027, 1, 4, tzinfo=dt.UTC)
LOOK_S = 10
RECORD_LAG_S = 12  # EXPERIMENTS_INTERVAL_S (10 s) plus publication


@dataclass(frozen=True)
class Model:
    success: float
    latency_ms: float  # median of a lognormal with sigma 0.5
    cost_usd: float


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    models: dict[str, Model]
    learned: dict[str, float]  # the learned rule's split, which `learned` arms follow
    spec: dict  # create_experiment's body
    rate_per_s: float = 20.0
    duration_s: int = 3 * 3600
    expect_winner: str | None = None
    expect_stopped: tuple[str, ...] = ()


def _arm(name: str, share: float, model: str | None = None) -> dict:
    strategy = {"kind": "model", "model": model, "layer": "balanced"} if model else {"kind": "learned"}
    return {"name": name, "share": share, "strategy": strategy}


SCENARIOS = [
    Scenario(
        "ab-success",
        "a fixed model 3 points better than the learned rule's (90 % against 93 % success)",
        {"m-90": Model(0.90, 900, 0.002), "m-93": Model(0.93, 900, 0.002)},
        {"m-90": 1.0},
        {"arms": [_arm("learned", 0.5), _arm("fixed", 0.5, "m-93")], "primaryMetric": "success_rate"},
        expect_winner="fixed",
    ),
    Scenario(
        "a-a",
        "two identical arms: no winner may be declared; the maximum duration (2 h) ends it",
        {"m-90": Model(0.90, 900, 0.002)},
        {"m-90": 1.0},
        {
            "arms": [_arm("a", 0.5), _arm("b", 0.5)],
            "primaryMetric": "success_rate",
            "maxDurationS": 7200,
        },
    ),
    Scenario(
        "guardrail",
        "a third arm failing 40 % of calls is stopped by its guardrail; the others go on",
        {"m-90": Model(0.90, 900, 0.002), "m-93": Model(0.93, 900, 0.002), "m-60": Model(0.60, 900, 0.002)},
        {"m-90": 1.0},
        {
            "arms": [_arm("learned", 0.4), _arm("fixed", 0.4, "m-93"), _arm("broken", 0.2, "m-60")],
            "primaryMetric": "success_rate",
            "guardrails": [{"metric": "failure_rate", "above": 0.2}],
        },
        expect_winner="fixed",
        expect_stopped=("broken",),
    ),
    Scenario(
        "latency",
        "p95 latency: a model 30 % slower than the learned rule's, same success",
        {"m-fast": Model(0.95, 800, 0.002), "m-slow": Model(0.95, 1040, 0.002)},
        {"m-fast": 1.0},
        {"arms": [_arm("learned", 0.5), _arm("slow", 0.5, "m-slow")], "primaryMetric": "p95_latency_ms"},
        expect_winner="learned",
    ),
]


@dataclass
class Timeline:
    scenario: Scenario
    seed: int
    looks: list[float] = field(default_factory=list)  # minutes
    calls: dict[str, list[int]] = field(default_factory=dict)  # arm -> calls counted at each look
    intervals: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)  # arm vs control
    events: list[tuple[float, str]] = field(default_factory=list)  # (minute, what changed)
    final: Experiment | None = None
    ended_at_min: float | None = None
    stopped_after: dict[str, int] = field(default_factory=dict)  # arm -> its calls when stopped


def _learned_rule(split: dict[str, float]) -> RoutingHeuristic:
    best = max(split, key=lambda m: split[m])
    decision = Decision("coding", best, "balanced", [], dict(split), {}, reasoning="the evaluation's fixed rule")
    return RoutingHeuristic.learned(decision, 1, 3600, START)


def run(scenario: Scenario, seed: int) -> Timeline:
    rng = random.Random(seed)
    spec = ExperimentSpec.model_validate(
        {"experimentId": scenario.name, "name": scenario.title, "taskTypes": ["coding"], **scenario.spec}
    )
    exp = Experiment.start(spec, START)
    table = RoutingTable()
    table.apply("coding", _learned_rule(scenario.learned).model_dump_json().encode())
    table.apply(experiment_key(exp.experiment_id), exp.model_dump_json().encode())
    tallies = {a.name: ArmTally() for a in exp.arms}
    control = exp.arms[0].name
    out = Timeline(scenario, seed, calls={a.name: [] for a in exp.arms}, intervals={a.name: [] for a in exp.arms[1:]})
    pending: list[tuple[float, Experiment]] = []
    candidates = list(scenario.models)
    request = 0
    for second in range(scenario.duration_s):
        for _ in range(_poisson(rng, scenario.rate_per_s)):
            request += 1
            route = table.pick("coding", key=f"{seed}-{request}", candidates=candidates)
            if route.arm is None or route.model is None or exp.status != "running":
                continue
            m = scenario.models[route.model]
            tallies[route.arm].add(rng.random() < m.success, m.latency_ms * math.exp(rng.gauss(0, 0.5)), m.cost_usd)
        while pending and pending[0][0] <= second:
            table.apply(experiment_key(exp.experiment_id), pending.pop(0)[1].model_dump_json().encode())
        if second % LOOK_S or exp.status != "running":
            continue
        ev = evaluate(exp, tallies, START + dt.timedelta(seconds=second))
        _record(out, ev, second, control)
        if ev.changed:
            for before, after in zip(exp.arms, ev.experiment.arms, strict=True):
                if after.stopped and not before.stopped:
                    out.stopped_after[after.name] = tallies[after.name].calls
                    out.events.append((second / 60, f"{after.name} stopped"))
            exp = ev.experiment
            pending.append((second + RECORD_LAG_S, exp))
            if exp.status != "running":
                out.ended_at_min = second / 60
                out.events.append((second / 60, f"{exp.status}: {exp.winner or 'no winner'}"))
                break
    out.final = exp
    return out


def _record(out: Timeline, ev: Evaluation, second: int, control: str) -> None:
    out.looks.append(second / 60)
    for a in ev.arms:
        out.calls[a.arm].append(a.calls)
    by_pair = {(c.against, c.arm): c for c in ev.comparisons}
    for arm in out.intervals:
        c = by_pair.get((control, arm))
        out.intervals[arm].append((c.estimate, c.low, c.high) if c else (math.nan, math.nan, math.nan))


def _poisson(rng: random.Random, mean: float) -> int:
    n, limit, p = 0, math.exp(-mean), rng.random()
    while p > limit:
        n += 1
        p *= rng.random()
    return n


@dataclass(frozen=True)
class Summary:
    scenario: str
    runs: int
    correct: int  # runs that ended as expected (the expected winner, or none for A/A; the expected stops)
    median_end_min: float | None
    median_calls_to_decide: float | None
    median_stop_calls: float | None


def summarise(scenario: Scenario, timelines: list[Timeline]) -> Summary:
    def right(t: Timeline) -> bool:
        final = t.final
        if final is None:
            return False
        stopped = {a.name for a in final.arms if a.stopped}
        return final.winner == scenario.expect_winner and stopped == set(scenario.expect_stopped)

    ends = [t.ended_at_min for t in timelines if t.ended_at_min is not None]
    decided = [sum(c[-1] for c in t.calls.values() if c) for t in timelines if t.final and t.final.winner]
    stops = [n for t in timelines for n in t.stopped_after.values()]
    return Summary(
        scenario.name,
        len(timelines),
        sum(right(t) for t in timelines),
        statistics.median(ends) if ends else None,
        statistics.median(decided) if decided else None,
        statistics.median(stops) if stops else None,
    )


def plot(t: Timeline, folder: Path) -> Path:
    """Calls per arm, and each arm's always-valid interval against the control, over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.4), sharex=True)
    for arm, calls in t.calls.items():
        top.plot(t.looks[: len(calls)], calls, label=arm, linewidth=1.4)
    top.set_ylabel("calls counted per arm")
    top.legend(loc="upper left", fontsize=8)
    metric = t.final.primary_metric if t.final else ""
    for arm, series in t.intervals.items():
        xs = t.looks[: len(series)]
        lows = [lo if math.isfinite(lo) else math.nan for _, lo, _ in series]
        highs = [hi if math.isfinite(hi) else math.nan for _, _, hi in series]
        (line,) = bottom.plot(xs, [e for e, _, _ in series], label=f"{arm} - {t.final.arms[0].name if t.final else ''}")
        bottom.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.2)
    bottom.axhline(0, color="black", linewidth=0.8)
    bottom.set_ylabel(f"difference in {metric}\n(always-valid 95 % interval)")
    bottom.set_xlabel("minutes")
    bottom.legend(loc="upper right", fontsize=8)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        for at, what in t.events:
            ax.axvline(at, color="red" if "stopped" in what else "green", alpha=0.5, linewidth=0.9)
    finite = [abs(v) for s in t.intervals.values() for _, lo, hi in s for v in (lo, hi) if math.isfinite(v)]
    if finite:
        limit = max(finite) if metric == "p95_latency_ms" else min(max(finite), 0.3)
        bottom.set_ylim(-limit, limit)
    fig.suptitle(f"{t.scenario.name}: {t.scenario.title}\n" + "; ".join(f"{m:.0f} min: {w}" for m, w in t.events))
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"experiment-{t.scenario.name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def table(summaries: list[Summary]):
    from rich.table import Table

    out = Table(title="Experiments in the closed loop (simulated clock, 20 requests/s, a router that obeys the record)")
    for name in ("scenario", "runs ended as expected", "ended after (median, min)", "calls to decide", "stopped after"):
        out.add_column(name, justify="left" if name == "scenario" else "right")
    for s in summaries:
        out.add_row(
            s.scenario,
            f"{s.correct}/{s.runs}",
            "-" if s.median_end_min is None else f"{s.median_end_min:.1f}",
            "-" if s.median_calls_to_decide is None else f"{s.median_calls_to_decide:,.0f}",
            "-" if s.median_stop_calls is None else f"{s.median_stop_calls:,.0f} calls",
        )
    return out
