"""A/A experiments at the leader's cadence (a look every 10 s, the project's own evaluate()): identical
arms must not produce a winner more often than the level promises, with balanced or 90/10 shares,
whatever the metric. The grid with more runs, 50 calls/s and 24 h is `python -m worker.routing_eval.aa`
(figures in docs/experiments.md); these seeded runs hold the cases that failed before."""

import math
import os

import numpy as np
import pytest
from pydantic import ValidationError

from tests.unit.experiments.test_evaluate import spec
from worker.calls import histogram
from worker.experiments.sequential import quantile_interval
from worker.routing_eval.aa import METRICS, ArmWorld, Setup, false_winners, guardrail_stops, outcomes

RUNS = 100
PROCESSES = min(2, os.cpu_count() or 1)  # seeded runs are independent: the same outcomes on every core count
P95_RUNS = 30  # a p95 look reads the histogram: the slowest, and the most conservative (0 of 200 in the grid)
LEVEL = 0.05


@pytest.mark.parametrize("metric", METRICS)
def test_identical_arms_with_shares_of_90_and_10_rarely_produce_a_winner(metric):
    runs = P95_RUNS if metric == "p95_latency_ms" else RUNS
    setup = Setup(metric=metric, shares=(0.9, 0.1), rate_per_s=5.0, duration_s=2 * 3600)
    rate = false_winners(setup, runs, processes=PROCESSES)
    print(f"{metric}, 90/10, 5 calls/s, 2 h: false winners {rate}")
    assert rate.value <= LEVEL, str(rate)  # 22 % for success_rate before the pooled variance


def test_identical_balanced_arms_rarely_produce_a_winner():
    setup = Setup(metric="success_rate", rate_per_s=5.0, duration_s=2 * 3600)
    rate = false_winners(setup, RUNS, seed=1000, processes=PROCESSES)
    assert rate.value <= LEVEL, str(rate)


def test_a_p95_exactly_at_its_guardrail_limit_is_rarely_stopped_and_a_stop_crowns_nobody():
    world = ArmWorld()
    limit = world.latency_median_ms * math.exp(1.6448536269514722 * world.latency_sigma)
    setup = Setup(
        shares=(0.5, 0.5),
        rate_per_s=50.0,
        duration_s=2 * 3600,
        guardrails=({"metric": "p95_latency_ms", "above": limit},),
    )
    stopped, crowned = guardrail_stops(setup, 25, processes=PROCESSES)
    assert stopped.value <= LEVEL and crowned.hits == 0, (str(stopped), str(crowned))


def test_the_p95_interval_holds_a_limit_it_sits_on_at_millions_of_calls():
    # at 2 million calls the interval is narrower than a histogram bucket: without widening it by the
    # histogram's accuracy, its low end is the bucket's representative value, above the true p95 half the time
    rng = np.random.default_rng(5)
    median, sigma = 800.0, 0.5
    true_p95 = median * math.exp(1.6448536269514722 * sigma)
    above = 0
    for _ in range(20):
        values = rng.lognormal(math.log(median), sigma, 2_000_000)
        buckets = np.ceil(np.log(values) / math.log(histogram.GAMMA)).astype(int)
        keys, counts = np.unique(buckets, return_counts=True)
        low, high = quantile_interval(dict(zip(keys.tolist(), counts.tolist())), 0.95, 0.02, 0.05)
        above += low > true_p95
        assert high >= true_p95
    assert above == 0


def test_session_units_are_refused_with_the_reason():
    with pytest.raises(ValidationError, match="calls of one session are correlated"):
        spec(unit="session")


def test_correlated_calls_in_sessions_are_what_the_refusal_is_about():
    correlated = ArmWorld(success=0.9, session_sd=1.0)
    setup = Setup(rate_per_s=5.0, duration_s=3600, arms=(correlated, correlated), calls_per_session=20)
    assert (
        false_winners(setup, 40, processes=PROCESSES).value > 0.2
    )  # analysed as independent calls: far above the level


def test_runs_spread_over_processes_are_the_same_runs():
    setup = Setup(metric="success_rate", rate_per_s=5.0, duration_s=600)
    assert outcomes(setup, 6, seed=3, processes=2) == outcomes(setup, 6, seed=3)
