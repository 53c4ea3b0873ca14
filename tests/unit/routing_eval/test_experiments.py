"""Experiments in the closed loop: the router obeys the record, the leader's evaluation ends it."""

import dataclasses

from worker.routing_eval.experiments import SCENARIOS, run, summarise

BY_NAME = {s.name: s for s in SCENARIOS}


def test_the_better_fixed_model_wins_and_only_tagged_calls_count():
    t = run(BY_NAME["ab-success"], seed=1)
    assert t.final is not None and t.final.status == "completed" and t.final.winner == "fixed"
    assert t.ended_at_min is not None and t.ended_at_min < 60
    assert abs(t.calls["learned"][-1] - t.calls["fixed"][-1]) < 0.1 * t.calls["fixed"][-1]  # the 50/50 split


def test_a_guardrail_stops_the_broken_arm_within_a_few_hundred_calls_and_the_experiment_goes_on():
    t = run(BY_NAME["guardrail"], seed=2)
    assert t.final is not None and t.final.arm("broken").stopped and t.final.winner == "fixed"
    assert t.stopped_after["broken"] < 300
    broken = t.calls["broken"]
    # once the router has the new record the arm gets no more calls
    assert broken[-1] - broken[len(broken) // 2] == 0


def test_an_a_a_experiment_declares_no_winner_and_ends_at_its_maximum_duration():
    scenario = dataclasses.replace(BY_NAME["a-a"], spec={**BY_NAME["a-a"].spec, "maxDurationS": 1800}, duration_s=2000)
    timelines = [run(scenario, seed) for seed in (1, 2)]
    summary = summarise(scenario, timelines)
    assert summary.correct == 2 and summary.median_end_min == 30.0
