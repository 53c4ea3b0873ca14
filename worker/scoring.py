"""How good a model is for a task type, from its recent calls.

score = quality - latency_weight * p95 / (p95 + latency_ref_ms) - cost_weight * cost / (cost + cost_ref_usd)

quality is the Wilson lower bound (95 %) of the success rate, so 3/3 does not beat 970/1000. The
latency and cost terms are squashed into [0, 1) and weighted lightly (0.03 and 0.02 by default),
so together they are worth at most 5 points of success rate: quality first, and among models of
nearly the same quality, the faster, then the cheaper. Weights and references can be set per task
type (ROUTING_WEIGHTS), e.g. more weight on latency for chat.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Weights:
    latency: float = 0.03
    cost: float = 0.02
    latency_ref_ms: float = 4000.0
    cost_ref_usd: float = 0.01


@dataclass(frozen=True)
class Evidence:
    model_id: str
    layer: str
    calls: int
    successes: int
    p95_latency_ms: float
    avg_cost_usd: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.calls if self.calls else 0.0


def wilson_lower_bound(successes: int, calls: int, z: float = Z_95) -> float:
    if calls <= 0:
        return 0.0
    p = successes / calls
    denominator = 1 + z * z / calls
    centre = p + z * z / (2 * calls)
    margin = z * math.sqrt(p * (1 - p) / calls + z * z / (4 * calls * calls))
    return max(0.0, (centre - margin) / denominator)


def utility(quality: float, p95_latency_ms: float, avg_cost_usd: float, w: Weights) -> float:
    latency = p95_latency_ms / (p95_latency_ms + w.latency_ref_ms) if p95_latency_ms > 0 else 0.0
    cost = avg_cost_usd / (avg_cost_usd + w.cost_ref_usd) if avg_cost_usd > 0 else 0.0
    return quality - w.latency * latency - w.cost * cost


def score(e: Evidence, w: Weights) -> float:
    return utility(wilson_lower_bound(e.successes, e.calls), e.p95_latency_ms, e.avg_cost_usd, w)


def traffic_split(
    evidence: list[Evidence], w: Weights, *, exploration: float = 0.05, draws: int = 2000, seed_text: str = ""
) -> dict[str, float]:
    """Weights that sum to 1: Thompson sampling for the exploit share, plus a bounded exploration share.

    Each draw samples every model's success rate from its Beta(successes + 1, failures + 1) posterior
    and counts which model's utility is best; a model's exploit weight is its share of wins. The
    exploration share (at most `exploration`) goes to models in proportion to 1/sqrt(1 + calls), so a
    model with little recent data keeps a small flow of traffic and can win its place back. The seed
    comes from `seed_text`, so every pod computes the same split from the same evidence.
    """
    if not evidence:
        return {}
    rng = random.Random(int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "big"))
    wins = dict.fromkeys((e.model_id for e in evidence), 0)
    for _ in range(draws):
        best = max(evidence, key=lambda e: utility(
            rng.betavariate(e.successes + 1, e.calls - e.successes + 1), e.p95_latency_ms, e.avg_cost_usd, w))
        wins[best.model_id] += 1
    curiosity = {e.model_id: 1 / math.sqrt(1 + e.calls) for e in evidence}
    total_curiosity = sum(curiosity.values())
    split = {m: (1 - exploration) * wins[m] / draws + exploration * curiosity[m] / total_curiosity for m in wins}
    rounded = {m: round(v, 4) for m, v in split.items()}
    top = max(rounded, key=rounded.get)
    rounded[top] = round(rounded[top] + 1 - sum(rounded.values()), 4)  # exact sum after rounding
    return rounded
