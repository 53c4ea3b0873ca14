"""The routing loop's decisions, pure: the worker's leader and the routing evaluation both run this.

Two ticks, as the worker's timers call them:
- `check` (every DEGRADATION_CHECK_S): 1-second health rows -> breaker transitions, model-wide
  scope first (a model failing everywhere is one incident, not one per task type).
- `recompute` (every HEURISTICS_INTERVAL_S, and at once after a transition): minute rows ->
  the learned decision of each task type that is worth a new version; `baselines`, from the same
  rows, is the usual latency that the next checks compare with (an explicit input of `check`).
The shells (worker/pipeline/routing.py; worker/routing_eval) read the rows, persist breakers and
versions, and publish; they make no decision of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from worker.routing.breaker import INCIDENT_LOOKBACK_S, Breaker, Transition, step
from worker.routing.degradation import DETECTION_WINDOWS_S, Rules, is_latency, probe_settle_s
from worker.routing.evidence import (
    ANY_TASK,
    MinuteRow,
    QualityRow,
    SecondRow,
    baselines,
    decayed_evidence,
    health_windows,
    since_window,
    with_quality,
)
from worker.routing.heuristics import Decision, Policy, decide, worth_publishing
from worker.routing.scoring import Weights, wilson_lower_bound, wilson_upper_bound

BreakerKey = tuple[str, str]  # model_id, scope (a task type or ANY_TASK)


@dataclass
class Engine:
    policy: Policy = field(default_factory=Policy)
    rules: Rules = field(default_factory=Rules)
    weights: Callable[[str], Weights] = lambda task_type: Weights()

    def baselines(
        self, now: float, minutes: list[MinuteRow], breakers: Mapping[BreakerKey, Breaker]
    ) -> dict[BreakerKey, float]:
        """Each model's usual p95 per scope over the window, incidents (over or still open) left out, so
        an incident never becomes the norm it is judged against: what `check` compares latency with.
        The shells refresh it with every recompute, from the same minute rows."""
        incidents = {key: span for key, b in breakers.items() if (span := b.incident()) is not None}
        ongoing = {
            key: ((b.opened_at or b.since) - INCIDENT_LOOKBACK_S, now)
            for key, b in breakers.items()
            if b.state != "closed"
        }
        return baselines(minutes, now, window_s=self.policy.window_s, incidents=incidents | ongoing)

    def check(
        self,
        now: float,
        breakers: Mapping[BreakerKey, Breaker],
        seconds: list[SecondRow],
        base: Mapping[BreakerKey, float],
    ) -> list[Transition]:
        """`base`: the latency baselines (`baselines`), from the latest recompute."""
        windows = health_windows(seconds, now, DETECTION_WINDOWS_S)
        transitions: list[Transition] = []
        wide_trouble: set[str] = set()
        latest = dict(breakers)  # with this check's model-wide transitions, which its task scopes must see
        for model, scope in sorted(set(windows) | set(breakers), key=lambda k: (k[0], k[1] != ANY_TASK, k[1])):
            current = breakers.get((model, scope))
            if scope != ANY_TASK and model in wide_trouble and (current is None or current.state == "closed"):
                continue  # the model-wide breaker already holds it back everywhere
            probes = (
                since_window(
                    seconds,
                    model,
                    scope,
                    current.since,
                    now,
                    probe_settle_s(current.baseline_p95_ms or base.get((model, scope)), self.rules),
                )
                if current is not None and current.state == "half_open"
                else None
            )
            wide = latest.get((model, ANY_TASK)) if scope != ANY_TASK else None
            restored_at = wide.since if wide is not None and wide.state == "closed" else None
            t = step(
                current,
                model,
                scope,
                windows.get((model, scope), []),
                probes,
                base.get((model, scope)),
                now,
                self.rules,
                restored_at,
            )
            if (
                t is not None
                and t.breaker.state == "open"
                and (current is None or current.state == "closed")
                and is_latency(t.breaker.reason)
                and not _somewhere_better(model, scope, windows, latest)
            ):
                t = None  # slow beats failing: a latency exclusion would send the traffic somewhere worse
            state = t.breaker.state if t else (current.state if current else "closed")
            if scope == ANY_TASK and state != "closed":
                wide_trouble.add(model)
            if t is not None:
                transitions.append(t)
                latest[(model, scope)] = t.breaker
        return transitions

    def recompute(
        self,
        now: float,
        minutes: list[MinuteRow],
        breakers: Mapping[BreakerKey, Breaker],
        catalogue: Mapping[str, Mapping[str, str]],
        previous: Mapping[str, dict | None],
        only: Iterable[str] | None = None,
        quality: Iterable[QualityRow] = (),
    ) -> dict[str, Decision]:
        """New decisions worth publishing, per task type. `catalogue`: task type (or ANY_TASK) ->
        model -> layer; `previous`: the current record per task type; `only`: limit to these;
        `quality`: feedback rows (a task type with feedback is decided on the value objective)."""
        p = self.policy
        incidents = {key: span for key, b in breakers.items() if (span := b.incident()) is not None}
        evidence = decayed_evidence(minutes, now, window_s=p.window_s, half_life_s=p.half_life_s, incidents=incidents)
        evidence = with_quality(
            evidence,
            quality,
            now,
            window_s=p.window_s,
            half_life_s=p.half_life_s,
            names=lambda task: self.weights(task).quality_name,
            prior_calls=p.quality_prior_calls,
        )
        tasks = sorted(set(evidence) | {t for t, rec in previous.items() if rec is not None})
        if only is not None:
            wanted = set(only)
            tasks = [t for t in tasks if t in wanted or ANY_TASK in wanted]
        out: dict[str, Decision] = {}
        for task in tasks:
            held = {
                (m, b.state): b.reason
                for (m, scope), b in breakers.items()
                if scope in (task, ANY_TASK) and b.state != "closed"
            }
            excluded = {m: r for (m, s), r in held.items() if s == "open"}
            probing = {m: r for (m, s), r in held.items() if s == "half_open" and m not in excluded}
            known = dict(catalogue.get(ANY_TASK, {})) | dict(catalogue.get(task, {}))
            decision = decide(
                task,
                evidence.get(task, []),
                self.weights(task),
                p,
                excluded=excluded,
                probing=probing,
                catalogue=known,
                previous=previous.get(task),
            )
            if decision is not None and worth_publishing(previous.get(task), decision, p.weight_change):
                out[task] = decision
        return out


def _somewhere_better(
    model: str, scope: str, windows: Mapping[BreakerKey, list], breakers: Mapping[BreakerKey, Breaker]
) -> bool:
    """Whether another model of this scope, not held back, takes traffic and is not worse by failures
    (its failure rate is not above `model`'s with 95 % confidence): only then may `model` be excluded
    for latency alone."""
    mine = _longest(windows.get((model, scope), []))
    ceiling = wilson_upper_bound(mine.failures, mine.calls) if mine is not None and mine.calls else 1.0
    held = {m for (m, s), b in breakers.items() if b.state != "closed" and s in (scope, ANY_TASK)}
    for (other, s), ws in windows.items():
        if s != scope or other == model or other in held:
            continue
        w = _longest(ws)
        if w is not None and w.calls and wilson_lower_bound(w.failures, w.calls) <= ceiling:
            return True
    return False


def _longest(windows: list):
    return max(windows, key=lambda w: w.seconds, default=None)


def catalogue_changes(
    before: Mapping[str, Mapping[str, str]] | None, after: Mapping[str, Mapping[str, str]]
) -> set[str] | None:
    """Task types whose declared models differ (None: all of them, for a model-wide declaration or
    when nothing was read before): a declaration for one task type recomputes that one only."""
    if before is None:
        return None
    changed = {t for t in set(before) | set(after) if before.get(t) != after.get(t)}
    return None if ANY_TASK in changed else changed


def affected_tasks(transitions: Iterable[Transition]) -> set[str]:
    """Task types whose rule must be recomputed at once (ANY_TASK: all of them)."""
    return {t.breaker.scope for t in transitions}
