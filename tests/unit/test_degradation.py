"""The degradation fast path's rules."""

from worker.degradation import Rules, Window, degraded, recovered

R = Rules(failure_rate=0.5, recover_rate=0.25, latency_factor=3.0, min_calls=20, cooldown_s=120)


def test_a_failure_burst_in_a_short_window_excludes():
    windows = [Window(10, 40, 30, 900.0), Window(30, 200, 40, 900.0), Window(60, 500, 45, 900.0)]
    assert degraded(windows, 1000.0, R).startswith("failure rate 75% over the last 10 s")


def test_too_few_calls_never_exclude():
    assert degraded([Window(10, 5, 5, None), Window(60, 19, 19, None)], None, R) is None


def test_latency_far_above_usual_excludes():
    reason = degraded([Window(10, 50, 0, 4000.0)], 1000.0, R)
    assert reason is not None and "4.0x its usual" in reason
    assert degraded([Window(10, 50, 0, 2500.0)], 1000.0, R) is None


def test_windows_older_than_the_last_restore_are_not_consulted():
    windows = [Window(10, 50, 5, None), Window(60, 300, 200, None)]
    assert degraded(windows, None, R, observed_for_s=20) is None
    assert degraded(windows, None, R) is not None


def test_recovery_needs_a_clearly_lower_rate_or_a_cooldown_without_evidence():
    assert recovered([Window(30, 100, 10, None)], None, excluded_for_s=5, rules=R)
    assert not recovered([Window(30, 100, 30, None)], None, excluded_for_s=5, rules=R)  # 30 %: not yet
    assert not recovered([Window(30, 3, 0, None)], None, excluded_for_s=60, rules=R)
    assert recovered([Window(30, 3, 0, None)], None, excluded_for_s=121, rules=R)
