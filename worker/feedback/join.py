"""Feedback joined to its call -> what it changes in the quality aggregates.

A later feedback (by `occurred_at`, then `event_id`) for the same call, name and source replaces
the earlier one: the count stays, the sums move by the difference. Scores travel as integers in
millionths, so a replacement undoes the old score exactly, whatever order the pods see them in:
the stored winner is the latest, and the aggregates always equal the sum of the winners.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from worker.calls.decode import Feedback

FeedbackKey = tuple[str, str, str]  # call event id, name, source
ModelQualityKey = tuple[str, str, str]  # model_id, task_type, name
MinuteQualityKey = tuple[int, str, str, str, str]  # minute of the call, model_id, task_type, layer, name
ArmQualityKey = tuple[str, str, str]  # experiment_id, arm, name

FLOOD = "feedback_flood"


class CallFacts(NamedTuple):
    """What the join keeps of a call for FEEDBACK_WINDOW_S: where its feedback counts."""

    event_id: str
    minute: int  # epoch seconds at the start of the call's minute
    model_id: str
    task_type: str
    layer: str
    experiment_id: str | None = None
    arm: str | None = None
    routing_rule_id: str | None = None


class Stored(NamedTuple):
    """The score that counts now for one call, name and source."""

    score_micro: int
    occurred_at: float
    event_id: str
    updates: int  # feedback received for this key, the superseded included: the flood bound


@dataclass(slots=True)
class QualityTally:
    count: int = 0
    sum_micro: int = 0
    squares: int = 0  # sum of squared scores, in millionths squared

    def move(self, old: int | None, new: int) -> None:
        if old is None:
            self.count += 1
            self.sum_micro += new
            self.squares += new * new
        else:
            self.sum_micro += new - old
            self.squares += new * new - old * old

    @property
    def empty(self) -> bool:
        return self.count == 0 and self.sum_micro == 0 and self.squares == 0


@dataclass(slots=True)
class QualityDeltas:
    by_model: dict[ModelQualityKey, QualityTally] = field(default_factory=dict)
    by_minute: dict[MinuteQualityKey, QualityTally] = field(default_factory=dict)
    by_arm: dict[ArmQualityKey, QualityTally] = field(default_factory=dict)

    def move(self, call: CallFacts, name: str, old: int | None, new: int) -> None:
        keys: list[tuple[dict, tuple]] = [
            (self.by_model, (call.model_id, call.task_type, name)),
            (self.by_minute, (call.minute, call.model_id, call.task_type, call.layer, name)),
        ]
        if call.experiment_id is not None and call.arm is not None:
            keys.append((self.by_arm, (call.experiment_id, call.arm, name)))
        for table, key in keys:
            tally = table.get(key)
            if tally is None:
                tally = table[key] = QualityTally()
            tally.move(old, new)


@dataclass(slots=True)
class Applied:
    stored: dict[FeedbackKey, Stored]  # the keys this batch touched, as they now stand
    deltas: QualityDeltas
    applied: int = 0  # feedback that set or replaced a score
    superseded: int = 0  # feedback older than the score that counts: kept out, changes nothing
    refused: list[tuple[Feedback, str, str]] = field(default_factory=list)  # (feedback, reason, detail)


def key_of(feedback: Feedback, call: CallFacts) -> FeedbackKey:
    return (call.event_id, feedback.name, feedback.source)


def apply(
    joined: Iterable[tuple[Feedback, CallFacts]], stored: Mapping[FeedbackKey, Stored], max_updates: int
) -> Applied:
    """The new state of every key `joined` touches, and the deltas that take the aggregates there.

    `joined` is in arrival order: the flood bound counts in that order (a key that has received
    `max_updates` feedback refuses more: one call cannot be voted on without end), so what it refuses
    does not depend on how arrivals were batched; which score counts depends on `occurred_at` only."""
    now = dict(stored)
    out = Applied(stored={}, deltas=QualityDeltas())
    for feedback, call in joined:
        key = key_of(feedback, call)
        current = now.get(key)
        if current is not None and current.updates >= max_updates:
            out.refused.append(
                (feedback, FLOOD, f"{max_updates} feedback already received for this call, name and source")
            )
            continue
        updates = 1 if current is None else current.updates + 1
        later = current is None or (feedback.occurred_at, feedback.event_id) > (current.occurred_at, current.event_id)
        if later:
            out.deltas.move(call, feedback.name, None if current is None else current.score_micro, feedback.score_micro)
            now[key] = Stored(feedback.score_micro, feedback.occurred_at, feedback.event_id, updates)
            out.applied += 1
        else:
            assert current is not None
            now[key] = current._replace(updates=updates)
            out.superseded += 1
        out.stored[key] = now[key]
    return out
