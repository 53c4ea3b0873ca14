"""Scoring: the confidence bound, the utility's order (quality, then latency, then cost), the split."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.routing.scoring import Evidence, Weights, score, traffic_split, wilson_lower_bound

W = Weights()


def ev(model, calls, successes, p95=1000.0, cost=0.001, layer="fast"):
    return Evidence(model, layer, calls, successes, p95, cost)


def test_wilson_bound_known_values():
    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(3, 3) == pytest.approx(0.4385, abs=1e-4)
    assert wilson_lower_bound(970, 1000) == pytest.approx(0.9574, abs=1e-4)


def test_three_out_of_three_does_not_beat_970_out_of_1000():
    assert score(ev("lucky", 3, 3), W) < score(ev("proven", 1000, 970), W)


def test_quality_first_then_latency_then_cost():
    assert score(ev("a", 1000, 990, p95=20_000, cost=0.05), W) > score(ev("b", 1000, 900, p95=300, cost=0.0001), W)
    assert score(ev("fast", 1000, 980, p95=500), W) > score(ev("slow", 1000, 980, p95=5000), W)
    assert score(ev("cheap", 1000, 980, cost=0.0001), W) > score(ev("dear", 1000, 980, cost=0.05), W)


counts = st.integers(0, 5000).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n)))
latency = st.floats(0, 100_000)
cost = st.floats(0, 1)


@given(counts, st.integers(1, 500), latency, cost)
def test_adding_successes_never_lowers_a_score(calls_successes, more, p95, c):
    calls, successes = calls_successes
    before = score(ev("m", calls, successes, p95, c), W)
    after = score(ev("m", calls + more, successes + more, p95, c), W)
    assert after >= before - 1e-12


@given(counts, st.integers(1, 500), latency, cost)
def test_adding_failures_never_raises_a_score(calls_successes, more, p95, c):
    calls, successes = calls_successes
    before = score(ev("m", calls, successes, p95, c), W)
    after = score(ev("m", calls + more, successes, p95, c), W)
    assert after <= before + 1e-12


def test_split_sums_to_one_favours_the_best_and_keeps_exploring():
    models = [ev("best", 2000, 1990), ev("worse", 2000, 1700), ev("new", 2, 2)]
    split = traffic_split(models, W, exploration=0.05, seed_text="coding")
    assert sum(split.values()) == pytest.approx(1.0, abs=1e-9)
    assert split["best"] > 0.85
    assert split["worse"] == 0.0  # well measured and clearly worse: no exploration is spent on it
    assert split["new"] > 0.01  # little data: a bounded exploration share
    assert split == traffic_split(models, W, exploration=0.05, seed_text="coding")  # same on every pod


def test_a_newcomer_without_evidence_gets_the_exploration_share():
    split = traffic_split([ev("best", 2000, 1990)], W, exploration=0.03, seed_text="x", newcomers=["fresh"])
    assert split == {"best": 0.97, "fresh": 0.03}
    assert traffic_split([], W, newcomers=["a", "b"]) == {"a": 0.5, "b": 0.5}


@given(st.lists(st.tuples(st.integers(0, 300), st.floats(0, 1)), min_size=1, max_size=6), st.floats(0, 0.5))
def test_split_is_a_distribution_with_bounded_exploration(specs, exploration):
    models = [ev(f"m{i}", n, int(n * share)) for i, (n, share) in enumerate(specs)]
    split = traffic_split(models, W, exploration=exploration, draws=200)
    assert sum(split.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(v >= -1e-9 for v in split.values())


def test_the_value_objective_trades_quality_against_cost_at_the_value_of_a_good_answer():
    from dataclasses import replace

    from worker.routing.scoring import Quality, value

    good = Evidence("strong", "deep", 400, 400, 1000.0, 0.004, quality=Quality("correctness", 200, 180, 200))
    cheap = Evidence("weak", "fast", 400, 400, 1000.0, 0.0002, quality=Quality("correctness", 200, 140, 200))
    for v, winner in ((0.01, "weak"), (1.0, "strong")):  # 0.2 more good answers per call: worth 0.002 or 0.2 USD
        w = Weights(value_usd=v)
        split = traffic_split([good, cheap], w, exploration=0.0, seed_text="t")
        assert split[winner] > 0.95, (v, split)
        assert max((good, cheap), key=lambda e: score(e, w)).model_id == winner
    w = Weights(value_usd=1.0)
    assert abs(value(1.0, 0.9, 0.0, 0.004, w) - (0.9 - 0.004)) < 1e-12
    unsure = replace(cheap, quality=Quality("correctness", 2, 1, 2))  # two votes: still explored
    assert 0.02 < traffic_split([good, unsure], w, exploration=0.0, seed_text="t")["weak"] < 0.98
