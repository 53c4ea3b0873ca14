"""How good a model is for a task type, from its recent calls and the feedback on their answers.

Without feedback on the task type (the success objective):

    score = success - latency_weight * p95 / (p95 + latency_ref_ms) - cost_weight * cost / (cost + cost_ref_usd)

success is the Wilson lower bound (95 %) of the success rate, so 3/3 does not beat 970/1000. The
latency and cost terms are squashed into [0, 1) and weighted lightly (0.03 and 0.02 by default),
so together they are worth at most 5 points of success rate: success first, and among models of
nearly the same success, the faster, then the cheaper. Weights and references can be set per task
type (ROUTING_WEIGHTS), e.g. more weight on latency for chat.

With feedback on the task type (the value objective), in USD per call:

    value = V * P(good answer) - cost - V * latency_weight * p95 / (p95 + latency_ref_ms)
    P(good answer) = success rate * mean quality score of the answered calls

V (`value_usd`, ROUTING_VALUE_USD) is what a good answer is worth. The quality score's posterior is
a Beta over scores in [0, 1] whose prior pools what every other task type says about the model
(`quality_prior`), so a rare task type starts from the model's general quality, not from nothing.

Call counts are age-weighted (worker.routing.evidence), so they may be fractional; `raw_calls` is the
plain count in the window.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Weights:
    latency: float = 0.03
    cost: float = 0.02
    latency_ref_ms: float = 4000.0
    cost_ref_usd: float = 0.01
    value_usd: float = 0.1  # V: what a good answer is worth, when the task type has feedback
    quality_name: str | None = None  # the feedback name routing weighs (None: the most given one)


def weights_for(
    task_type: str,
    value_usd: float,
    configured: Mapping[str, Mapping[str, Any]],
    promoted: Mapping[str, Mapping[str, Any]],
) -> Weights:
    """What a task type is scored with: an experiment's promoted weights (for it, else for every task
    type: "*"), else its ROUTING_WEIGHTS entry, over the defaults with ROUTING_VALUE_USD."""
    base = Weights(value_usd=value_usd)
    chosen = promoted.get(task_type) or promoted.get("*")
    return replace(base, **(chosen if chosen is not None else configured.get(task_type, {})))


@dataclass(frozen=True)
class Evidence:
    model_id: str
    layer: str
    calls: float
    successes: float
    p95_latency_ms: float
    avg_cost_usd: float
    raw_calls: int = -1  # -1: same as calls
    quality: Quality | None = None  # feedback on the answers (None: the task type has none; success objective)

    def __post_init__(self) -> None:
        if self.raw_calls < 0:
            object.__setattr__(self, "raw_calls", int(round(self.calls)))

    @property
    def success_rate(self) -> float:
        return self.successes / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Quality:
    """Age-weighted feedback scores of one model on one task type, with the prior pooled from the others."""

    name: str
    count: float  # weighted feedback count
    total: float  # weighted sum of scores in [0, 1]
    raw_count: int = 0
    prior: tuple[float, float] = (1.0, 1.0)  # Beta(a, b) before this task type's own feedback

    @property
    def posterior(self) -> tuple[float, float]:
        a, b = self.prior
        return a + max(0.0, self.total), b + max(0.0, self.count - self.total)

    @property
    def mean(self) -> float:
        a, b = self.posterior
        return a / (a + b)

    def interval(self, z: float = Z_95) -> tuple[float, float]:
        """A normal approximation of the posterior's 95 % interval, clipped to [0, 1]."""
        a, b = self.posterior
        n = a + b
        sd = math.sqrt(a * b / (n * n * (n + 1)))
        return max(0.0, self.mean - z * sd), min(1.0, self.mean + z * sd)


def value(success: float, quality: float, p95_latency_ms: float, avg_cost_usd: float, w: Weights) -> float:
    """USD per call: what the answer is worth when it is good, less its cost and latency."""
    latency = p95_latency_ms / (p95_latency_ms + w.latency_ref_ms) if p95_latency_ms > 0 else 0.0
    return w.value_usd * (success * quality - w.latency * latency) - avg_cost_usd


def wilson_lower_bound(successes: float, calls: float, z: float = Z_95) -> float:
    if calls <= 0:
        return 0.0
    p = min(1.0, max(0.0, successes / calls))
    denominator = 1 + z * z / calls
    centre = p + z * z / (2 * calls)
    margin = z * math.sqrt(p * (1 - p) / calls + z * z / (4 * calls * calls))
    return max(0.0, (centre - margin) / denominator)


def wilson_upper_bound(successes: float, calls: float, z: float = Z_95) -> float:
    if calls <= 0:
        return 1.0
    return 1.0 - wilson_lower_bound(calls - successes, calls, z)


