"""A circuit breaker per (model, scope), scope being a task type or ANY_TASK: closed -> open -> half-open.

- closed: the model gets traffic; a degraded window (worker.routing.degradation) opens the breaker.
- open: no traffic for `cooldown_s`. An excluded model gets no calls, so nothing could ever show
  it healthy: after the cooldown the breaker goes half-open instead of guessing.
- half-open: the router sends it a small published probe share; only calls made since probing
  began are judged. Enough good ones close the breaker; failing ones open it again with twice
  the cooldown (up to `cooldown_max_s`).

Pure: the fast path persists what `step` returns. A closed breaker is remembered with the time it
closed, so that its long windows, which still hold the incident, do not reopen it at once, and
with the incident's span, whose calls the learned rule then leaves out: probes have shown the
model healthy, and an outage that is over should not cost it its share for the next hour.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from worker.routing.degradation import Rules, degraded, probe_verdict
from worker.routing.evidence import Window

State = Literal["open", "half_open", "closed"]
INCIDENT_LOOKBACK_S = 60.0  # the longest detection window: the failing calls that opened the breaker
AlertKind = Literal["model_degraded", "model_probing", "model_recovered"]


@dataclass(frozen=True)
class Breaker:
    model_id: str
    scope: str
    state: State
    reason: str
    since: float  # epoch seconds at which the current state began
    cooldown_s: float
    baseline_p95_ms: float | None = None  # frozen when opened: the incident never becomes the norm
    trips: int = 1
    opened_at: float | None = None  # when this incident first opened it (kept through probes and the restore)

    def incident(self) -> tuple[float, float] | None:
        """(start, end) of the last incident once closed: its calls no longer speak for the model."""
        if self.state != "closed" or self.opened_at is None:
            return None
        return self.opened_at - INCIDENT_LOOKBACK_S, self.since


@dataclass(frozen=True)
class Transition:
    breaker: Breaker
    alert: AlertKind


def step(
    current: Breaker | None,
    model_id: str,
    scope: str,
    windows: list[Window],
    probes: Window | None,
    baseline_p95_ms: float | None,
    now: float,
    rules: Rules,
    restored_at: float | None = None,
) -> Transition | None:
    """The breaker's next state, or None when it stays as it is.

    `windows`: the trailing health windows of this (model, scope); `probes`: its calls since the
    breaker went half-open (only read in that state); `restored_at`: when a wider breaker of the
    same model last closed (its incident is in these windows too, and must not trip this one).
    """
    if current is None or current.state == "closed":
        since = max(
            current.since if current is not None else float("-inf"),
            restored_at if restored_at is not None else float("-inf"),
        )
        observed = now - since
        reason = degraded(windows, baseline_p95_ms, rules, observed)
        if reason is None:
            return None
        if (
            current is not None and now - current.since < 10 * rules.cooldown_max_s
        ):  # the same incident, restored too early: longer cooldown, and its span goes on
            return Transition(
                Breaker(
                    model_id,
                    scope,
                    "open",
                    reason,
                    now,
                    _longer(current, rules),
                    current.baseline_p95_ms or baseline_p95_ms,
                    current.trips + 1,
                    opened_at=current.opened_at or now,
                ),
                "model_degraded",
            )
        return Transition(
            Breaker(
                model_id,
                scope,
                "open",
                reason,
                now,
                rules.cooldown_s,
                baseline_p95_ms,
                (current.trips + 1) if current is not None else 1,
                opened_at=now,
            ),
            "model_degraded",
        )
    if current.state == "open":
        if now - current.since < current.cooldown_s:
            return None
        return Transition(
            replace(
                current,
                state="half_open",
                since=now,
                reason=f"probing after {current.cooldown_s:.0f} s excluded ({current.reason})",
            ),
            "model_probing",
        )
    verdict = probe_verdict(probes or Window(0, 0, 0, None), current.baseline_p95_ms or baseline_p95_ms, rules)
    if verdict is None:
        return None
    kind, reason = verdict
    if kind == "restore":
        return Transition(replace(current, state="closed", since=now, reason=reason), "model_recovered")
    return Transition(
        replace(
            current, state="open", since=now, reason=reason, trips=current.trips + 1, cooldown_s=_longer(current, rules)
        ),
        "model_degraded",
    )


def _longer(current: Breaker, rules: Rules) -> float:
    """The next cooldown of an incident that goes on: twice the last, up to the maximum."""
    return min(rules.cooldown_max_s, 2 * current.cooldown_s)
