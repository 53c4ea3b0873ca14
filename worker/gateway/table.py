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

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import orjson

from worker.experiments.contract import ArmState, Experiment
from worker.gateway.assignment import arm_of
from worker.routing.contract import RoutingHeuristic
from worker.routing.draw import hash_unit
from worker.routing.manual_rules import InvalidPattern, matches
from worker.routing.signing import Verifier

log = logging.getLogger(__name__)

EXPLORE_SHARE = 0.01  # per unmentioned candidate
MAX_EXPLORE_TOTAL = 0.05


EXPERIMENT_PREFIX = "experiment:"

__all__ = ["Route", "RoutingTable", "choose_model", "choose_with_probability", "hash_unit", "split"]


@dataclass(frozen=True, slots=True)
class Route:
    """What a router decided for one request, and what its call events should carry."""

    model: str | None  # None: no rule applies, or none of its models may be used
    rule_id: str | None = None  # "learned:coding@v3", "manual:7@v1", "experiment:<id>:<arm>"
    experiment_id: str | None = None
    arm: str | None = None
    probability: float | None = None  # the share of the split `model` was drawn from (1: no draw)

    def event_fields(self) -> dict[str, str | float]:
        """`routing_rule_id`, `experiment_id`, `arm` and `route_probability` for the call events (those set)."""
        fields = {
            "routing_rule_id": self.rule_id,
            "experiment_id": self.experiment_id,
            "arm": self.arm,
            "route_probability": self.probability,
        }
        return {k: v for k, v in fields.items() if v is not None}


def choose_model(
    rule: RoutingHeuristic, u: float, candidates: Sequence[str] | None = None, explore_share: float = EXPLORE_SHARE
) -> str | None:
    """The model for one request under `rule`, for a draw `u` in [0, 1); None: nothing may be used."""
    return choose_with_probability(rule, u, candidates, explore_share)[0]


def choose_with_probability(
    rule: RoutingHeuristic, u: float, candidates: Sequence[str] | None = None, explore_share: float = EXPLORE_SHARE
) -> tuple[str | None, float | None]:
    """The model for a draw `u`, and the probability with which the split gives it (1.0 for a
    fallback, which is no draw; None when nothing may be used): the propensity events carry."""
    shares = split(rule, candidates, explore_share)
    if not shares:
        return None, None
    target, cumulative = u, 0.0
    ordered = sorted(shares)
    chosen = ordered[-1]
    for name in ordered:
        cumulative += shares[name]
        if target < cumulative:
            chosen = name
            break
    return chosen, shares[chosen]


def split(
    rule: RoutingHeuristic, candidates: Sequence[str] | None = None, explore_share: float = EXPLORE_SHARE
) -> dict[str, float]:
    """The probability with which a router following `rule` sends a request to each model (shares sum
    to 1; a fallback takes all of it; empty: nothing may be used). Counterfactual estimates of the rule
    (worker/routing/counterfactual.py) weigh logged calls by these."""
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
        return {m: min(1.0, w / total) for m, w in weights.items()}
    for model in [*rule.fallback_models, rule.preferred_model]:
        if model and allowed(model):
            return {model: 1.0}
    return {}


