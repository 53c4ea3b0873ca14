"""The fast path's judgements: is a model failing or slowing down right now, and have its probes
shown it healthy again?

Trailing windows of a few seconds to a minute (from 1-second health buckets) catch a burst within
seconds. A window excludes only when its failure rate is above `failure_rate` with 95 %
confidence (the Wilson lower bound), so a handful of unlucky calls never excludes anyone while a
40 % failure rate over a few dozen calls does. Latency is judged against a baseline that leaves
out the incident (worker.routing.evidence.baselines). A probe verdict looks only at calls made after
probing began (worker.routing.breaker), never at the healthy calls from before the exclusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from worker.routing.evidence import Window
from worker.routing.scoring import wilson_lower_bound, wilson_upper_bound

DETECTION_WINDOWS_S = (3, 10, 30, 60)
RESTORE_LATENCY_MARGIN = 1.5  # probes must be this much below the excluding latency to restore


@dataclass(frozen=True)
class Rules:
    failure_rate: float = 0.2  # a window's failure rate must exceed this with 95 % confidence
    recover_rate: float = 0.25  # probes must fail less often than this to restore
    latency_factor: float = 2.0  # p95 this many times the baseline excludes
    min_calls: int = 20  # calls a window needs before it may exclude
    cooldown_s: float = 15.0  # first time open, before probing
    cooldown_max_s: float = 60.0  # the cooldown doubles on every failed probe, up to this
    probe_calls: int = 10  # successful-looking probe calls needed to restore


def degraded(
    windows: list[Window], baseline_p95_ms: float | None, rules: Rules, observed_for_s: float = float("inf")
) -> str | None:
    """A reason when any window with enough calls shows the failure rate or latency past its threshold.

    `observed_for_s`: time since the breaker last closed; longer windows would still hold the calls
    that opened it, so they are not consulted yet (no flapping right after a restore).
    """
    for w in sorted(windows, key=lambda w: w.seconds):
        if w.calls < rules.min_calls or w.seconds > observed_for_s:
            continue
        if wilson_lower_bound(w.failures, w.calls) >= rules.failure_rate:
            return f"failure rate {w.failures / w.calls:.0%} over the last {w.seconds:.0f} s ({w.failures}/{w.calls} calls)"
        if baseline_p95_ms and w.p95_latency_ms and w.p95_latency_ms >= rules.latency_factor * baseline_p95_ms:
            return (
                f"p95 latency {w.p95_latency_ms:,.0f} ms over the last {w.seconds:.0f} s, "
                f"{w.p95_latency_ms / baseline_p95_ms:.1f}x its usual {baseline_p95_ms:,.0f} ms"
            )
    return None


def probe_verdict(
    probes: Window, baseline_p95_ms: float | None, rules: Rules
) -> tuple[Literal["restore", "reopen"], str] | None:
    """What the calls made since probing began say; None while they do not say enough.

    Restore: at least `probe_calls` calls, failing less often than `recover_rate`, and with 95 %
    confidence less often than twice that (1 failure in 10 restores, 2 need more probes). Reopen:
    failing more often than `recover_rate` with 95 % confidence (2 failures out of 2 do), or slow.
    """
    if probes.calls and wilson_lower_bound(probes.failures, probes.calls) >= rules.recover_rate:
        return "reopen", f"probes still failing: {probes.failures}/{probes.calls} calls"
    slow = bool(
        baseline_p95_ms
        and probes.p95_latency_ms
        and probes.p95_latency_ms >= rules.latency_factor * baseline_p95_ms / RESTORE_LATENCY_MARGIN
    )
    if probes.calls < rules.probe_calls:
        return None
    if slow and baseline_p95_ms and probes.p95_latency_ms:  # judged on few calls: restore only well below (hysteresis)
        return "reopen", (
            f"probes still slow: p95 {probes.p95_latency_ms:,.0f} ms, "
            f"{probes.p95_latency_ms / baseline_p95_ms:.1f}x its usual {baseline_p95_ms:,.0f} ms"
        )
    confidently_healthy = wilson_upper_bound(probes.failures, probes.calls) < 2 * rules.recover_rate
    if probes.failures / probes.calls < rules.recover_rate and confidently_healthy:
        return "restore", f"{probes.calls - probes.failures}/{probes.calls} probe calls succeeded"
    return None
