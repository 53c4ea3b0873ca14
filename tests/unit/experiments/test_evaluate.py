"""An experiment's looks: guardrails stop an arm, a clear winner ends it, p95 latency keeps its promise."""

import datetime as dt
import os

import numpy as np
import pytest
from pydantic import ValidationError

from worker.experiments.contract import Experiment, ExperimentSpec
from worker.experiments.evaluate import evaluate
from worker.experiments.sequential import ALPHA
from worker.experiments.tally import ArmTally, utility_of

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def spec(**overrides) -> ExperimentSpec:
    fields = {
        "experiment_id": "exp-1",
        "name": "fixed models",
        "task_types": ["coding"],
        "arms": [
            {"name": "a", "share": 0.5, "strategy": {"kind": "model", "model": "m-a", "layer": "fast"}},
            {"name": "b", "share": 0.5, "strategy": {"kind": "model", "model": "m-b", "layer": "fast"}},
        ],
        "primary_metric": "success_rate",
    } | overrides
    return ExperimentSpec.model_validate(fields)


def tally(successes: int, calls: int, latency_ms: float = 100.0, cost: float = 0.001) -> ArmTally:
    t = ArmTally()
    for i in range(calls):
        t.add(i < successes, latency_ms, cost)
    return t


def test_a_clear_winner_ends_the_experiment_and_a_tie_does_not():
    exp = Experiment.start(spec(), T0)
    tie = evaluate(exp, {"a": tally(900, 1000), "b": tally(905, 1000)}, T0)
    assert not tie.changed and tie.experiment.status == "running"
    clear = evaluate(exp, {"a": tally(800, 2000), "b": tally(1900, 2000)}, T0)
    assert clear.changed and clear.experiment.status == "completed" and clear.experiment.winner == "b"
    assert clear.experiment.version == 2
    (c,) = clear.comparisons
    assert c.arm == "b" and c.against == "a" and c.better and c.low > 0 and abs(c.estimate - 0.55) < 1e-9


def test_lower_is_better_for_cost_and_the_control_can_win():
    exp = Experiment.start(spec(primary_metric="cost_per_call"), T0)
    out = evaluate(exp, {"a": tally(500, 500, cost=0.001), "b": tally(500, 500, cost=0.01)}, T0)
    assert out.experiment.winner == "a" and out.comparisons[0].worse


def test_a_guardrail_stops_the_arm_at_once_and_that_alone_makes_no_winner():
    exp = Experiment.start(spec(guardrails=[{"metric": "failure_rate", "above": 0.2}]), T0)
    early = evaluate(exp, {"a": tally(95, 100), "b": tally(60, 100)}, T0)
    assert early.experiment.arm("b").stopped.startswith("guardrail: failure_rate")
    assert early.experiment.arm("a").stopped is None
    # the control is left alone: the stop is no comparison on the primary metric, so no winner
    assert early.experiment.status == "completed" and early.experiment.winner is None
    assert "no winner" in early.experiment.reason
    # an arm whose failure rate is near the limit is not stopped on noise
    near = evaluate(exp, {"a": tally(95, 100), "b": tally(82, 100)}, T0)
    assert near.experiment.arm("b").stopped is None and near.experiment.status == "running"


def test_guardrails_guard_the_treatments_not_the_control_and_the_maximum_duration_ends_without_a_winner():
    exp = Experiment.start(spec(guardrails=[{"metric": "p95_latency_ms", "above": 1000}]), T0)
    slow = evaluate(exp, {"a": tally(100, 100, latency_ms=5000), "b": tally(100, 100, latency_ms=6000)}, T0)
    assert slow.experiment.arm("a").stopped is None and slow.experiment.arm("b").stopped
    assert slow.experiment.status == "completed" and slow.experiment.winner is None
    late = evaluate(exp, {"a": tally(90, 100), "b": tally(90, 100)}, T0 + dt.timedelta(days=15))
    assert late.experiment.status == "completed" and late.experiment.winner is None
    assert "maximum duration" in late.experiment.reason


def test_with_three_arms_a_stop_leaves_the_others_to_be_compared_on_the_primary_metric():
    three = [
        {"name": n, "share": 1 / 3, "strategy": {"kind": "model", "model": f"m-{n}", "layer": "fast"}}
        for n in ("a", "b", "c")
    ]
    exp = Experiment.start(spec(arms=three, guardrails=[{"metric": "failure_rate", "above": 0.2}]), T0)
    out = evaluate(exp, {"a": tally(900, 1000), "b": tally(400, 1000), "c": tally(905, 1000)}, T0)
    assert out.experiment.arm("b").stopped and out.experiment.status == "running"  # c has not beaten a


def test_a_finished_experiment_is_reported_but_never_changes():
    done = Experiment.start(spec(), T0).changed(status="completed", winner="b", reason="r")
    out = evaluate(done, {"a": tally(10, 1000), "b": tally(1000, 1000)}, T0)
    assert not out.changed and out.experiment is done and len(out.arms) == 2


def test_three_arms_need_one_arm_better_than_both_others():
    arms = [
        {"name": n, "share": 1 / 3, "strategy": {"kind": "model", "model": f"m-{n}", "layer": "fast"}} for n in "abc"
    ]
    exp = Experiment.start(spec(arms=arms), T0)
    two_good = evaluate(exp, {"a": tally(500, 1000), "b": tally(950, 1000), "c": tally(950, 1000)}, T0)
    assert two_good.experiment.status == "running" and len(two_good.comparisons) == 3
    one_best = evaluate(exp, {"a": tally(500, 1000), "b": tally(700, 1000), "c": tally(950, 1000)}, T0)
    assert one_best.experiment.winner == "c"