class RoutingTable:
    """The latest version of every rule; manual rules match by pattern, learned ones by task type."""

    def __init__(self, public_keys: Iterable[str] | None = None) -> None:
        """`public_keys`: base64 Ed25519 keys of the workers whose records to follow (ROUTING_SIGNING_KEY's
        public half); without them every valid record is followed, whoever wrote it."""
        self.rules: dict[str, RoutingHeuristic] = {}
        self.experiments: dict[str, Experiment] = {}
        self.running: dict[str, Experiment] = {}  # the running ones only: `pick` never scans ended experiments
        self.verifier = Verifier(public_keys) if public_keys else None
        self.refused = 0  # records skipped: not signed by a trusted key, not valid, or an implausible version
        self.last_refusal = ""

    def apply(
        self, key: str, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None = None
    ) -> RoutingHeuristic | Experiment | None:
        """Take one topic record (with its headers, which carry the signature); returns the rule (or
        experiment) when it changed the table.

        Anyone who can write to the topic can write anything, and the topic is compacted: a record
        that is not valid, or not signed by a trusted key when keys are given, is skipped and counted
        (`refused`, `last_refusal`), never raised, so that no record can stop or steer a router."""
        if self.verifier is not None and (why := self.verifier.refusal(key, value, headers)) is not None:
            self.refused += 1
            self.last_refusal = f"{key!r}: {why}"
            return None
        try:
            if key.startswith(EXPERIMENT_PREFIX):  # a None value is a tombstone
                exp = None if value is None else Experiment.model_validate(orjson.loads(value))
                changed = _newest(self.experiments, key, exp)
                if changed is not None or exp is None:
                    kept = self.experiments.get(key)
                    if kept is not None and kept.status == "running":
                        self.running[key] = kept
                    else:
                        self.running.pop(key, None)
                return changed
            rule = None if value is None else RoutingHeuristic.model_validate(orjson.loads(value))
            return _newest(self.rules, key, rule)
        except (ValueError, TypeError, ImplausibleVersion) as error:  # orjson's and pydantic's errors are ValueErrors
            self.refused += 1
            self.last_refusal = f"{key!r}: {type(error).__name__}: {str(error)[:300]}"
            return None

    def experiment_for(self, task_type: str) -> Experiment | None:
        """The running experiment covering `task_type` (the worker lets at most one cover a task type)."""
        covering = [e for e in self.running.values() if e.covers(task_type)]
        return min(covering, key=lambda e: e.experiment_id, default=None)

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
        return self.pick(task_type, text, key=key, candidates=candidates).model

    def pick(
        self,
        task_type: str,
        text: str = "",
        *,
        key: str | None = None,
        candidates: Sequence[str] | None = None,
        unit: str | None = None,
        u: float | None = None,
        explore_share: float = EXPLORE_SHARE,
    ) -> Route:
        """The model for one request and what its events carry, experiments included.

        A running experiment covering the task type puts the request in an arm from `key` (the
        request id), or from `unit` (a session key) for an experiment stored with unit "session";
        without it, the request stays out of it.
        A stopped arm's requests, and a fixed model the router cannot reach, route as usual and
        untagged. `u` overrides the model draw (a retry's), which is otherwise hash_unit(key).
        """
        u = u if u is not None else (hash_unit(key) if key is not None else random.random())
        exp = self.experiment_for(task_type) if (unit or key) is not None else None
        who = (unit if exp.unit == "session" and unit else key) if exp is not None else None
        if exp is not None and who is not None:
            name = arm_of(exp.experiment_id, str(who), [(a.name, a.share) for a in exp.arms])
            arm = exp.arm(name)
            if arm is not None and arm.stopped is None:
                route = self._arm_route(exp, arm, task_type, text, u, candidates, explore_share)
                if route is not None:
                    return route
        return self._learned(task_type, text, u, candidates, explore_share)

    def _learned(
        self, task_type: str, text: str, u: float, candidates: Sequence[str] | None, explore_share: float
    ) -> Route:
        rule = self.choose(task_type, text)
        if rule is None:
            return Route(None)
        model, probability = choose_with_probability(rule, u, candidates, explore_share)
        return Route(model, f"{rule.heuristic_id}@v{rule.version}", probability=probability)

    def _arm_route(
        self,
        exp: Experiment,
        arm: ArmState,
        task_type: str,
        text: str,
        u: float,
        candidates: Sequence[str] | None,
        explore_share: float,
    ) -> Route | None:
        tag = {"experiment_id": exp.experiment_id, "arm": arm.name}
        s = arm.strategy
        fixed = (
            s.model if s.kind == "model" or (s.kind == "manual" and s.pattern and _matches(s.pattern, text)) else None
        )
        if fixed is not None:
            if candidates is not None and fixed not in candidates:
                return None  # the router cannot reach it: route as usual, outside the experiment
            return Route(fixed, f"experiment:{exp.experiment_id}:{arm.name}", **tag, probability=1.0)
        rule = arm.routes.get(task_type) if s.kind == "weights" else None
        if rule is not None:
            model, probability = choose_with_probability(rule, u, candidates, explore_share)
            return Route(model, f"{rule.heuristic_id}@v{rule.version}", **tag, probability=probability)
        learned = self._learned(task_type, text, u, candidates, explore_share)
        return Route(learned.model, learned.rule_id, **tag, probability=learned.probability)


Versioned = TypeVar("Versioned", RoutingHeuristic, Experiment)


MAX_VERSION_STEP = 1_000_000  # the worker adds one per change: a larger jump is a forgery or a bug


class ImplausibleVersion(Exception):
    pass


def _newest(held: dict[str, Versioned], key: str, record: Versioned | None) -> Versioned | None:
    """Keep the highest version per key; None (a tombstone) drops the key. The record when it changed.
    A version more than MAX_VERSION_STEP past the one held is refused: it would hold the key against
    every later genuine version (signatures are the full answer; this bounds the damage without them)."""
    if record is None:
        held.pop(key, None)
        return None
    known = held.get(key)
    if known is not None and known.version >= record.version:
        return None
    if known is not None and record.version > known.version + MAX_VERSION_STEP:
        raise ImplausibleVersion(f"version {record.version} jumps more than {MAX_VERSION_STEP} past {known.version}")
    held[key] = record
    return record


def _matches(pattern: str, text: str) -> bool:
    try:
        return matches(pattern, text)
    except InvalidPattern:
        return False
