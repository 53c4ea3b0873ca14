"""Real per-prompt outcomes replayed through the closed loop: what the learned rule buys at each V.

A table says, for every prompt, which models answered it correctly. The replay sends the prompts in
a random order at `rate` per second to the router that obeys the published rules (the worker's
engine on the in-memory store, `ObeyingRouter`); each call's cost comes from the prompt's length
and list prices; a share of the calls gets correctness feedback, late. Sweeping V, the value of a
good answer, traces the learned rule's cost-quality curve, set beside random routing (PGR = c),
each model alone, and the per-task-type oracle (task types wholly to the strong model in order of
accuracy gained per extra dollar). The metrics are RouteLLM's (Ong et al., 2024):
PGR = (accuracy - weak alone) / (strong alone - weak alone), APGR and CPT(x %) against the share of
strong-model calls, and the normalised cost c = (cost - all weak) / (all strong - all weak).
"""

from __future__ import annotations

import csv
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from worker.calls.aggregate import minute_of
from worker.calls.decode import SCORE_UNIT, Call, Feedback
from worker.feedback.join import CallFacts
from worker.routing.heuristics import Policy
from worker.routing.scoring import Weights
from worker.routing_eval.routers import ObeyingRouter
from worker.routing_eval.simulate import EPOCH, FLUSH_DELAY_S
from worker.routing_eval.world import Scenario, SimModel

# USD per million input and output tokens (list prices)
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4-1106-preview": (10.0, 30.0),
    "mixtral-8x7b-instruct-v0.1": (0.60, 0.60),
}
CHARS_PER_TOKEN = 4.0
PROMPT_OVERHEAD_TOKENS = 20
OUTPUT_TOKENS = 5
LATENCY_MS = 1000.0  # the same for both models: the replay is about quality and cost
FEEDBACK_NAME = "correctness"
DEFAULT_VALUES = (0.002, 0.003, 0.004, 0.006, 0.008, 0.011, 0.015, 0.02, 0.03, 0.05, 0.1)
TARGET_SHARE_OF_ORACLE_GAIN = 0.7
TARGET_COST_RANGE = (0.2, 0.8)


@dataclass(frozen=True)
class Prompt:
    task_type: str
    chars: int
    correct: dict[str, bool]


@dataclass(frozen=True)
class Outcomes:
    """A per-prompt outcome table: the weak (cheaper) model first."""

    name: str
    models: tuple[str, str]  # weak, strong
    prompts: tuple[Prompt, ...]

    def cost(self, model: str, prompt: Prompt) -> float:
        price_in, price_out = PRICES[model]
        tokens_in = prompt.chars / CHARS_PER_TOKEN + PROMPT_OVERHEAD_TOKENS
        return (tokens_in * price_in + OUTPUT_TOKENS * price_out) / 1e6

    def alone(self, model: str) -> tuple[float, float]:
        """(accuracy, total cost) with every prompt sent to `model`."""
        n = len(self.prompts)
        return sum(p.correct[model] for p in self.prompts) / n, sum(self.cost(model, p) for p in self.prompts)


