"""Deterministic, uniform assignment of requests to arms."""

from collections import Counter

import pytest

from worker.gateway.assignment import arm_of, point


def test_the_same_request_always_lands_in_the_same_arm_and_the_hash_is_pinned():
    shares = [("control", 0.5), ("treatment", 0.5)]
    assert arm_of("exp-1", "req-42", shares) == arm_of("exp-1", "req-42", shares)
    # pinned: another language's client must compute exactly this point (SHA-256, first 8 bytes, big-endian)
    assert point("exp-1", "req-42") == int("c65fcdff75e446d1", 16) / 2**64


def test_arms_get_their_shares():
    shares = [("a", 0.2), ("b", 0.3), ("c", 0.5)]
    counts = Counter(arm_of("exp-2", f"req-{i}", shares) for i in range(20_000))
    for name, share in shares:
        assert abs(counts[name] / 20_000 - share) < 0.015


def test_experiments_assign_independently():
    """One experiment's split must not predict another's (each hashes its own id in)."""
    shares = [("a", 0.5), ("b", 0.5)]
    pairs = Counter((arm_of("x", f"u{i}", shares), arm_of("y", f"u{i}", shares)) for i in range(8000))
    assert all(abs(n / 8000 - 0.25) < 0.02 for n in pairs.values()) and len(pairs) == 4


def test_an_experiment_without_a_positive_share_is_refused():
    with pytest.raises(ValueError):
        arm_of("x", "u", [("a", 0.0)])