def test_the_utility_is_the_documented_formula():
    assert utility_of(True, 4000.0, 0.01) == pytest.approx(1 - 0.015 - 0.01)
    assert utility_of(False, 0.0, 0.0) == 0.0


def test_a_definition_that_cannot_be_run_is_refused_with_the_reason():
    with pytest.raises(ValidationError, match="distinct"):
        spec(arms=[spec().arms[0].model_dump(), spec().arms[0].model_dump()])
    with pytest.raises(ValidationError, match="needs layer, model"):
        spec(arms=[{"name": "x", "share": 1, "strategy": {"kind": "model"}}, spec().arms[0].model_dump()])
    weights = {"name": "w", "share": 1, "strategy": {"kind": "weights", "weights": {"latency": 0.5}}}
    with pytest.raises(ValidationError, match="must list its task types"):
        spec(task_types=None, arms=[weights, spec().arms[0].model_dump()])
    with pytest.raises(ValidationError, match="RE2"):
        spec(
            arms=[
                {
                    "name": "x",
                    "share": 1,
                    "strategy": {"kind": "manual", "model": "m", "layer": "fast", "pattern": "(a)\\1"},
                },
                spec().arms[0].model_dump(),
            ]
        )


def _latency_looks(scale_b: float, runs: int, seed: int) -> float:
    """Fraction of runs in which some look (every 100 calls per arm, up to 4,000) ended the experiment."""
    rng = np.random.default_rng(seed)
    exp = Experiment.start(spec(primary_metric="p95_latency_ms"), T0)
    ended = 0
    for _ in range(runs):
        a, b = ArmTally(), ArmTally()
        la = rng.lognormal(np.log(300), 0.6, 4000)
        lb = rng.lognormal(np.log(300 * scale_b), 0.6, 4000)
        for n in range(4000):
            a.add(True, float(la[n]), 0.0)
            b.add(True, float(lb[n]), 0.0)
            if (n + 1) % 100 == 0 and evaluate(exp, {"a": a, "b": b}, T0).experiment.status != "running":
                ended += 1
                break
    return ended / runs


def test_p95_latency_a_a_experiments_watched_every_100_calls_declare_a_winner_at_most_alpha_of_the_time():
    assert _latency_looks(1.0, runs=300, seed=3) <= ALPHA


def test_p95_latency_30_percent_slower_is_found_within_4000_calls_per_arm_with_80_percent_power():
    """docs/experiments.md names this size."""
    assert _latency_looks(1.3, runs=100, seed=4) >= 0.8


def test_an_arm_right_at_its_guardrail_watched_every_20_calls_is_stopped_at_most_alpha_of_the_time():
    rng = np.random.default_rng(5)
    exp = Experiment.start(spec(guardrails=[{"metric": "failure_rate", "above": 0.2}]), T0)
    stopped = 0
    for _ in range(300):
        fails = rng.random(3000) < 0.2
        b = ArmTally()
        for n in range(3000):
            b.add(not fails[n], 100.0, 0.0)
            if (n + 1) % 20 == 0 and evaluate(exp, {"a": tally(30, 30), "b": b}, T0).experiment.arm("b").stopped:
                stopped += 1
                break
    assert stopped / 300 <= ALPHA


def judged(scores: list[float], name: str = "correctness") -> ArmTally:
    t = tally(len(scores), len(scores))
    t.quality[name] = (len(scores), float(sum(scores)), float(sum(s * s for s in scores)))
    return t


def test_a_quality_score_is_a_primary_metric_and_a_guardrail_below_its_limit():
    rng = np.random.default_rng(3)
    exp = Experiment.start(spec(primary_metric="quality:correctness"), T0)
    out = evaluate(exp, {"a": judged(list(rng.random(3000) < 0.7)), "b": judged(list(rng.random(3000) < 0.8))}, T0)
    assert out.experiment.winner == "b" and out.comparisons[0].better
    assert out.arms[1].value is not None and abs(out.arms[1].value - 0.8) < 0.03
    guarded = Experiment.start(spec(guardrails=[{"metric": "quality:correctness", "below": 0.5}]), T0)
    low = evaluate(guarded, {"a": judged([1.0] * 200), "b": judged([0.0] * 150 + [1.0] * 50)}, T0)
    assert low.experiment.arm("b").stopped.startswith("guardrail: quality:correctness is below 0.5")
    for wrong in ({"metric": "quality:correctness", "above": 0.5}, {"metric": "failure_rate", "below": 0.5}):
        with pytest.raises(ValidationError, match="guardrail takes"):
            spec(guardrails=[wrong])


def test_quality_a_a_experiments_looked_at_every_10_s_declare_a_winner_at_most_alpha_of_the_time():
    """Both arms' answers score 0.8 on average; 5 calls/s split 50/50, feedback on 30 % of them, looked
    at every 10 s for 2 hours (the leader's cadence): 300 seeded runs, spread over the machine's cores."""
    from worker.routing_eval.aa import Setup, false_winners

    setup = Setup(metric="quality:correctness", shares=(0.5, 0.5), rate_per_s=5.0, duration_s=2 * 3600)
    rate = false_winners(setup, 300, seed=11, processes=min(2, os.cpu_count() or 1))
    se = (ALPHA * (1 - ALPHA) / rate.runs) ** 0.5
    assert rate.value <= ALPHA + 2 * se, f"{rate} of A/A runs declared a winner"