def load(path: Path) -> Outcomes:
    """A CSV with columns task_type, prompt, and one 0/1 column per model (the cheaper one first by price)."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = [c for c in (reader.fieldnames or []) if c not in ("task_type", "prompt")]
        unknown = [c for c in columns if c not in PRICES]
        if len(columns) != 2 or unknown:
            raise ValueError(
                f"{path}: expected two model columns with known prices ({', '.join(sorted(PRICES))}), got {columns}"
            )
        prompts = tuple(
            Prompt(row["task_type"], len(row["prompt"]), {m: row[m].strip() == "1" for m in columns}) for row in reader
        )
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    weak, strong = sorted(columns, key=lambda m: PRICES[m][0] + PRICES[m][1])
    return Outcomes(path.stem, (weak, strong), prompts)


@dataclass(frozen=True)
class Point:
    value_usd: float
    seed: int
    accuracy: float
    cost_usd: float
    strong_share: float
    pgr: float = 0.0
    c: float = 0.0  # normalised cost


def replay(
    outcomes: Outcomes,
    value_usd: float,
    *,
    seed: int = 1,
    rate: float = 4.0,
    feedback_share: float = 0.3,
    feedback_delay_s: tuple[float, float] = (1.0, 60.0),
    policy: Policy = Policy(),
    interval_s: float = 60.0,
) -> Point:
    """One pass over the table in a random order at `rate` prompts per second, routed by the rules."""
    rng = random.Random(seed)
    order = list(outcomes.prompts)
    rng.shuffle(order)
    weak, strong = outcomes.models
    tasks = sorted({p.task_type for p in order})
    scenario = Scenario(
        name=f"replay-{outcomes.name}",
        title=f"{outcomes.name} replay at V = ${value_usd:g}",
        models=tuple(SimModel(m, "balanced", dict.fromkeys(tasks, 1.0), LATENCY_MS) for m in outcomes.models),
        rates={},
        duration_s=math.ceil(len(order) / rate) + 1,
        weights=Weights(value_usd=value_usd),
        seed=seed,
    )
    router = ObeyingRouter(scenario, policy=policy, interval_s=interval_s)
    router.origin = EPOCH
    calls_due: dict[int, list[Call]] = defaultdict(list)
    feedback_due: dict[int, list[tuple[Feedback, CallFacts]]] = defaultdict(list)
    correct = strong_calls = 0
    cost = 0.0
    sent = 0
    for t in range(scenario.duration_s + int(feedback_delay_s[1]) + 3):
        now = EPOCH + t
        router.store.flush(calls_due.pop(t, []))
        router.store.feedback(feedback_due.pop(t, []))
        router.tick(t, now)
        arrivals = min(len(order), int((t + 1) * rate)) - sent
        for i in range(arrivals):
            prompt = order[sent]
            start = t + (i + 0.5) / arrivals
            model = router.pick(prompt.task_type, rng.random(), start)
            ok = prompt.correct[model]
            price = outcomes.cost(model, prompt)
            correct += ok
            strong_calls += model == strong
            cost += price
            completed = start + LATENCY_MS / 1000.0
            event_id = f"call-{sent}"
            call = Call(event_id, EPOCH + completed, model, prompt.task_type, "balanced", True, LATENCY_MS, price, 0, 0)
            calls_due[math.ceil(completed + FLUSH_DELAY_S)].append(call)
            if rng.random() < feedback_share:
                judged_at = completed + rng.uniform(*feedback_delay_s)
                feedback = Feedback(
                    f"feedback-{sent}", event_id, None, FEEDBACK_NAME, "eval", SCORE_UNIT * ok, EPOCH + judged_at
                )
                facts = CallFacts(event_id, minute_of(call.occurred_at), model, prompt.task_type, "balanced")
                feedback_due[math.ceil(judged_at + FLUSH_DELAY_S)].append((feedback, facts))
            sent += 1
    n = len(order)
    return Point(value_usd, seed, correct / n, cost, strong_calls / n)


@dataclass(frozen=True)
class Curve:
    """A cost-quality curve through (c, PGR) points, from (0, 0) to (1, 1)."""

    points: tuple[tuple[float, float], ...]

    def at(self, c: float) -> float:
        pts = self.points
        for (c0, p0), (c1, p1) in zip(pts, pts[1:]):
            if c0 <= c <= c1:
                return p0 if c1 == c0 else p0 + (p1 - p0) * (c - c0) / (c1 - c0)
        return pts[-1][1] if c > pts[-1][0] else pts[0][1]

    def area(self) -> float:
        return sum((c1 - c0) * (p0 + p1) / 2 for (c0, p0), (c1, p1) in zip(self.points, self.points[1:]))

    def first_reaching(self, pgr: float) -> float | None:
        """The smallest x at which the curve reaches `pgr` (CPT), interpolated; None if it never does."""
        pts = self.points
        for (c0, p0), (c1, p1) in zip(pts, pts[1:]):
            if p1 >= pgr:
                return c0 if p0 >= pgr or p1 == p0 else c0 + (c1 - c0) * (pgr - p0) / (p1 - p0)
        return None


def oracle(outcomes: Outcomes, axis: str = "cost") -> Curve:
    """The per-task-type oracle: whole task types moved to the strong model, the best accuracy gained
    per extra dollar (or per extra strong-model call, on the share axis) first."""
    weak, strong = outcomes.models
    weak_acc, weak_cost = outcomes.alone(weak)
    strong_acc, strong_cost = outcomes.alone(strong)
    n = len(outcomes.prompts)
    groups: dict[str, list[Prompt]] = defaultdict(list)
    for p in outcomes.prompts:
        groups[p.task_type].append(p)
    steps = []
    for prompts in groups.values():
        gain = sum(p.correct[strong] - p.correct[weak] for p in prompts) / n / (strong_acc - weak_acc)
        extra = (
            sum(outcomes.cost(strong, p) - outcomes.cost(weak, p) for p in prompts) / (strong_cost - weak_cost)
            if axis == "cost"
            else len(prompts) / n
        )
        steps.append((gain, extra))
    points = [(0.0, 0.0)]
    for gain, extra in sorted(steps, key=lambda s: -s[0] / s[1]):
        c, pgr = points[-1]
        points.append((c + extra, pgr + gain))
    return Curve(tuple(points))


@dataclass
class Result:
    outcomes: Outcomes
    points: list[Point]
    weak: tuple[float, float]  # accuracy, cost
    strong: tuple[float, float]
    oracle_cost: Curve
    oracle_share: Curve
    checks: list[tuple[float, float, float, float, bool]] = field(default_factory=list)  # V, c, gain, oracle gain, met

    @property
    def met(self) -> bool:
        return all(ok for *_, ok in self.checks)

    def learned_share_curve(self) -> Curve:
        """PGR against the strong model's share over the sweep (medians per V), from (0, 0) to (1, 1): the
        measured points joined by straight lines, as RouteLLM draws its threshold sweeps."""
        by_v = _medians(self.points)
        return Curve(tuple(sorted({(0.0, 0.0), (1.0, 1.0), *((p.strong_share, p.pgr) for p in by_v)})))

    def learned_cost_curve(self) -> Curve:
        by_v = _medians(self.points)
        return Curve(tuple(sorted({(0.0, 0.0), (1.0, 1.0), *((p.c, p.pgr) for p in by_v)})))


def _medians(points: Sequence[Point]) -> list[Point]:
    by_v: dict[float, list[Point]] = defaultdict(list)
    for p in points:
        by_v[p.value_usd].append(p)
    out = []
    for _, ps in sorted(by_v.items()):
        mid = sorted(ps, key=lambda p: p.pgr - p.c)[len(ps) // 2]
        out.append(mid)
    return out


def evaluate(
    outcomes: Outcomes, values: Sequence[float] = DEFAULT_VALUES, seeds: Sequence[int] = (1,), **replay_options
) -> Result:
    weak, strong = outcomes.models
    result = Result(
        outcomes, [], outcomes.alone(weak), outcomes.alone(strong), oracle(outcomes), oracle(outcomes, "share")
    )
    (weak_acc, weak_cost), (strong_acc, strong_cost) = result.weak, result.strong
    for v in values:
        for seed in seeds:
            p = replay(outcomes, v, seed=seed, **replay_options)
            pgr = (p.accuracy - weak_acc) / (strong_acc - weak_acc)
            c = (p.cost_usd - weak_cost) / (strong_cost - weak_cost)
            result.points.append(Point(p.value_usd, p.seed, p.accuracy, p.cost_usd, p.strong_share, pgr, c))
    low, high = TARGET_COST_RANGE
    for p in _medians(result.points):
        if low <= p.c <= high:
            oracle_gain = result.oracle_cost.at(p.c) - p.c
            gain = p.pgr - p.c
            result.checks.append(
                (p.value_usd, p.c, gain, oracle_gain, gain >= TARGET_SHARE_OF_ORACLE_GAIN * oracle_gain)
            )
    return result
