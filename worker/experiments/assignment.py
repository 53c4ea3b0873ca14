"""Which arm of an experiment a request belongs to: a pure function of the experiment and the request.

Every router (Python, TypeScript, several pods) must put the same request in the same arm without
talking to each other, so the arm comes from a hash: the first 8 bytes of
SHA-256(experiment_id + "\\n" + unit), read as a big-endian integer and divided by 2**64, is a
uniform point in [0, 1); the arms own consecutive ranges of it in the order they are defined,
each as wide as its share. `unit` is the request id, or a session key when one session should see
one arm. SHA-256 is in every standard library, so no client needs a dependency for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def point(experiment_id: str, unit: str) -> float:
    digest = hashlib.sha256(f"{experiment_id}\n{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def arm_of(experiment_id: str, unit: str, shares: Sequence[tuple[str, float]]) -> str:
    """The arm whose range holds the unit's point. Shares need not sum to 1: they are normalised."""
    total = sum(share for _, share in shares)
    if not shares or total <= 0:
        raise ValueError("an experiment needs at least one arm with a positive share")
    at, edge = point(experiment_id, unit) * total, 0.0
    for name, share in shares:
        edge += share
        if at < edge:
            return name
    return shares[-1][0]  # float rounding at the very top of the range
