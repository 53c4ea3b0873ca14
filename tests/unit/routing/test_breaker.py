"""The circuit breaker: closed -> open -> half-open -> closed, or open again with a longer cooldown."""

from dataclasses import replace

from worker.routing.breaker import Breaker, step
from worker.routing.degradation import Rules
from worker.routing.evidence import Window

R = Rules(cooldown_s=15, cooldown_max_s=60, probe_calls=10)
FAILING = [Window(10, 50, 40, None)]
HEALTHY = [Window(10, 50, 1, None)]


def test_a_degraded_window_opens_the_breaker_with_the_baseline_frozen():
    t = step(None, "m", "coding", FAILING, None, 1000.0, now=100.0, rules=R)
    assert t.alert == "model_degraded" and t.breaker.state == "open" and t.breaker.scope == "coding"
    assert (t.breaker.since, t.breaker.opened_at, t.breaker.cooldown_s, t.breaker.baseline_p95_ms) == (
        100,
        100,
        15,
        1000,
    )
    assert step(None, "m", "coding", HEALTHY, None, 1000.0, now=100.0, rules=R) is None


def test_open_waits_for_the_cooldown_then_probes_whatever_the_windows_say():
    opened = step(None, "m", "*", FAILING, None, None, now=100.0, rules=R).breaker
    assert step(opened, "m", "*", [], None, None, now=114.0, rules=R) is None
    probing = step(opened, "m", "*", [], None, None, now=115.0, rules=R)
    assert probing.alert == "model_probing" and probing.breaker.state == "half_open" and probing.breaker.since == 115


def test_probes_restore_or_reopen_with_a_doubled_cooldown_up_to_the_maximum():
    half = Breaker("m", "*", "half_open", "probing", since=200.0, cooldown_s=15, opened_at=100.0)
    restored = step(half, "m", "*", FAILING, Window(20, 10, 0, None), None, now=220.0, rules=R)
    assert restored.alert == "model_recovered" and restored.breaker.state == "closed"
    assert restored.breaker.incident() == (40.0, 220.0)  # from the longest window before opening, to the restore
    reopened = step(half, "m", "*", [], Window(20, 3, 3, None), None, now=210.0, rules=R)
    assert reopened.alert == "model_degraded" and reopened.breaker.cooldown_s == 30 and reopened.breaker.trips == 2
    capped = step(Breaker("m", "*", "half_open", "p", 0.0, 45.0), "m", "*", [], Window(5, 3, 3, None), None, 9.0, R)
    assert capped.breaker.cooldown_s == 60
    assert step(half, "m", "*", [], Window(20, 4, 0, None), None, now=210.0, rules=R) is None  # not enough yet


def test_a_just_restored_model_is_not_judged_on_windows_older_than_its_restore():
    closed = Breaker("m", "*", "closed", "ok", since=1000.0, cooldown_s=15, opened_at=900.0)
    old_bad = [Window(10, 50, 1, None), Window(60, 300, 200, None)]
    assert step(closed, "m", "*", old_bad, None, None, now=1020.0, rules=R) is None
    again = step(closed, "m", "*", [Window(10, 50, 45, None)], None, None, now=1020.0, rules=R)
    assert again.breaker.state == "open" and again.breaker.cooldown_s == 30  # tripped again soon: longer cooldown


def test_a_task_breaker_ignores_windows_that_hold_the_incident_of_its_model_wide_breaker():
    windows = [Window(10, 50, 1, None), Window(30, 150, 60, None)]  # the 30 s window still holds the outage
    assert step(None, "m", "coding", windows, None, None, now=1010.0, rules=R, restored_at=1000.0) is None
    assert step(None, "m", "coding", windows, None, None, now=1040.0, rules=R, restored_at=1000.0) is not None


def test_the_engine_does_not_trip_task_breakers_on_the_incident_its_model_wide_breaker_just_closed():
    from worker.calls import histogram
    from worker.routing.engine import Engine
    from worker.routing.evidence import SecondRow

    now, start = 1000.0, 990.0
    rows = [
        SecondRow(now - a, "m", task, 5, 3 if a > 12 else 0, histogram.from_values([500.0] * 5))
        for a in range(30)
        for task in ("coding", "chat")
    ]
    half = {("m", "*"): Breaker("m", "*", "half_open", "probing", since=start, cooldown_s=15, opened_at=960.0)}
    transitions = Engine(rules=R).check(now, half, rows, {})
    assert [(t.breaker.scope, t.alert) for t in transitions] == [("*", "model_recovered")]


def test_tripping_again_soon_after_a_restore_continues_the_same_incident():
    closed = Breaker("m", "*", "closed", "ok", since=1000.0, cooldown_s=15, baseline_p95_ms=900.0, opened_at=900.0)
    again = step(closed, "m", "*", [Window(10, 50, 45, None)], None, 2000.0, now=1020.0, rules=R).breaker
    assert again.opened_at == 900.0 and again.baseline_p95_ms == 900.0
    later = replace(closed, since=0.0)
    assert (
        step(later, "m", "*", [Window(10, 50, 45, None)], None, 2000.0, now=1020.0, rules=R).breaker.opened_at == 1020.0
    )


def test_a_declaration_recomputes_the_task_types_it_names_only():
    from worker.routing.engine import catalogue_changes

    before = {"coding": {"a": "fast"}, "chat": {"b": "deep"}}
    assert catalogue_changes(before, {**before, "coding": {"a": "fast", "new": "deep"}}) == {"coding"}
    assert catalogue_changes(before, {**before, "summaries": {"new": "fast"}}) == {"summaries"}
    assert catalogue_changes(before, {"coding": {"a": "fast"}}) == {"chat"}  # a removal
    assert catalogue_changes(before, {**before, "*": {"new": "fast"}}) is None  # for every task type
    assert catalogue_changes(None, before) is None and catalogue_changes(before, dict(before)) == set()
