"""The join's replacement rule: whatever the batching and the arrival order, the quality sums equal
the sum of the scores that count (the latest per call, name and source), exactly."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.calls.decode import Feedback
from worker.feedback.join import FLOOD, CallFacts, QualityTally, Stored, apply

CALLS = [
    CallFacts("c1", 60, "gpt-4o", "chat", "balanced"),
    CallFacts("c2", 120, "gpt-4o-mini", "chat", "fast", "exp", "b"),
    CallFacts("c3", 120, "gpt-4o", "coding", "balanced"),
]


def vote(i: int, call: str, score: int, at: float, name: str = "thumbs", source: str = "user") -> Feedback:
    return Feedback(f"f{i:04d}", call, None, name, source, score, at)


def test_a_later_vote_replaces_the_earlier_one_and_an_older_one_changes_nothing():
    call = CALLS[0]
    first = apply([(vote(1, "c1", 1_000_000, 10.0), call)], {}, max_updates=10)
    assert first.deltas.by_model[("gpt-4o", "chat", "thumbs")] == QualityTally(1, 1_000_000, 10**12)
    stored = first.stored
    later = apply([(vote(2, "c1", 250_000, 20.0), call), (vote(3, "c1", 0, 15.0), call)], stored, max_updates=10)
    tally = later.deltas.by_model[("gpt-4o", "chat", "thumbs")]
    assert (tally.count, tally.sum_micro, tally.squares) == (0, -750_000, 250_000**2 - 10**12)
    assert (later.applied, later.superseded) == (1, 1)
    assert later.stored[("c1", "thumbs", "user")] == Stored(250_000, 20.0, "f0002", 3)


def test_an_experiment_arm_gets_the_feedback_of_its_calls_and_the_flood_bound_refuses_with_the_reason():
    call = CALLS[1]
    out = apply([(vote(i, "c2", 500_000, float(i)), call) for i in range(4)], {}, max_updates=3)
    assert out.deltas.by_arm == {("exp", "b", "thumbs"): QualityTally(1, 500_000, 250_000_000_000)}
    assert [(f.event_id, reason) for f, reason, _ in out.refused] == [("f0003", FLOOD)]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 60))
def test_any_batching_and_order_sums_to_the_winners_exactly(seed, count):
    rng = random.Random(seed)
    votes = [
        (
            vote(i, (c := rng.choice(CALLS)).event_id, rng.randrange(0, 1_000_001), rng.choice([1.0, 2.0, 3.0, 4.0])),
            c,
        )
        for i in range(count)
    ]
    votes = [(f._replace(source=rng.choice(["user", "eval"])), c) for f, c in votes]
    stored: dict = {}
    totals: dict = {}
    cut = sorted(rng.sample(range(count + 1), k=min(3, count + 1)))
    for start, end in zip([0, *cut], [*cut, count]):
        out = apply(votes[start:end], stored, max_updates=1000)
        stored |= out.stored
        for key, t in out.deltas.by_minute.items():
            acc = totals.setdefault(key, [0, 0, 0])
            acc[0] += t.count
            acc[1] += t.sum_micro
            acc[2] += t.squares
    winners: dict = {}
    for f, c in votes:
        key = (c.event_id, f.name, f.source)
        if key not in winners or (f.occurred_at, f.event_id) > (winners[key][0].occurred_at, winners[key][0].event_id):
            winners[key] = (f, c)
    want: dict = {}
    for f, c in winners.values():
        acc = want.setdefault((c.minute, c.model_id, c.task_type, c.layer, f.name), [0, 0, 0])
        acc[0] += 1
        acc[1] += f.score_micro
        acc[2] += f.score_micro**2
    assert {k: v for k, v in totals.items() if v != [0, 0, 0]} == want
