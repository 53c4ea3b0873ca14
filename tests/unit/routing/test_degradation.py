"""The fast path's judgements: what excludes, and what the probes of a half-open breaker say."""

from worker.routing.degradation import Rules, degraded, probe_verdict
from worker.routing.evidence import Window

R = Rules(failure_rate=0.2, recover_rate=0.25, latency_factor=2.0, min_calls=20, probe_calls=10)


def test_a_failure_burst_in_a_short_window_excludes():
    windows = [Window(10, 40, 30, 900.0), Window(30, 200, 40, 900.0), Window(60, 500, 45, 900.0)]
    assert degraded(windows, 1000.0, R).startswith("failure rate 75% over the last 10 s")


def test_forty_percent_failures_over_a_few_dozen_calls_exclude_but_unlucky_handfuls_do_not():
    assert degraded([Window(10, 30, 12, None)], None, R) is not None  # 40 %: lower bound 0.25
    assert degraded([Window(10, 20, 5, None)], None, R) is None  # 25 % of 20: could be chance
    assert degraded([Window(10, 5, 5, None), Window(60, 19, 19, None)], None, R) is None  # too few calls


def test_latency_far_above_usual_excludes():
    reason = degraded([Window(10, 50, 0, 2500.0)], 1000.0, R)
    assert reason is not None and "2.5x its usual" in reason
    assert degraded([Window(10, 50, 0, 1800.0)], 1000.0, R) is None
    assert degraded([Window(10, 50, 0, 9000.0)], None, R) is None  # no baseline: latency is not judged


def test_windows_older_than_the_last_restore_are_not_consulted():
    windows = [Window(10, 50, 5, None), Window(60, 300, 200, None)]
    assert degraded(windows, None, R, observed_for_s=20) is None
    assert degraded(windows, None, R) is not None


def test_probes_restore_only_with_enough_good_calls_and_reopen_as_soon_as_they_clearly_fail():
    assert probe_verdict(Window(20, 9, 0, None), None, R) is None  # not enough probes yet
    assert probe_verdict(Window(20, 10, 1, None), None, R)[0] == "restore"
    assert probe_verdict(Window(20, 10, 2, None), None, R) is None  # 20 % of 10: could still be 40 %, probe more
    assert probe_verdict(Window(20, 30, 5, None), None, R)[0] == "restore"
    assert probe_verdict(Window(20, 2, 2, None), None, R)[0] == "reopen"  # 2/2 failed: lower bound 0.34
    assert probe_verdict(Window(20, 20, 6, None), None, R) is None  # 30 %: neither healthy nor clearly failing


def test_probes_that_are_still_slow_reopen_and_restore_needs_a_margin_below_the_threshold():
    assert probe_verdict(Window(20, 10, 0, 1500.0), 1000.0, R)[0] == "reopen"  # above 2.0 / 1.5
    assert probe_verdict(Window(20, 10, 0, 1200.0), 1000.0, R)[0] == "restore"


def _with(latencies_ms, failures=0, seconds=60):
    from worker.calls import histogram

    h = histogram.from_values(latencies_ms)
    return Window(seconds, len(latencies_ms), failures, histogram.quantile(h, 0.95), h)


def test_the_slow_first_calls_of_a_cold_start_exclude_nobody():
    # a usual p95 of 12 ms, 41 ms after a restart: 3.4x, but 29 ms more is below the floor of latency_floor_ms
    assert degraded([_with([41.0] * 100)], 12.0, R) is None
    assert degraded([_with([300.0] * 100)], 12.0, R) is not None  # past the floor: slow, however fast usually


def test_a_latency_verdict_needs_95_percent_confidence_that_the_p95_is_above_the_limit():
    # limit 2,000 ms (2x 1,000): 2 calls of 25 above it could be a healthy tail; 8 of 25 cannot
    assert degraded([_with([900.0] * 23 + [2500.0] * 2)], 1000.0, R) is None
    reason = degraded([_with([900.0] * 17 + [2500.0] * 8)], 1000.0, R)
    assert reason is not None and "8/25 calls above 2,000 ms" in reason


def test_probes_are_not_restored_until_the_settled_cohort_is_large_enough():
    from worker.calls import histogram

    h = histogram.from_values([900.0] * 5)
    settling = Window(30, 5, 0, 900.0, h)  # the settled cohort: 5 of the 10 probe calls needed
    assert probe_verdict(settling, 1000.0, R) is None
    settled = Window(30, 12, 0, 900.0, histogram.from_values([900.0] * 12))
    assert probe_verdict(settled, 1000.0, R)[0] == "restore"
