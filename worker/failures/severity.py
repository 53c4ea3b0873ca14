"""Severity of a bug pattern, from evidence; it can rise as a pattern grows, never falls by itself.

Evidence:
- share: the highest failure share (all error types) among the model x task type pairs the pattern
  touched, over the recent window, counting only pairs with at least MIN_CALLS calls;
- models: how many distinct models the pattern has hit;
- occurrences: how many times it has been seen;
- retryable: whether most occurrences were marked retryable by the gateway.

Rules, first match wins:
- critical: share >= 50 %, or a non-retryable pattern on >= 3 models with >= 50 occurrences;
- high:     share >= 20 %, or >= 3 models, or non-retryable with >= 50 occurrences;
- medium:   share >= 5 %, or >= 2 models, or >= 20 occurrences, or non-retryable;
- low:      otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

LEVELS = ("low", "medium", "high", "critical")
MIN_CALLS = 20


class Evidence(NamedTuple):
    share: float
    models: int
    occurrences: int
    retryable: bool


def assess(e: Evidence) -> str:
    if e.share >= 0.5 or (not e.retryable and e.models >= 3 and e.occurrences >= 50):
        return "critical"
    if e.share >= 0.2 or e.models >= 3 or (not e.retryable and e.occurrences >= 50):
        return "high"
    if e.share >= 0.05 or e.models >= 2 or e.occurrences >= 20 or not e.retryable:
        return "medium"
    return "low"


def failure_share(pairs: list[tuple[int, int]]) -> float:
    """Highest failures/calls among (calls, failures) pairs with enough calls to mean something."""
    shares = [failures / calls for calls, failures in pairs if calls >= MIN_CALLS]
    return max(shares, default=0.0)


def raised(previous: str | None, current: str) -> str:
    if previous not in LEVELS:
        return current
    return max(previous, current, key=LEVELS.index)


class MergedPattern(NamedTuple):
    """A pattern's row after the flush added its delta (as the database returns it)."""

    occurrences: int
    models: int  # distinct models it has hit
    retryable_occurrences: int
    severity: str


def raised_levels(
    pairs_of: Mapping[str, Iterable[tuple[str, str]]],
    merged: Mapping[str, MergedPattern],
    shares: Mapping[tuple[str, str], tuple[int, int]],
) -> list[tuple[str, str]]:
    """(fingerprint, new level) for each pattern whose evidence now raises its severity.

    `pairs_of`: the (model, task type) pairs each pattern touched in this flush; `shares`: (calls,
    failures) of those pairs over the recent window."""
    changes = []
    for digest, pairs in pairs_of.items():
        row = merged[digest]
        evidence = Evidence(
            share=failure_share([shares[p] for p in pairs if p in shares]),
            models=row.models,
            occurrences=row.occurrences,
            retryable=2 * row.retryable_occurrences >= row.occurrences,
        )
        level = raised(row.severity, assess(evidence))
        if level != row.severity:
            changes.append((digest, level))
    return changes
