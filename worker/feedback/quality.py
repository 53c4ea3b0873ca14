"""A quality score's estimate with its 95 % interval, from the exact sums the flush keeps.

The interval is Wilson's score interval (worker/routing/scoring.py) on the mean score: right for
0/1 scores (thumbs, correctness) even with a handful of feedback and near 0 or 1, where the normal
interval covered as little as 41 % (10 feedback at 95 % good); for graded scores it takes their
variance at its largest, so it is wider than needed. Measured over seeded draws
(tests/unit/feedback/test_quality.py): 0/1 scores 90-98 % coverage from 2 to 1,000 feedback,
graded scores 99-100 %. Assumptions, stated wherever it is shown: the feedback is a fair sample of
the calls, and the scores of different calls are independent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from worker.routing.scoring import wilson_lower_bound, wilson_upper_bound


@dataclass(frozen=True)
class QualityScore:
    name: str
    feedback: int
    mean: float
    low: float
    high: float


def estimate(name: str, count: int, total: float) -> QualityScore:
    """`total`: the sum of the `count` scores that count."""
    if count <= 0:
        return QualityScore(name, 0, 0.0, 0.0, 1.0)
    return QualityScore(name, count, total / count, wilson_lower_bound(total, count), wilson_upper_bound(total, count))


def windowed(rows: Iterable[tuple[str, str, str, int, float]], limit: int) -> list[tuple[str, str, QualityScore]]:
    """(model, task type, estimate) of the `limit` most judged (model, task type, name) in `rows` of
    (model, task type, name, count, sum)."""
    sums: dict[tuple[str, str, str], list[float]] = {}
    for model, task, name, count, total in rows:
        acc = sums.setdefault((model, task, name), [0, 0.0])
        acc[0] += count
        acc[1] += total
    top = sorted(sums.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
    return [(m, t, estimate(n, int(c), s)) for (m, t, n), (c, s) in top]
