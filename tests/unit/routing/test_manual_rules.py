"""Manual rule patterns: RE2 only, with clear errors for what it refuses."""

import pytest

from worker.routing.manual_rules import MAX_PATTERN_LENGTH, InvalidPattern, compile_pattern, matches


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"(a)\1", "invalid escape sequence"),  # backreference
        (r"(?=x)a", "invalid perl operator"),  # lookahead
        (r"((a{100}){100}){100}", "invalid repetition size"),  # would need huge memory
        ("(", "missing )"),
        ("", "empty"),
        ("a" * (MAX_PATTERN_LENGTH + 1), f"at most {MAX_PATTERN_LENGTH}"),
    ],
)
def test_patterns_re2_cannot_run_safely_are_rejected_with_the_reason(pattern, says):
    with pytest.raises(InvalidPattern) as caught:
        compile_pattern(pattern)
    assert says in str(caught.value)


def test_a_classic_catastrophic_backtracking_pattern_is_harmless_under_re2():
    # With a backtracking engine, (a+)+$ against "aaaa...!" takes exponential time; RE2 is linear.
    assert matches(r"(a+)+$", "a" * 100_000 + "!") is False
    assert matches(r".*implement.*algorithm.*", "please implement a sorting algorithm") is True
