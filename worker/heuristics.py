"""One task type's routing decision from its recent evidence, and when a new version is worth publishing."""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.scoring import Evidence, Weights, score, traffic_split, wilson_lower_bound


@dataclass(frozen=True)
class Decision:
    task_type: str
    preferred_model: str
    preferred_layer: str
    fallback_models: list[str]
    weights: dict[str, float]
    evidence: dict[str, dict]
    excluded: dict[str, str] = field(default_factory=dict)
    reasoning: str = ""


def _evidence_row(e: Evidence, w: Weights) -> dict:
    return {"calls": e.calls, "success_rate": round(e.success_rate, 6),
            "lower_bound": round(wilson_lower_bound(e.successes, e.calls), 6),
            "p95_latency_ms": round(e.p95_latency_ms, 3), "avg_cost_usd": round(e.avg_cost_usd, 8),
            "score": round(score(e, w), 6), "layer": e.layer}


def decide(
    task_type: str, evidence: list[Evidence], excluded: dict[str, str], w: Weights, *,
    window_s: int, min_calls: int = 20, exploration: float = 0.05,
) -> Decision | None:
    """None when no model that is not excluded has been called for this task type in the window."""
    excluded_here = {m: r for m, r in excluded.items() if any(e.model_id == m for e in evidence)}
    candidates = [e for e in evidence if e.model_id not in excluded]
    if not candidates:
        return None
    ranked = sorted(candidates, key=lambda e: (-score(e, w), -e.calls, e.model_id))
    preferred = next((e for e in ranked if e.calls >= min_calls), ranked[0])
    seed = f"{task_type}|" + "|".join(f"{e.model_id}:{e.calls}:{e.successes}" for e in sorted(candidates, key=lambda e: e.model_id))
    reasoning = (
        f"{preferred.model_id} ({preferred.layer}) scores best for {task_type} over the last {window_s // 60} min: "
        f"{preferred.success_rate:.1%} success (lower bound {wilson_lower_bound(preferred.successes, preferred.calls):.1%}) "
        f"over {preferred.calls} calls, p95 {preferred.p95_latency_ms:,.0f} ms, ${preferred.avg_cost_usd:.5f} per call"
    )
    if excluded_here:
        reasoning += "; excluded: " + ", ".join(f"{m} ({r})" for m, r in sorted(excluded_here.items()))
    return Decision(
        task_type=task_type, preferred_model=preferred.model_id, preferred_layer=preferred.layer,
        fallback_models=[e.model_id for e in ranked if e is not preferred],
        weights=traffic_split(candidates, w, exploration=exploration, seed_text=seed),
        evidence={e.model_id: _evidence_row(e, w) for e in evidence},
        excluded=excluded_here, reasoning=reasoning + ".",
    )


def worth_publishing(previous: dict | None, new: Decision, weight_change: float) -> bool:
    """Hysteresis: a new version only when the decision changes or the split moves by more than `weight_change`."""
    if previous is None:
        return True
    if (previous.get("preferred_model"), previous.get("preferred_layer")) != (new.preferred_model, new.preferred_layer):
        return True
    if set(previous.get("excluded") or {}) != set(new.excluded):
        return True
    old = previous.get("weights") or {}
    models = set(old) | set(new.weights)
    return max((abs(old.get(m, 0.0) - new.weights.get(m, 0.0)) for m in models), default=0.0) > weight_change
