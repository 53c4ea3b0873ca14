"""Rows -> decayed evidence, trailing health windows per scope, baselines that leave out the incident."""

from worker.calls import histogram
from worker.routing.evidence import (
    ANY_TASK,
    MinuteRow,
    SecondRow,
    baselines,
    decayed_evidence,
    health_windows,
    since_window,
)

NOW = 10_000.0
H = histogram.from_values([1000.0] * 10)


def minute(age_min, model="m", task="coding", calls=100, successes=100, hist=H):
    return MinuteRow(NOW - 60 * age_min - 30, model, task, "balanced", calls, successes, 0.1 * calls, hist)


def test_evidence_halves_with_each_half_life():
    rows = [minute(0, successes=0), minute(15, successes=100)]  # 100 failures just now, 100 successes 15 min ago
    (e,) = decayed_evidence(rows, NOW, window_s=3600, half_life_s=900)["coding"]
    assert e.raw_calls == 200 and abs(e.calls - 150) < 1e-6 and abs(e.successes - 50) < 1e-6
    assert abs(e.avg_cost_usd - 0.1) < 1e-9


def test_rows_outside_the_window_or_from_the_future_are_not_evidence():
    rows = [minute(0), minute(-30), minute(90)]  # now, 30 min ahead, 90 min ago
    (e,) = decayed_evidence(rows, NOW, window_s=3600, half_life_s=900)["coding"]
    assert e.raw_calls == 100


def test_an_incident_that_is_over_is_left_out_for_that_model_only():
    rows = [minute(0), minute(5, successes=0), minute(5, model="other", successes=0), minute(20)]
    incidents = {("m", ANY_TASK): (NOW - 400, NOW - 200)}
    by_model = {
        e.model_id: e
        for e in decayed_evidence(rows, NOW, window_s=3600, half_life_s=900, incidents=incidents)["coding"]
    }
    assert by_model["m"].raw_calls == 200 and by_model["m"].successes == by_model["m"].calls
    assert by_model["other"].raw_calls == 100


def second(age_s, model="m", task="coding", calls=10, failures=0, latency=1000.0):
    return SecondRow(NOW - age_s, model, task, calls, failures, histogram.from_values([latency] * calls))


def test_health_windows_per_task_and_model_wide_without_the_worst_task():
    rows = [second(a, task="coding", failures=6) for a in range(10)] + [second(a, task="chat") for a in range(10)]
    windows = health_windows(rows, NOW, (3, 10))
    coding = {w.seconds: w for w in windows[("m", "coding")]}
    assert (coding[3].calls, coding[3].failures) == (40, 24) and (coding[10].calls, coding[10].failures) == (100, 60)
    wide = {w.seconds: w for w in windows[("m", ANY_TASK)]}
    assert (wide[10].calls, wide[10].failures) == (100, 0)  # coding, the worst, is left out: chat is healthy
    single = health_windows([second(0)], NOW, (3,))
    assert ("m", ANY_TASK) not in single  # one task type: its own breaker covers it


def test_future_buckets_judge_nothing_and_probes_count_only_calls_after_probing_began():
    rows = [second(-60, failures=10), second(30, failures=10), second(5), second(2)]
    assert {w.seconds: w.calls for w in health_windows(rows, NOW, (60,))[("m", "coding")]} == {60: 30}
    probes = since_window(rows, "m", "coding", since=NOW - 6.5, now=NOW)
    assert (probes.calls, probes.failures) == (20, 0)


def test_the_latency_baseline_leaves_out_the_last_minutes_and_needs_enough_calls():
    slow = histogram.from_values([9000.0] * 100)
    rows = [minute(0, hist=slow), minute(1, hist=slow), minute(10, hist=histogram.from_values([1000.0] * 100))]
    base = baselines(rows, NOW, window_s=3600)
    assert abs(base[("m", "coding")] - 1000) < 20 and abs(base[("m", ANY_TASK)] - 1000) < 20
    assert baselines([minute(10, hist=H)], NOW, window_s=3600) == {}  # 10 calls are no baseline
