"""One task type's routing decision from its recent evidence, and when a new version is worth publishing.

The split (`weights`) is what the router obeys: Thompson sampling over the models that may take
traffic, a bounded exploration share that also reaches catalogue models without any evidence,
and a fixed probe share for each model whose breaker is half-open. `preferred_model` holds on
ties: a challenger replaces it only when better with confidence (a posterior probability of at
least SWITCH_CONFIDENCE that its utility is higher), or when the incumbent has all but lost its
share of the split.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from worker.routing.degradation import is_latency
from worker.routing.scoring import (
    Evidence,
    Weights,
    probability_better,
    rounded_split,
    score,
    traffic_split,
    wilson_lower_bound,
)

MAX_PROBE_TOTAL = 0.25  # however many models are probed, the rest of the split keeps 75 %
SWITCH_CONFIDENCE = 0.95  # posterior probability that the challenger is better, to replace the incumbent
LOST_SHARE = 0.05  # an incumbent whose exploit share fell to this is replaced without confidence


@dataclass(frozen=True)
class Policy:
    window_s: int = 3600
    half_life_s: float = 900.0
    min_calls: int = 20
    exploration: float = 0.03
    weight_change: float = 0.05
    smoothing: float = 1.0
    probe_share: float = 0.05
    max_models: int = 100  # per task type: what a stranger's distinct model ids can cost is bounded
    quality_prior_calls: float = 40.0  # the most feedback a pooled prior of a model's quality is worth


@dataclass(frozen=True)
class Decision:
    task_type: str
    preferred_model: str | None  # None: every model with evidence is excluded
    preferred_layer: str
    fallback_models: list[str]
    weights: dict[str, float]
    evidence: dict[str, dict]
    excluded: dict[str, str] = field(default_factory=dict)
    probes: dict[str, float] = field(default_factory=dict)
    reasoning: str = ""


def _evidence_row(e: Evidence, w: Weights) -> dict:
    row = {
        "calls": e.raw_calls,
        "effective_calls": round(e.calls, 3),
        "success_rate": round(e.success_rate, 6),
        "lower_bound": round(wilson_lower_bound(e.successes, e.calls), 6),
        "p95_latency_ms": round(e.p95_latency_ms, 3),
        "avg_cost_usd": round(e.avg_cost_usd, 8),
        "score": round(score(e, w), 6),
        "layer": e.layer,
    }
    if e.quality is not None:
        low, high = e.quality.interval()
        row["quality"] = {
            "name": e.quality.name,
            "mean": round(e.quality.mean, 6),
            "low": round(low, 6),
            "high": round(high, 6),
            "feedback": e.quality.raw_count,
            "effective_feedback": round(e.quality.count, 3),
            "value_usd": w.value_usd,
        }
    return row


def _quality_text(e: Evidence, w: Weights) -> str:
    if e.quality is None:
        return ""
    low, high = e.quality.interval()
    return (
        f"; {e.quality.name} quality {e.quality.mean:.3f} (95 % {low:.3f}-{high:.3f}, {e.quality.raw_count} feedback), "
        f"value {score(e, w):+.5f} USD per call at V = ${w.value_usd:g} per good answer"
    )


def _preferred(
    ranked: list[Evidence], exploit: dict[str, float], previous: dict | None, min_calls: float, w: Weights, seed: str
) -> Evidence:
    challenger = next((e for e in ranked if e.calls >= min_calls), ranked[0])
    incumbent_id = (previous or {}).get("preferred_model")
    incumbent = next((e for e in ranked if e.model_id == incumbent_id), None)
    if incumbent is None or incumbent is challenger:
        return challenger
    confidently_better = probability_better(challenger, incumbent, w, seed_text=seed) >= SWITCH_CONFIDENCE
    lost = exploit.get(incumbent.model_id, 0.0) <= LOST_SHARE and exploit.get(challenger.model_id, 0.0) > LOST_SHARE
    return challenger if confidently_better or lost else incumbent


def _smoothed(previous: dict | None, target: dict[str, float], fraction: float) -> dict[str, float]:
    old = (previous or {}).get("weights") or {}
    if not old or fraction >= 1.0:
        return target
    moved = {m: old.get(m, 0.0) + fraction * (target.get(m, 0.0) - old.get(m, 0.0)) for m in set(old) | set(target)}
    moved = {m: v for m, v in moved.items() if m in target}
    total = sum(moved.values()) or 1.0
    return rounded_split({m: v / total for m, v in moved.items()})


def decide(
    task_type: str,
    evidence: list[Evidence],
    w: Weights,
    policy: Policy = Policy(),
    *,
    excluded: dict[str, str] | None = None,
    probing: dict[str, str] | None = None,
    catalogue: dict[str, str] | None = None,
    previous: dict | None = None,
) -> Decision | None:
    """None when there is nothing to decide (no evidence, no catalogue model, nothing excluded).

    When every model with evidence is held back, those excluded for latency alone take the traffic
    (slow beats failing); when all were excluded for failures, the decision says so with empty
    weights: a router then uses the other models it can reach (worker.gateway.table).

    `excluded`: models whose breaker is open (no traffic); `probing`: half-open (probe share only);
    `catalogue`: model -> layer of models the gateway can route to here, explored when they have
    no evidence; `previous`: the current record, for the incumbent and smoothing.
    """
    excluded, probing, catalogue = excluded or {}, probing or {}, catalogue or {}
    evidence = most_called(evidence, policy.max_models)
    probing = {m: r for m, r in probing.items() if m not in excluded}
    held_back = set(excluded) | set(probing)
    candidates = [e for e in evidence if e.model_id not in held_back]
    known = {e.model_id for e in evidence}
    newcomers = sorted(m for m in catalogue if m not in known and m not in held_back)
    newcomers = newcomers[: max(0, policy.max_models - len(candidates))]
    probing = dict(sorted(probing.items())[: policy.max_models])
    if not candidates and not newcomers and not probing:
        if not any(e.model_id in excluded for e in evidence):
            return None
        slow_only = {m for m, reason in excluded.items() if is_latency(reason) and m in known}
        if slow_only:  # every model is held back, some only for latency: slow beats failing or nothing
            kept = {m: r for m, r in excluded.items() if m not in slow_only}
            decision = decide(task_type, evidence, w, policy, excluded=kept, catalogue=catalogue, previous=previous)
            if decision is not None:
                return replace(
                    decision,
                    reasoning=decision.reasoning.rstrip(".")
                    + "; every model is held back, so those excluded only for latency take the traffic: "
                    + ", ".join(f"{m} ({excluded[m]})" for m in sorted(slow_only))
                    + ".",
                )
        worst_off = sorted((e for e in evidence if e.model_id in excluded), key=lambda e: (-score(e, w), e.model_id))
        return Decision(  # nobody left: say so, so that no router keeps following the last split
            task_type=task_type,
            preferred_model=None,
            preferred_layer=worst_off[0].layer,
            fallback_models=[],
            weights={},
            evidence={e.model_id: _evidence_row(e, w) for e in evidence},
            excluded={e.model_id: excluded[e.model_id] for e in worst_off},
            reasoning=f"every model with evidence for {task_type} is excluded: "
            + ", ".join(f"{e.model_id} ({excluded[e.model_id]})" for e in worst_off)
            + "; routers use the other models they can reach.",
        )
    share = min(policy.probe_share, MAX_PROBE_TOTAL / len(probing)) if probing else 0.0
    probes = {m: round(share, 4) for m in sorted(probing)}
    rest = 1.0 - sum(probes.values())
    seed = f"{task_type}|" + "|".join(
        f"{e.model_id}:{e.calls:.3f}:{e.successes:.3f}" for e in sorted(candidates, key=lambda e: e.model_id)
    )
    split = traffic_split(
        candidates, w, exploration=policy.exploration, seed_text=seed, newcomers=newcomers, little_data=policy.min_calls
    )
    exploit = dict(split)
    sets_unchanged = previous is not None and (
        set(previous.get("excluded") or {}) == set(excluded) and set(previous.get("probes") or {}) == set(probes)
    )
    if sets_unchanged:
        split = _smoothed(previous, split, policy.smoothing)
    weights = rounded_split({m: v * rest for m, v in split.items()} | probes)

    ranked = sorted(candidates, key=lambda e: (-score(e, w), -e.calls, e.model_id))
    if ranked:
        preferred = _preferred(ranked, exploit, previous, policy.min_calls, w, seed)
        model, layer = preferred.model_id, preferred.layer
        reasoning = (
            f"{model} ({layer}) scores best for {task_type} over the last {policy.window_s // 60} min "
            f"(half-life {policy.half_life_s:.0f} s): {preferred.success_rate:.1%} success (lower bound "
            f"{wilson_lower_bound(preferred.successes, preferred.calls):.1%}) over {preferred.calls:.0f} weighted calls, "
            f"p95 {preferred.p95_latency_ms:,.0f} ms, ${preferred.avg_cost_usd:.5f} per call"
            + _quality_text(preferred, w)
        )
        fallbacks = [e.model_id for e in ranked if e is not preferred]
    else:  # nothing proven may take traffic: explore and probe
        model = (newcomers or sorted(probes))[0]
        layer = catalogue.get(model) or next((e.layer for e in evidence if e.model_id == model), "balanced")
        reasoning = f"no model with evidence may take {task_type} traffic; exploring and probing"
        fallbacks = []
    fallbacks += [m for m in newcomers if m != model]
    if newcomers:
        reasoning += "; exploring " + ", ".join(newcomers)
    if probes:
        reasoning += "; probing " + ", ".join(f"{m} ({probing[m]})" for m in probes)
    excluded_here = dict(
        sorted((m, r) for m, r in excluded.items() if m in known or m in catalogue)[: policy.max_models]
    )
    if excluded_here:
        reasoning += "; excluded: " + ", ".join(f"{m} ({r})" for m, r in sorted(excluded_here.items()))
    return Decision(
        task_type=task_type,
        preferred_model=model,
        preferred_layer=layer,
        fallback_models=fallbacks,
        weights=weights,
        evidence={e.model_id: _evidence_row(e, w) for e in evidence},
        excluded=excluded_here,
        probes=probes,
        reasoning=reasoning + ".",
    )


def most_called(evidence: list[Evidence], limit: int) -> list[Evidence]:
    """The `limit` models with the most (weighted) calls: a rule's size and cost stay bounded however
    many distinct model ids the events carry; routers give unnamed models a small share anyway."""
    if len(evidence) <= limit:
        return evidence
    return sorted(evidence, key=lambda e: (-e.calls, e.model_id))[:limit]


def worth_publishing(previous: dict | None, new: Decision, weight_change: float) -> bool:
    """Hysteresis: a new version only when the decision changes or the split moves by more than `weight_change`."""
    if previous is None:
        return True
    if (previous.get("preferred_model"), previous.get("preferred_layer")) != (new.preferred_model, new.preferred_layer):
        return True
    if set(previous.get("excluded") or {}) != set(new.excluded) or set(previous.get("probes") or {}) != set(new.probes):
        return True
    old = previous.get("weights") or {}
    if {m for m, v in old.items() if v > 0} != {m for m, v in new.weights.items() if v > 0}:
        return True  # a model gains or loses all traffic: a newcomer to explore, or one that is gone
    models = set(old) | set(new.weights)
    return max((abs(old.get(m, 0.0) - new.weights.get(m, 0.0)) for m in models), default=0.0) > weight_change
