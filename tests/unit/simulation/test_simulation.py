"""The simulator is deterministic, realistic in shape, and its ledger counts what it generated."""

from worker.calls.events import EventKind
from worker.simulation.traffic import MODELS, Degradation, Ledger, generate

CLOCK = lambda: "2026-11-24T10:00:00+00:00"


def test_same_seed_same_traffic():
    assert list(generate(200, seed=5, clock=CLOCK)) == list(generate(200, seed=5, clock=CLOCK))
    assert list(generate(200, seed=5, clock=CLOCK)) != list(generate(200, seed=6, clock=CLOCK))


def test_every_model_and_layer_appears_with_failures_of_several_types():
    events = list(generate(5000, seed=1, clock=CLOCK))
    assert {e["model_id"] for _, e in events} == {m.model_id for m in MODELS}
    assert {e["layer"] for _, e in events} == {"fast", "balanced", "deep"}
    failures = [e for k, e in events if k is EventKind.failed]
    assert 0.01 < len(failures) / len(events) < 0.15
    assert len({e["error_type"] for e in failures}) >= 5
    assert len({e["error_message"] for e in failures}) > len(failures) * 0.9  # variable parts vary


def test_degradation_lowers_the_success_of_one_model():
    degraded = list(generate(6000, seed=2, clock=CLOCK, degrade=Degradation("gpt-4o", start=3000)))

    def rate(events):
        ok = [k is EventKind.completed for k, e in events if e["model_id"] == "gpt-4o"]
        return sum(ok) / len(ok)

    assert rate(degraded[:3000]) > 0.9 and rate(degraded[3000:]) < 0.5


def test_ledger_counts_each_call():
    ledger = Ledger()
    events = list(generate(1000, seed=4, clock=CLOCK))
    for kind, event in events:
        ledger.add(kind, event)
    assert ledger.calls == 1000
    assert sum(t.successes for t in ledger.by_model_task.values()) == sum(k is EventKind.completed for k, _ in events)
