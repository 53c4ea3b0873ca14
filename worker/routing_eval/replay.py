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

from worker.calls.decode import SCORE_UNIT, Call, Feedback
from worker.feedback.join import CallFacts
from worker.flush.deltas import minute_of
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
    strong_by_minute: tuple[float, ...] = ()  # the strong model's share of each minute's calls


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
    per_minute: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # minute -> strong calls, calls
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
            per_minute[int(start // 60)][0] += model == strong
            per_minute[int(start // 60)][1] += 1
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
    timeline = tuple(per_minute[m][0] / per_minute[m][1] for m in sorted(per_minute))
    return Point(value_usd, seed, correct / n, cost, strong_calls / n, strong_by_minute=timeline)


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
        """Every V in the target's cost range met it; False when no V landed there (nothing was judged)."""
        return bool(self.checks) and all(ok for *_, ok in self.checks)

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
            result.points.append(
                Point(p.value_usd, p.seed, p.accuracy, p.cost_usd, p.strong_share, pgr, c, p.strong_by_minute)
            )
    result.checks = checks(result)
    return result


def checks(result: Result) -> list[tuple[float, float, float, float, bool]]:
    """The target at each V whose median run lands in TARGET_COST_RANGE: (V, c, gain, oracle's gain, met).
    Where the oracle gains nothing over random routing (one task type, as in GSM8K) nothing is judged."""
    low, high = TARGET_COST_RANGE
    out = []
    for p in _medians(result.points):
        oracle_gain = result.oracle_cost.at(p.c) - p.c
        if low <= p.c <= high and oracle_gain > 1e-6:
            gain = p.pgr - p.c
            out.append((p.value_usd, p.c, gain, oracle_gain, gain >= TARGET_SHARE_OF_ORACLE_GAIN * oracle_gain))
    return out


def routellm_metrics(curve: Curve) -> dict[str, float | None]:
    """APGR and CPT(50 %), CPT(80 %) of a PGR-against-strong-share curve (RouteLLM's definitions)."""
    return {"APGR": curve.area(), "CPT(50%)": curve.first_reaching(0.5), "CPT(80%)": curve.first_reaching(0.8)}


def table(result: Result):
    """The sweep (medians over seeds per V), the baselines and RouteLLM's metrics, as rich tables."""
    from rich.table import Table

    weak, strong = result.outcomes.models
    seeds = len({p.seed for p in result.points})
    sweep = Table(title=f"{result.outcomes.name}: the learned loop at each V (median of {seeds} seeds)")
    for column in ("V (USD)", "strong share", "cost c", "PGR", "gain over random", "oracle's gain", "share of it"):
        sweep.add_column(column, justify="right")
    low, high = TARGET_COST_RANGE
    for p in _medians(result.points):
        oracle_gain = result.oracle_cost.at(p.c) - p.c
        in_range = low <= p.c <= high
        sweep.add_row(
            f"{p.value_usd:g}",
            f"{p.strong_share:.3f}",
            f"{p.c:.3f}",
            f"{p.pgr:.3f}",
            f"{p.pgr - p.c:+.3f}",
            f"{oracle_gain:+.3f}",
            (f"{(p.pgr - p.c) / oracle_gain:.2f}" if oracle_gain > 0 else "-")
            + ("" if in_range else " (out of range)"),
        )
    metrics = Table(title="RouteLLM's metrics against the strong model's share of calls")
    for column in ("router", "APGR", "CPT(50%)", "CPT(80%)"):
        metrics.add_column(column, justify="right")
    for name, curve in (
        ("learned loop", result.learned_share_curve()),
        ("per-task-type oracle", result.oracle_share),
        ("random", Curve(((0.0, 0.0), (1.0, 1.0)))),
    ):
        m = routellm_metrics(curve)
        metrics.add_row(name, *(("-" if v is None else f"{v:.3f}") for v in m.values()))
    (wa, wc), (sa, sc) = result.weak, result.strong
    baselines = Table(title="Each model alone")
    for column in ("model", "accuracy", "cost (USD)"):
        baselines.add_column(column, justify="right")
    baselines.add_row(weak, f"{wa:.4f}", f"{wc:.2f}")
    baselines.add_row(strong, f"{sa:.4f}", f"{sc:.2f}")
    return sweep, metrics, baselines


def plot(result: Result, folder: Path) -> Path:
    """Left: PGR against normalised cost (learned points per seed, their medians, random, the oracle).
    Middle: PGR against the strong model's share. Right: the strong share per minute at three Vs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cost_ax, share_ax, time_ax) = plt.subplots(1, 3, figsize=(17, 5.2))
    medians = _medians(result.points)
    for ax, oracle_curve, x_of, label in (
        (cost_ax, result.oracle_cost, lambda p: p.c, "normalised cost c"),
        (share_ax, result.oracle_share, lambda p: p.strong_share, "share of calls to the strong model"),
    ):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="random (PGR = x)")
        ax.plot(*zip(*oracle_curve.points), color="black", label="per-task-type oracle")
        ax.scatter([x_of(p) for p in result.points], [p.pgr for p in result.points], s=10, alpha=0.35, color="C0")
        ax.plot(
            [x_of(p) for p in medians], [p.pgr for p in medians], marker="o", color="C0", label="learned (median per V)"
        )
        for p in medians:
            ax.annotate(f"{p.value_usd:g}", (x_of(p), p.pgr), fontsize=7, xytext=(3, -9), textcoords="offset points")
        ax.scatter([0, 1], [0, 1], color="C3", zorder=5, label="each model alone")
        ax.set_xlabel(label)
        ax.set_ylabel("PGR")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    if TARGET_COST_RANGE:
        cost_ax.axvspan(*TARGET_COST_RANGE, color="green", alpha=0.05)
    picks = [medians[i] for i in sorted({len(medians) // 4, len(medians) // 2, 3 * len(medians) // 4})]
    for p in picks:
        time_ax.plot(range(len(p.strong_by_minute)), p.strong_by_minute, label=f"V = ${p.value_usd:g}")
    time_ax.set_ylim(0, 1)
    time_ax.set_xlabel("minutes into the pass")
    time_ax.set_ylabel("share of calls to the strong model")
    time_ax.grid(alpha=0.3)
    time_ax.legend(fontsize=8)
    weak, strong = result.outcomes.models
    fig.suptitle(
        f"{result.outcomes.name}: {len(result.outcomes.prompts):,} prompts, {weak} vs {strong}; "
        "one pass at the replay's rate, late correctness feedback on a share of calls"
    )
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"replay-{result.outcomes.name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
