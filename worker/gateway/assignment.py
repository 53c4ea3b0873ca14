"""Which arm of an experiment a request belongs to: a pure function of the experiment and the request.

Every router (Python, TypeScript, several pods) must put the same request in the same arm without
talking to each other, so the arm comes from the routers' own hash (`hash_unit`, and `hashUnit` in
the TypeScript client) of experiment_id + "\\n" + unit: a uniform point in [0, 1); the arms own
consecutive ranges of it in the order they are defined, each as wide as its share. `unit` is the
request id, or a session key when one session should see one arm.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.routing.draw import hash_unit


def point(experiment_id: str, unit: str) -> float:
    return hash_unit(f"{experiment_id}\n{unit}")


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