def _penalty(p95_latency_ms: float, avg_cost_usd: float, w: Weights) -> float:
    latency = p95_latency_ms / (p95_latency_ms + w.latency_ref_ms) if p95_latency_ms > 0 else 0.0
    cost = avg_cost_usd / (avg_cost_usd + w.cost_ref_usd) if avg_cost_usd > 0 else 0.0
    return w.latency * latency + w.cost * cost


def utility(quality: float, p95_latency_ms: float, avg_cost_usd: float, w: Weights) -> float:
    return quality - _penalty(p95_latency_ms, avg_cost_usd, w)


def score(e: Evidence, w: Weights) -> float:
    """The objective at a cautious estimate: the success rate's lower bound (and the quality's mean)."""
    success = wilson_lower_bound(e.successes, e.calls)
    if e.quality is not None:
        return value(success, e.quality.mean, e.p95_latency_ms, e.avg_cost_usd, w)
    return utility(success, e.p95_latency_ms, e.avg_cost_usd, w)


def sampled(evidence: list[Evidence], w: Weights, rng: np.random.Generator, draws: int) -> np.ndarray:
    """Draws of each model's objective from its posteriors: shape (draws, models).

    Success rates from Beta(successes + 1, failures + 1); with feedback, quality scores from their
    Beta posteriors too, so a model with little feedback is still explored.
    """
    successes = np.array([max(0.0, e.successes) for e in evidence])
    failures = np.array([max(0.0, e.calls - e.successes) for e in evidence])
    s = rng.beta(successes + 1.0, failures + 1.0, size=(draws, len(evidence)))
    if all(e.quality is None for e in evidence):
        return s - np.array([_penalty(e.p95_latency_ms, e.avg_cost_usd, w) for e in evidence])
    posteriors = [e.quality.posterior if e.quality is not None else (1.0, 1.0) for e in evidence]
    q = rng.beta([a for a, _ in posteriors], [b for _, b in posteriors], size=(draws, len(evidence)))
    fixed = np.array([value(0.0, 0.0, e.p95_latency_ms, e.avg_cost_usd, w) for e in evidence])
    return w.value_usd * s * q + fixed


def probability_better(a: Evidence, b: Evidence, w: Weights, *, draws: int = 4000, seed_text: str = "") -> float:
    """Posterior probability that `a`'s objective beats `b`'s."""
    rng = np.random.Generator(np.random.PCG64(seed_of(seed_text)))
    samples = sampled([a, b], w, rng, draws)
    return float(np.mean(samples[:, 0] > samples[:, 1]))


def rounded_split(split: dict[str, float]) -> dict[str, float]:
    """Shares rounded to 4 decimals that still sum to exactly 1 (the largest takes the rounding)."""
    rounded = {m: round(v, 4) for m, v in split.items()}
    if rounded:
        top = max(sorted(rounded), key=rounded.__getitem__)
        rounded[top] = round(rounded[top] + 1 - sum(rounded.values()), 4)
    return rounded


def seed_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def traffic_split(
    evidence: list[Evidence],
    w: Weights,
    *,
    exploration: float = 0.05,
    draws: int = 2000,
    seed_text: str = "",
    newcomers: list[str] | None = None,
    little_data: float = 20.0,
) -> dict[str, float]:
    """Weights that sum to 1: Thompson sampling for the exploit share, plus a bounded exploration share.

    Each draw samples every model's objective from its posteriors (`sampled`) and counts which
    model's is best; a model's exploit weight is its share of wins (numpy,
    vectorised: O(draws x models)). The exploration share (at most `exploration`) goes only to models
    with fewer than `little_data` (age-weighted) calls, in proportion to 1/sqrt(1 + calls), and to
    `newcomers` (models without any evidence) as if they had 0 calls: a model with little or no
    recent data gets a small flow of traffic and can win its place, while a well-measured model
    costs no exploration (Thompson sampling already weighs its uncertainty).
    The seed comes from `seed_text`, so every pod computes the same split from the same evidence.
    """
    newcomers = [m for m in (newcomers or []) if m not in {e.model_id for e in evidence}]
    if not evidence and not newcomers:
        return {}
    split: dict[str, float] = {}
    if evidence:
        rng = np.random.Generator(np.random.PCG64(seed_of(seed_text)))
        samples = sampled(evidence, w, rng, draws)
        wins = np.bincount(np.argmax(samples, axis=1), minlength=len(evidence))
        exploit = 1.0 - exploration
        for e, won in zip(evidence, wins):
            split[e.model_id] = exploit * float(won) / draws
    else:
        exploit = 0.0
    curiosity = {e.model_id: 1 / math.sqrt(1 + e.calls) for e in evidence if e.calls < little_data}
    curiosity |= dict.fromkeys(newcomers, 1.0)
    total_curiosity = sum(curiosity.values())
    if not curiosity:
        split = {m: v / exploit for m, v in split.items()} if exploit else split
    for m, c in curiosity.items():
        split[m] = split.get(m, 0.0) + (1 - exploit) * c / total_curiosity
    return rounded_split(split)
