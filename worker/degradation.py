"""The fast path: is a model failing or slowing down right now, and has an excluded one recovered?

Trailing windows of a few seconds to a minute (from 1-second health buckets) catch a burst within
seconds; a minimum sample size keeps a handful of unlucky calls from excluding anyone. Recovery
asks for a clearly lower failure rate (hysteresis), or, when an excluded model gets too few calls
to judge, a cooldown after which it is given back on probation.
"""

from __future__ import annotations

from dataclasses import dataclass

DETECTION_WINDOWS_S = (3, 10, 30, 60)
RECOVERY_WINDOW_S = 30


@dataclass(frozen=True)
class Rules:
    failure_rate: float = 0.5
    recover_rate: float = 0.25
    latency_factor: float = 3.0
    min_calls: int = 20
    cooldown_s: float = 120.0


@dataclass(frozen=True)
class Window:
    seconds: int
    calls: int
    failures: int
    p95_latency_ms: float | None


def degraded(
    windows: list[Window], baseline_p95_ms: float | None, rules: Rules, observed_for_s: float = float("inf")
) -> str | None:
    """A reason when any window with enough calls shows the failure rate or latency past its threshold.

    `observed_for_s`: time since the model was last restored; longer windows would still hold the
    bad minute that excluded it, so they are not consulted yet (no flapping right after a restore).
    """
    for w in sorted(windows, key=lambda w: w.seconds):
        if w.calls < rules.min_calls or w.seconds > observed_for_s:
            continue
        rate = w.failures / w.calls
        if rate >= rules.failure_rate:
            return f"failure rate {rate:.0%} over the last {w.seconds} s ({w.failures}/{w.calls} calls)"
        if baseline_p95_ms and w.p95_latency_ms and w.p95_latency_ms >= rules.latency_factor * baseline_p95_ms:
            return (f"p95 latency {w.p95_latency_ms:,.0f} ms over the last {w.seconds} s, "
                    f"{w.p95_latency_ms / baseline_p95_ms:.1f}x its usual {baseline_p95_ms:,.0f} ms")
    return None


def recovered(windows: list[Window], baseline_p95_ms: float | None, excluded_for_s: float, rules: Rules) -> bool:
    recent = next((w for w in windows if w.seconds == RECOVERY_WINDOW_S), None)
    if recent is None or recent.calls < rules.min_calls:
        return excluded_for_s >= rules.cooldown_s
    healthy_rate = recent.failures / recent.calls < rules.recover_rate
    healthy_latency = not (baseline_p95_ms and recent.p95_latency_ms
                           and recent.p95_latency_ms >= rules.latency_factor * baseline_p95_ms / 1.5)
    return healthy_rate and healthy_latency
