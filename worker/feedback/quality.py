"""A quality score's estimate with its 95 % interval, from the exact sums the flush keeps.

The interval is the normal one for a mean, from the sample variance of the scores (scores lie in
[0, 1], so the ends are clipped there); with fewer than two feedback it is the whole [0, 1]: one vote
says little. Assumptions, stated wherever it is shown: the feedback is a fair sample of the calls,
and the scores of different calls are independent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class QualityScore:
    name: str
    feedback: int
    mean: float
    low: float
    high: float


def estimate(name: str, count: int, total: float, squares: float) -> QualityScore:
    if count <= 0:
        return QualityScore(name, 0, 0.0, 0.0, 1.0)
    mean = total / count
    if count < 2:
        return QualityScore(name, count, mean, 0.0, 1.0)
    variance = max(0.0, (squares - count * mean * mean) / (count - 1))
    margin = Z_95 * math.sqrt(variance / count)
    return QualityScore(name, count, mean, max(0.0, mean - margin), min(1.0, mean + margin))


def windowed(rows: Iterable[tuple[str, str, str, int, float]], limit: int) -> list[tuple[str, str, QualityScore]]:
    """(model, task type, estimate) of the `limit` most judged (model, task type, name) in `rows` of
    (model, task type, name, count, sum). Only sums are read back per minute, so the variance is taken
    at its largest (sum of squares = sum): exact for 0/1 scores, a wider interval otherwise."""
    sums: dict[tuple[str, str, str], list[float]] = {}
    for model, task, name, count, total in rows:
        acc = sums.setdefault((model, task, name), [0, 0.0])
        acc[0] += count
        acc[1] += total
    top = sorted(sums.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
    return [(m, t, estimate(n, int(c), s, s)) for (m, t, n), (c, s) in top]
