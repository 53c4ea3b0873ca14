"""What a router does with the published rules: pick the rule for a request, then the model.

Pure (no Kafka), so the Python router client, the LiteLLM integration and the routing evaluation
all obey the rules through this one file. The TypeScript client mirrors it:

1. Among active rules, those whose `pattern` (RE2) matches the request text (manual) or whose
   `task_type` is the request's (learned); the highest `priority` wins, then the highest version.
2. The model: split by `weights`, never to a model in `excluded`. With `candidates` (the models
   the router can reach), only those; a candidate the rule does not mention at all gets
   `explore_share` (the router's own exploration of models the worker has not seen yet).
3. The draw `u` in [0, 1) walks the cumulative weights of the models sorted by id; `hash_unit(key)`
   makes it deterministic for a request id, so every router instance and language agrees.
4. Nothing left: the first of `fallback_models`, then `preferred_model`, that may be used.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Sequence

import orjson

from worker.routing.contract import RoutingHeuristic
from worker.routing.manual_rules import InvalidPattern, matches

log = logging.getLogger(__name__)

EXPLORE_SHARE = 0.01  # per unmentioned candidate
MAX_EXPLORE_TOTAL = 0.05


def hash_unit(key: str) -> float:
    """A number in [0, 1) from the first 8 bytes of SHA-256(key), big-endian."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64


def choose_model(
    rule: RoutingHeuristic, u: float, candidates: Sequence[str] | None = None, explore_share: float = EXPLORE_SHARE
) -> str | None:
    """The model for one request under `rule`, for a draw `u` in [0, 1); None: nothing may be used."""
    reachable = None if candidates is None else frozenset(candidates)

    def allowed(m: str) -> bool:
        return m not in rule.excluded and (reachable is None or m in reachable)

    weights = {m: w for m, w in rule.weights.items() if w > 0 and allowed(m)}
    if candidates is not None and rule.pattern is None:
        mentioned = set(rule.weights) | set(rule.evidence) | set(rule.excluded) | set(rule.fallback_models)
        mentioned.add(rule.preferred_model or "")
        unmentioned = sorted(set(candidates) - mentioned)
        if unmentioned:
            share = min(explore_share, MAX_EXPLORE_TOTAL / len(unmentioned)) if weights else 1.0 / len(unmentioned)
            total = sum(weights.values())
            weights = {m: w / total * (1 - share * len(unmentioned)) for m, w in weights.items()} if total else {}
            weights |= dict.fromkeys(unmentioned, share)
    total = sum(weights.values())
    if total > 0:
        target, cumulative = u * total, 0.0
        ordered = sorted(weights)
        for chosen in ordered:
            cumulative += weights[chosen]
            if target < cumulative:
                return chosen
        return ordered[-1]
    for model in [*rule.fallback_models, rule.preferred_model]:
        if model and allowed(model):
            return model
    return None


class RoutingTable:
    """The latest version of every rule; manual rules match by pattern, learned ones by task type."""

    def __init__(self) -> None:
        self.rules: dict[str, RoutingHeuristic] = {}

    def apply(self, key: str, value: bytes | None) -> RoutingHeuristic | None:
        """Take one topic record; returns the rule when it changed the table."""
        if value is None:  # tombstone: the rule is gone
            self.rules.pop(key, None)
            return None
        rule = RoutingHeuristic.model_validate(orjson.loads(value))
        known = self.rules.get(key)
        if known is not None and known.version >= rule.version:
            return None
        self.rules[key] = rule
        return rule

    def choose(self, task_type: str, text: str = "") -> RoutingHeuristic | None:
        """The rule that applies to a request of `task_type` whose prompt is `text`."""
        candidates = []
        for rule in self.rules.values():
            if not rule.active:
                continue
            if rule.pattern is None:
                if rule.task_type == task_type:
                    candidates.append(rule)
                continue
            try:
                if (rule.task_type in (None, task_type)) and matches(rule.pattern, text):
                    candidates.append(rule)
            except InvalidPattern:
                log.warning("ignoring rule %s: its pattern is not valid RE2", rule.heuristic_id)
        return max(candidates, key=lambda r: (r.priority, r.version), default=None)

    def route(
        self, task_type: str, text: str = "", *, key: str | None = None, candidates: Sequence[str] | None = None
    ) -> str | None:
        """The model for one request; None when no rule applies or none of its models may be used.

        `key` (a request id) makes the choice deterministic; without it the draw is random.
        """
        rule = self.choose(task_type, text)
        if rule is None:
            return None
        return choose_model(rule, hash_unit(key) if key is not None else random.random(), candidates)
