"""Counterfactual savings, checked by hand on a small fixture."""

import pytest

from worker.costs.projection import HOUR, hourly, project
from worker.costs.savings import Usage, counterfactual

USAGE = [
    # coding: 100 calls, $0.50, 80 successes in all
    Usage("coding", "cheap", 60, 42, 0.06),  # $0.001 per call, 70 % success
    Usage("coding", "dear", 40, 38, 0.44),  # $0.011 per call, 95 % success
    # chat: no rule, counted as it was
    Usage("chat", "cheap", 10, 9, 0.01),
]
RULES = {
    "coding": {
        "heuristic_id": "learned:coding",
        "version": 4,
        "weights": {"dear": 0.75, "new": 0.25, "gone": 0.5},
        "excluded": {"gone": "degraded"},
        "evidence": {"new": {"avg_cost_usd": 0.003, "success_rate": 0.9}},
    }
}


def test_the_savings_figure_matches_the_hand_computation():
    s = counterfactual(USAGE, RULES)
    coding, chat = s.tasks[1], s.tasks[0]
    # the rule: 75 % dear ($0.011, 95 %) and 25 % new (priced from its evidence: $0.003, 90 %); gone is excluded
    assert coding.rule == "learned:coding@v4"
    assert coding.counterfactual_cost_usd == pytest.approx(100 * (0.75 * 0.011 + 0.25 * 0.003))  # $0.90
    assert coding.counterfactual_success_rate == pytest.approx(0.75 * 0.95 + 0.25 * 0.9)  # 93.75 %
    assert coding.actual_cost_usd == pytest.approx(0.50) and coding.actual_success_rate == pytest.approx(0.80)
    assert chat.rule is None and chat.counterfactual_cost_usd == chat.actual_cost_usd == pytest.approx(0.01)
    assert s.calls == 110 and s.actual_cost_usd == pytest.approx(0.51)
    assert s.counterfactual_cost_usd == pytest.approx(0.91) and s.saved_usd == pytest.approx(-0.40)
    assert s.counterfactual_success_rate == pytest.approx((100 * 0.9375 + 10 * 0.9) / 110)


def test_a_rule_that_names_no_priced_model_counts_the_calls_as_they_were():
    s = counterfactual(USAGE[:2], {"coding": {"heuristic_id": "learned:coding", "version": 1, "weights": {"x": 1.0}}})
    assert s.saved_usd == 0 and s.tasks[0].rule is None


def test_hours_without_calls_are_zeros_from_the_first_hour_with_calls():
    h0 = 1_790_000_000 // HOUR * HOUR
    series = hourly([(h0 + 2 * HOUR, 1.5), (h0, 1.0)], until_hour=h0 + 4 * HOUR)
    assert series == [1.0, 0.0, 1.5, 0.0]
    assert hourly([], h0) == []
    short = project("m", "t", series)
    assert short.next_day is None and short.last_day_usd == 2.5 and short.history_hours == 4
