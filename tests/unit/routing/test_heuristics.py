"""Routing decisions per task type: the split, exploration of newcomers, probes, the incumbent, hysteresis."""

from worker.routing.heuristics import Policy, decide, worth_publishing
from worker.routing.scoring import Evidence, Weights


def ev(model, calls, successes, layer="balanced", p95=1000.0):
    return Evidence(model, layer, calls, successes, p95, 0.001)


EVIDENCE = [ev("good", 500, 495, "deep"), ev("ok", 500, 450, "fast"), ev("tiny", 3, 3, "fast")]
P = Policy()


def test_the_best_model_with_enough_calls_is_preferred_with_its_layer():
    d = decide("coding", EVIDENCE, Weights(), P)
    assert (d.preferred_model, d.preferred_layer) == ("good", "deep")
    assert d.fallback_models == ["ok", "tiny"] and set(d.weights) == {"good", "ok", "tiny"}
    assert abs(sum(d.weights.values()) - 1) < 1e-9 and d.weights["good"] > 0.9
    assert "good (deep) scores best for coding" in d.reasoning and d.evidence["tiny"]["calls"] == 3


def test_an_excluded_model_gets_no_traffic_and_the_reason_is_given():
    d = decide("coding", EVIDENCE, Weights(), P, excluded={"good": "failure rate 80% over the last 10 s"})
    assert d.preferred_model == "ok" and "good" not in d.weights and "good" not in d.fallback_models
    assert d.excluded == {"good": "failure rate 80% over the last 10 s"} and "excluded: good" in d.reasoning
    assert "good" in d.evidence  # still visible as evidence


def test_a_half_open_model_gets_exactly_the_probe_share_and_nothing_else():
    d = decide("coding", EVIDENCE, Weights(), P, probing={"good": "probing after 15 s excluded"})
    assert d.probes == {"good": P.probe_share} and d.weights["good"] == P.probe_share
    assert d.preferred_model == "ok" and abs(sum(d.weights.values()) - 1) < 1e-9


def test_a_catalogue_model_without_evidence_is_explored_within_the_exploration_share():
    d = decide("coding", EVIDENCE[:2], Weights(), P, catalogue={"fresh": "balanced"})
    assert 0 < d.weights["fresh"] <= P.exploration and "exploring fresh" in d.reasoning
    assert "fresh" in d.fallback_models
    well_measured = decide("coding", EVIDENCE[:2], Weights(), P)
    assert set(well_measured.weights) == {"good", "ok"}  # nothing to explore: no exploration share spent


def test_nothing_to_decide_without_evidence_and_an_empty_split_when_everything_is_excluded():
    assert decide("coding", [], Weights(), P) is None
    nobody = decide("coding", [ev("a", 10, 10)], Weights(), P, excluded={"a": "down"})
    assert nobody.weights == {} and nobody.preferred_model is None and nobody.excluded == {"a": "down"}
    assert worth_publishing({"preferred_model": "a", "preferred_layer": "balanced", "weights": {"a": 1.0}}, nobody, 0.1)
    only_new = decide("coding", [ev("a", 10, 10)], Weights(), P, excluded={"a": "down"}, catalogue={"b": "fast"})
    assert only_new.weights == {"b": 1.0} and only_new.preferred_model == "b"


def test_the_incumbent_holds_on_a_tie_and_yields_to_a_confidently_better_challenger():
    tie = [ev("a", 2000, 1960), ev("b", 2000, 1961)]
    assert decide("chat", tie, Weights(), P, previous={"preferred_model": "a", "weights": {}}).preferred_model == "a"
    assert decide("chat", tie, Weights(), P, previous={"preferred_model": "b", "weights": {}}).preferred_model == "b"
    clear = [ev("a", 2000, 1900), ev("b", 2000, 1990)]
    assert decide("chat", clear, Weights(), P, previous={"preferred_model": "a", "weights": {}}).preferred_model == "b"


