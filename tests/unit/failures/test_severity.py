"""Severity rules, as documented in worker/failures/severity.py."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.failures.severity import LEVELS, Evidence, assess, failure_share, raised


@pytest.mark.parametrize(
    ("evidence", "level"),
    [
        (Evidence(0.6, 1, 5, True), "critical"),
        (Evidence(0.0, 3, 50, False), "critical"),
        (Evidence(0.25, 1, 5, True), "high"),
        (Evidence(0.0, 3, 5, True), "high"),
        (Evidence(0.0, 1, 50, False), "high"),
        (Evidence(0.06, 1, 1, True), "medium"),
        (Evidence(0.0, 2, 1, True), "medium"),
        (Evidence(0.0, 1, 20, True), "medium"),
        (Evidence(0.0, 1, 1, False), "medium"),
        (Evidence(0.01, 1, 3, True), "low"),
    ],
)
def test_rules(evidence, level):
    assert assess(evidence) == level


def test_small_samples_do_not_count_towards_the_share():
    assert failure_share([(3, 3), (100, 10)]) == 0.1
    assert failure_share([(19, 19)]) == 0.0


@given(st.sampled_from(LEVELS), st.sampled_from(LEVELS))
def test_severity_only_rises(previous, current):
    result = raised(previous, current)
    assert LEVELS.index(result) == max(LEVELS.index(previous), LEVELS.index(current))


@given(st.floats(0, 1), st.integers(1, 10), st.integers(1, 1000), st.booleans(), st.integers(1, 1000))
def test_more_occurrences_never_lower_severity(share, models, occurrences, retryable, more):
    before = assess(Evidence(share, models, occurrences, retryable))
    after = assess(Evidence(share, models, occurrences + more, retryable))
    assert LEVELS.index(after) >= LEVELS.index(before)


def test_a_flush_raises_only_the_patterns_whose_evidence_grew():
    from worker.failures.severity import MergedPattern, raised_levels

    merged = {
        "a": MergedPattern(occurrences=60, models=3, retryable_occurrences=0, severity="medium"),
        "b": MergedPattern(occurrences=2, models=1, retryable_occurrences=2, severity="high"),  # never lowered
        "c": MergedPattern(occurrences=2, models=1, retryable_occurrences=2, severity="low"),
    }
    shares = {("m", "chat"): (100, 30)}  # a 30 % failure share with enough calls: high
    pairs = {"a": {("m", "chat")}, "b": {("m", "chat")}, "c": {("x", "chat")}}
    assert sorted(raised_levels(pairs, merged, shares)) == [("a", "critical")]
