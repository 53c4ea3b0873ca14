"""Routing decisions per task type, and the hysteresis that keeps versions meaningful."""

from worker.heuristics import decide, worth_publishing
from worker.scoring import Evidence, Weights


def ev(model, calls, successes, layer="balanced", p95=1000.0):
    return Evidence(model, layer, calls, successes, p95, 0.001)


EVIDENCE = [ev("good", 500, 495, "deep"), ev("ok", 500, 450, "fast"), ev("tiny", 3, 3, "fast")]


def test_the_best_model_with_enough_calls_is_preferred_with_its_layer():
    d = decide("coding", EVIDENCE, {}, Weights(), window_s=3600, min_calls=20)
    assert (d.preferred_model, d.preferred_layer) == ("good", "deep")
    assert d.fallback_models == ["ok", "tiny"] and set(d.weights) == {"good", "ok", "tiny"}
    assert "good (deep) scores best for coding" in d.reasoning and d.evidence["tiny"]["calls"] == 3


def test_an_excluded_model_gets_no_traffic_and_the_reason_is_given():
    d = decide("coding", EVIDENCE, {"good": "failure rate 80% over the last 10 s"}, Weights(), window_s=3600)
    assert d.preferred_model == "ok" and "good" not in d.weights and "good" not in d.fallback_models
    assert d.excluded == {"good": "failure rate 80% over the last 10 s"} and "excluded: good" in d.reasoning
    assert "good" in d.evidence  # still visible as evidence


def test_nothing_to_decide_without_candidates():
    assert decide("coding", [], {}, Weights(), window_s=60) is None
    assert decide("coding", [ev("a", 10, 10)], {"a": "down"}, Weights(), window_s=60) is None


def test_hysteresis():
    d = decide("coding", EVIDENCE, {}, Weights(), window_s=3600)
    same = {"preferred_model": d.preferred_model, "preferred_layer": d.preferred_layer, "excluded": {},
            "weights": dict(d.weights)}
    assert worth_publishing(None, d, 0.1)
    assert not worth_publishing(same, d, 0.1)
    nudged = {**same, "weights": {m: w + (0.05 if m == "ok" else 0) for m, w in d.weights.items()}}
    assert not worth_publishing(nudged, d, 0.1)
    moved = {**same, "weights": {m: w + (0.2 if m == "ok" else 0) for m, w in d.weights.items()}}
    assert worth_publishing(moved, d, 0.1)
    assert worth_publishing({**same, "preferred_model": "ok"}, d, 0.1)
    assert worth_publishing({**same, "excluded": {"x": "down"}}, d, 0.1)
