"""Rows -> decayed evidence, trailing health windows per scope, baselines that leave out the incident."""

import math

import pytest

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


def test_feedback_makes_a_task_type_weigh_quality_and_the_name_with_the_most_feedback():
    from worker.routing.evidence import QualityRow, with_quality
    from worker.routing.scoring import Evidence

    now = 10_000.0
    evidence = {
        "busy": [Evidence("a", "fast", 500, 500, 100.0, 0.001), Evidence("b", "fast", 500, 500, 100.0, 0.001)],
        "silent": [Evidence("a", "fast", 10, 10, 100.0, 0.001)],
    }
    rows = [
        QualityRow(now - 90, "a", "busy", "correctness", 400, 360.0),
        QualityRow(now - 90, "b", "busy", "correctness", 400, 200.0),
        QualityRow(now - 90, "a", "busy", "thumbs", 1, 1.0),  # fewer than correctness: not the name weighed
    ]
    out = with_quality(evidence, rows, now, window_s=3600, half_life_s=1e9)
    assert out["silent"][0].quality is None  # no feedback on the task type: the success objective
    a, b = out["busy"]
    assert (a.quality.name, a.quality.raw_count, b.quality.raw_count) == ("correctness", 400, 400)
    assert a.quality.mean == pytest.approx(0.9, abs=0.01) and b.quality.mean == pytest.approx(0.5, abs=0.01)
    low, high = b.quality.interval()
    assert low < 0.5 < high
    named = with_quality(evidence, rows, now, window_s=3600, half_life_s=1e9, names=lambda t: "thumbs")
    assert named["busy"][0].quality.name == "thumbs" and named["busy"][1].quality.raw_count == 0


def test_a_model_that_does_alike_everywhere_lends_a_rare_task_type_a_strong_prior_and_one_that_varies_a_weak_one():
    from worker.routing.evidence import quality_priors

    steady = {(f"t{i}", "a"): (200.0, 200.0 * 0.8) for i in range(8)}
    varied = {(f"t{i}", "b"): (200.0, 200.0 * (0.9 if i % 2 else 0.4)) for i in range(8)}
    cells = steady | varied | {("new", "a"): (1.0, 1.0), ("new", "b"): (1.0, 0.0)}
    priors = quality_priors(cells, max_strength=40)
    a, b = priors[("new", "a")]
    assert a + b == pytest.approx(42.0) and a / (a + b) == pytest.approx(0.8, abs=0.02)  # at the cap, at its usual 0.8
    a, b = priors[("new", "b")]
    assert a + b < 5 and 0.5 < a / (a + b) < 0.7  # 0.4 or 0.9 elsewhere: a weak prior near its mean, 0.65
    assert priors[("t0", "a")][0] / sum(priors[("t0", "a")]) == pytest.approx(0.8, abs=0.02)  # from the others
    assert quality_priors({("t", "a"): (10.0, 5.0), ("u", "a"): (10.0, 7.0)}, 40)[("t", "a")] == (1.0, 1.0)


def test_probes_judged_by_start_time_cannot_hide_slow_calls_that_have_not_come_back():
    # probing began at `since`, during a 3x incident: one probe a second; most take 45 s, the fast tail 10 s
    since = 9_900.0
    started = [(since + 1 + i, 45_000.0 if i % 3 else 10_000.0) for i in range(60)]

    def seen(now):  # the rows a check at `now` reads: only calls that have completed
        return [
            SecondRow(math.floor(t + ms / 1000), "m", "coding", 1, 0, histogram.from_values([ms]))
            for t, ms in started
            if t + ms / 1000 <= now
        ]

    early = since + 40
    on_completion = since_window(seen(early), "m", "coding", since, early)
    assert on_completion.calls >= 10 and on_completion.p95_latency_ms < 11_000  # only the fast ones came back
    assert since_window(seen(early), "m", "coding", since, early, settle_s=30.0).calls < 10  # too early to judge
    later = since + 90
    cohort = since_window(seen(later), "m", "coding", since, later, settle_s=60.0)  # started by since + 30
    assert cohort.calls == 29 and cohort.p95_latency_ms > 44_000  # the slow ones count


def test_the_latency_baseline_leaves_out_an_incident_and_the_probes_sent_during_it():
    slow = histogram.from_values([9000.0] * 100)
    rows = [minute(a) for a in range(10, 40)] + [minute(a, hist=slow) for a in range(3, 10)]
    assert baselines(rows, NOW, window_s=3600)[("m", "coding")] > 1000.0  # the incident creeps in
    incident = {("m", ANY_TASK): (NOW - 10 * 60, NOW)}
    assert baselines(rows, NOW, window_s=3600, incidents=incident)[("m", "coding")] == pytest.approx(1000.0, rel=0.02)
