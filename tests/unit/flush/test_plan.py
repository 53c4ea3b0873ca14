"""The flush plan decides what a flush writes; the store only runs it."""

import orjson

from tests import samples
from worker.calls.commands import Metric
from worker.calls.decode import Call, decode
from worker.calls.events import EventKind
from worker.flush import plan as flush_plan
from worker.flush.deltas import HEALTH_RECENT_S
from worker.flush.rows import arm_rows

NOW = 1_790_000_000.0


def call(event_id: str, at: float = NOW - 1, ok: bool = True, model: str = "m") -> Call:
    return Call(event_id, at, model, "chat", "fast", ok, 100.0, 0.01, 10, 5)


def test_only_recent_calls_get_health_buckets_but_every_call_is_counted():
    old = [call(f"old-{i}", at=NOW - HEALTH_RECENT_S - 3600 - i) for i in range(120)]
    recent = [call(f"new-{i}", at=NOW - i % 3, ok=i % 2 == 0) for i in range(10)]
    plan = flush_plan.plan(old + recent, NOW)
    calls, successes = plan.model_rows[2], plan.model_rows[3]
    assert calls == [130] and successes == [120 + 5]
    assert sum(plan.health_rows[4]) == 10  # health: the recent calls only, by second
    assert sorted(set(plan.health_rows[0])) == [NOW - 2, NOW - 1, NOW]
    assert sum(plan.minute_rows[4]) == 130  # the old hour's calls at minute keys: 2 minutes + the recent one(s)
    assert len(plan.minute_rows[0]) == len({int(c.occurred_at // 60) for c in old + recent})


def test_re_sent_events_are_planned_again_without_them():
    items = [call("a"), call("b", ok=False), call("a"), Metric("c", "x", 1.0, "u", None, NOW)]
    plan = flush_plan.plan(items, NOW)
    assert plan.counted == 4 and plan.consumed == 4
    fresh = plan.fresh({"a", "c"})  # "b" was seen before; "a" is twice in the batch
    assert [i.event_id for i in fresh.items] == ["a", "c"]
    assert fresh.consumed == 4 and fresh.counted == 2
    assert fresh.model_rows[2] == [1] and not fresh.patterns and len(fresh.metrics) == 1
    series = dict(zip(fresh.series_rows(dead_letters=3, group="g")[0], fresh.series_rows(3, "g")[1], strict=True))
    assert series["events_consumed"] == 4.0 and series["events_duplicate"] == 2.0
    assert series["events_dead_lettered"] == 3.0


def test_failures_become_pattern_deltas_and_per_model_counts():
    (failed,), _ = decode(orjson.dumps(samples.failed(model_id="x")), EventKind.failed)
    plan = flush_plan.plan([failed, failed._replace(event_id="d"), call("b", model="x"), call("c", model="y")], NOW)
    assert plan.per_model == {"x": (3, 1), "y": (1, 1)}
    assert [d.occurrences for d in plan.patterns.values()] == [2]


def test_tagged_calls_add_to_their_running_arm_once_and_other_tags_only_to_the_aggregates():
    def tagged(event_id: str, arm: str, ok: bool = True, experiment: str = "exp-1") -> Call:
        return call(event_id, ok=ok)._replace(experiment_id=experiment, arm=arm)

    items = [tagged("a", "x"), tagged("b", "x", ok=False), tagged("a", "x"), tagged("c", "y"), tagged("d", "z")]
    items += [tagged("e", "x", experiment="finished"), call("f")]
    plan = flush_plan.plan(items, NOW)
    fresh = plan.fresh({"a", "b", "c", "d", "e", "f"})  # "a" is twice in the batch
    assert fresh.experiment_ids == ["exp-1", "finished"]
    rows, ignored = arm_rows(fresh.deltas, {"exp-1": frozenset({"x", "y"})})
    experiment_ids, arms, calls, successes = rows[:4]
    assert list(zip(experiment_ids, arms, calls, successes, strict=True)) == [
        ("exp-1", "x", 2, 1),
        ("exp-1", "y", 1, 1),
    ]
    assert ignored == 2  # arm z is not the experiment's, and "finished" is not running
    assert fresh.model_rows[2] == [6]  # every call still counts in the aggregates
    assert orjson.loads(rows[8][0]) and rows[4][0] == 0.02  # the latency histogram and the cost sum