def test_hysteresis():
    d = decide("coding", EVIDENCE, Weights(), P)
    same = {
        "preferred_model": d.preferred_model,
        "preferred_layer": d.preferred_layer,
        "excluded": {},
        "weights": dict(d.weights),
    }
    assert worth_publishing(None, d, 0.1)
    assert not worth_publishing(same, d, 0.1)

    def shifted(by):
        return {**same, "weights": {**d.weights, "good": d.weights["good"] - by, "tiny": d.weights["tiny"] + by}}

    assert not worth_publishing(shifted(0.05), d, 0.1)
    moved = shifted(0.2)
    assert worth_publishing(moved, d, 0.1)
    assert worth_publishing({**same, "preferred_model": "ok"}, d, 0.1)
    assert worth_publishing({**same, "excluded": {"x": "down"}}, d, 0.1)
    assert worth_publishing({**same, "weights": {m: w for m, w in d.weights.items() if m != "tiny"}}, d, 0.5)


def test_a_flood_of_distinct_models_gives_a_rule_of_bounded_size():
    import datetime as dt

    from worker.routing.contract import RoutingHeuristic

    long = "m" * 190
    flood = [ev(f"{long}{i:06d}", 30 + i % 7, 29 + i % 7) for i in range(20_000)]
    catalogue = {f"{long}new{i:05d}": "fast" for i in range(20_000)}
    excluded = {f"{long}{i:06d}": "failure rate 90% over the last 10 s " + "x" * 100 for i in range(0, 20_000, 4)}
    policy = Policy(max_models=100)
    d = decide("coding", flood + [ev("busiest", 5000, 4990)], Weights(), policy, excluded=excluded, catalogue=catalogue)
    assert "busiest" in d.weights  # the models with the most calls are the ones weighed
    assert len(d.weights) <= 100 and len(d.evidence) <= 100 and len(d.excluded) <= 100
    record = RoutingHeuristic.learned(d, 1, 3600, dt.datetime.now(dt.UTC)).model_dump_json()
    assert len(record) < 256_000, len(record)


def test_with_every_model_held_back_the_one_excluded_for_latency_only_takes_the_traffic():
    evidence = [ev("slow", 500, 500), ev("failing", 500, 10)]
    held = {
        "slow": "p95 latency 9,000 ms over the last 30 s, 3.0x its usual 3,000 ms",
        "failing": "failure rate 98% over the last 10 s (49/50 calls)",
    }
    d = decide("coding", evidence, Weights(), P, excluded=held)
    assert d.weights == {"slow": 1.0} and d.preferred_model == "slow" and set(d.excluded) == {"failing"}
    assert "excluded only for latency take the traffic: slow" in d.reasoning
    both_failing = {m: "failure rate 98% over the last 10 s (49/50 calls)" for m in ("slow", "failing")}
    nobody = decide("coding", evidence, Weights(), P, excluded=both_failing)
    assert nobody.weights == {} and nobody.preferred_model is None  # routers use what else they can reach


def test_the_engine_never_excludes_for_latency_alone_when_the_others_fail_more():
    from worker.calls import histogram
    from worker.routing.engine import Engine
    from worker.routing.evidence import SecondRow

    now = 1000.0
    slow, fast = histogram.from_values([3000.0] * 5), histogram.from_values([500.0] * 5)

    def rows(other_failures):
        return [
            row
            for a in range(60)
            for row in (
                SecondRow(now - a, "slow", "coding", 5, 0, slow),
                SecondRow(now - a, "other", "coding", 5, other_failures, fast),
            )
        ]

    engine = Engine()
    base = {("slow", "coding"): 1000.0, ("slow", "*"): 1000.0, ("other", "coding"): 500.0}
    vetoed = engine.check(now, {}, rows(other_failures=1), base)  # the other fails 20 % of its calls (not excluded)
    assert [t.breaker.model_id for t in vetoed] == []
    allowed = engine.check(now, {}, rows(other_failures=0), base)
    assert {t.breaker.model_id for t in allowed} == {"slow"} and "p95 latency" in allowed[0].breaker.reason
