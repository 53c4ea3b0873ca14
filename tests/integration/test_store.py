"""The PostgreSQL side on a real server: migrations under concurrency, the offset fence, dedupe,
and the SQL histogram functions agreeing with the Python ones."""

import asyncio
import datetime as dt
import random
import uuid

import asyncpg
import orjson
import pytest

from worker.calls import histogram
from worker.calls.decode import Call
from worker.flush import plan as flush_plan
from worker.store.flush import OffsetFenced, write_flush
from worker.store.migrate import migrate, migration_files
from worker.store.offsets import UNSTORED, prune_seen, stored_offsets

GROUP = "g"
TP = ("calls", 0)


def call(event_id=None, model="m", ok=True, latency=100.0, at=1_790_000_000.0):
    return Call(event_id or str(uuid.uuid4()), at, model, "coding", "fast", ok, latency, 0.5, 10, 2)


async def flush(conn, calls, expected, next_offset, dead_letters=0):
    return await write_flush(
        conn,
        flush_plan.plan(calls, now=1_790_000_000.0),
        group=GROUP,
        expected={TP: expected},
        next_offsets={TP: next_offset},
        dead_letters=dead_letters,
    )


@pytest.fixture
async def migrated(pool):
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool


async def test_pods_migrating_at_once_apply_each_migration_exactly_once(database):
    conns = [await asyncpg.connect(database) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        versions = [v for v, _ in migration_files()]
        assert sorted(v for applied in results for v in applied) == versions
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(versions)
        assert await migrate(conns[0]) == []
    finally:
        for c in conns:
            await c.close()


async def test_sql_quantiles_equal_python_quantiles(migrated):
    rng = random.Random(11)
    for _ in range(20):
        values = [rng.lognormvariate(6, 1.2) for _ in range(rng.randrange(1, 400))] + [0.0] * rng.randrange(3)
        left, right = histogram.from_values(values[::2]), histogram.from_values(values[1::2])
        as_json = lambda h: orjson.dumps(histogram.to_json_keys(h)).decode()
        for q in (0.0, 0.5, 0.95, 0.99, 1.0):
            sql = await migrated.fetchval(
                "SELECT hist_quantile(hist_merge($1::jsonb, $2::jsonb), $3)", as_json(left), as_json(right), q
            )
            expected = histogram.quantile(histogram.from_values(values), q)
            assert sql == pytest.approx(expected, rel=1e-12, abs=1e-12)


async def test_a_flush_from_a_stale_owner_is_fenced_and_changes_nothing(migrated):
    async with migrated.acquire() as conn:
        assert await stored_offsets(conn, GROUP, [TP]) == {TP: UNSTORED}
        await flush(conn, [call(), call()], expected=UNSTORED, next_offset=2)
        with pytest.raises(OffsetFenced):
            await flush(conn, [call()], expected=UNSTORED, next_offset=3)  # believes nothing was stored
        assert await conn.fetchval("SELECT total_calls FROM model_performance") == 2
        assert await stored_offsets(conn, GROUP, [TP]) == {TP: 2}
        await flush(conn, [call()], expected=2, next_offset=3)
        assert await conn.fetchval("SELECT total_calls FROM model_performance") == 3


async def test_two_owners_racing_on_one_partition_count_once(migrated):
    async with migrated.acquire() as conn:
        await stored_offsets(conn, GROUP, [TP])
    batch = [call() for _ in range(50)]

    async def owner():
        async with migrated.acquire() as conn:
            try:
                await flush(conn, batch, expected=UNSTORED, next_offset=50)
                return "written"
            except OffsetFenced:
                return "fenced"

    outcomes = await asyncio.gather(*(owner() for _ in range(4)))
    assert sorted(outcomes) == ["fenced"] * 3 + ["written"]
    assert await migrated.fetchval("SELECT total_calls FROM model_performance") == 50


async def test_resent_events_count_once_within_and_across_flushes(migrated):
    same = str(uuid.uuid4())
    async with migrated.acquire() as conn:
        await stored_offsets(conn, GROUP, [TP])
        first = await flush(conn, [call(same), call(same), call()], expected=UNSTORED, next_offset=3)
        second = await flush(conn, [call(same)], expected=3, next_offset=4)
    assert (first.counted, first.duplicates, second.counted, second.duplicates) == (2, 1, 0, 1)
    assert await migrated.fetchval("SELECT total_calls FROM model_performance") == 2
    dup = await migrated.fetchval(
        "SELECT sum(metric_value) FROM performance_metrics WHERE metric_name='events_duplicate'"
    )
    assert dup == 2


async def test_rows_derive_rates_averages_and_percentiles(migrated):
    latencies = [100.0, 200.0, 300.0, 400.0]
    calls = [call(latency=v, ok=i != 0) for i, v in enumerate(latencies)]
    async with migrated.acquire() as conn:
        await stored_offsets(conn, GROUP, [TP])
        await flush(conn, calls[:2], expected=UNSTORED, next_offset=2)
        await flush(conn, calls[2:], expected=2, next_offset=4, dead_letters=3)
    row = await migrated.fetchrow("SELECT * FROM model_performance_latency")  # the table, plus percentiles
    assert (row["total_calls"], row["success_count"], row["failure_count"]) == (4, 3, 1)
    assert row["success_rate"] == pytest.approx(75.0)
    assert row["avg_latency_ms"] == pytest.approx(250.0)
    assert row["avg_cost"] == pytest.approx(0.5)
    assert row["latency_p50_ms"] == pytest.approx(histogram.quantile(histogram.from_values(latencies), 0.5))
    p99 = await migrated.fetchval(
        "SELECT metric_value FROM performance_metrics WHERE metric_name='latency_p99_ms' AND series_key='layer=all'"
    )
    assert p99 == pytest.approx(histogram.quantile(histogram.from_values(latencies), 0.99))
    assert (
        await migrated.fetchval(
            "SELECT sum(metric_value) FROM performance_metrics WHERE metric_name='events_dead_lettered'"
        )
        == 3
    )


async def test_one_row_per_event_kept_for_the_dedupe_window_and_a_call_for_the_feedback_window(migrated):
    import time

    from worker.calls.commands import Metric
    from worker.store.feedback import FeedbackLimits

    now = time.time()
    recent = call(at=now - 60)._replace(request_id='req "ü\\ 1', route_probability=0.123456789012345, arm="b")
    old = call(at=now - 10 * 86_400)
    metric = Metric(str(uuid.uuid4()), "queue_depth", 3.0, "requests", {}, now)
    async with migrated.acquire() as conn:
        await stored_offsets(conn, GROUP, [TP])
        await write_flush(
            conn,
            flush_plan.plan([recent, old, metric], now=now),
            group=GROUP,
            expected={TP: UNSTORED},
            next_offsets={TP: 3},
            dead_letters=0,
            feedback=FeedbackLimits(window_s=7 * 86_400),
            dedupe_window_s=3600,
        )
    kept = {
        str(r["event_id"]): r["days"]
        for r in await migrated.fetch(
            "SELECT event_id, extract(epoch FROM keep_until - now())::float8 / 86400 AS days FROM seen_events"
        )
    }
    # the recent call: 7 days after it occurred; the old call and the metric: the dedupe window
    assert kept[recent.event_id] == pytest.approx(7 - 60 / 86_400, abs=1e-3)
    assert kept[old.event_id] == pytest.approx(kept[metric.event_id], abs=1e-3) == pytest.approx(1 / 24, abs=1e-3)
    joinable = {str(r[0]) for r in await migrated.fetch("SELECT event_id FROM call_index")}
    assert joinable == {recent.event_id, old.event_id}  # calls only: the metric is deduped, not joinable
    row = await migrated.fetchrow(
        "SELECT request_id, route_probability, arm, experiment_id, ok, layer, "
        "extract(epoch FROM minute)::float8 AS minute FROM call_index WHERE event_id = $1",
        uuid.UUID(recent.event_id),
    )  # the values as the flush had them: strings, floats and nulls through the jsonb rows
    assert (row["request_id"], row["route_probability"], row["arm"], row["experiment_id"], row["ok"]) == (
        recent.request_id, recent.route_probability, "b", None, True,
    )  # fmt: skip
    assert (row["layer"], row["minute"]) == ("fast", float(int(recent.occurred_at // 60) * 60))
    await migrated.execute("UPDATE seen_events SET keep_until = keep_until - interval '2 hours'")  # time passes
    async with migrated.acquire() as conn:
        assert await prune_seen(conn) == 2
    assert [str(r[0]) for r in await migrated.fetch("SELECT event_id FROM seen_events")] == [recent.event_id]


async def test_pods_adding_to_the_same_minutes_at_once_give_the_exact_totals_and_percentiles(migrated):
    """Minute rows and percentile rows are locked, merged by the worker and set: concurrent flushes
    of other partitions into the same minutes must neither lose a histogram nor deadlock."""
    rng = random.Random(5)
    parts = [("calls", p) for p in range(4)]
    batches = [
        [call(latency=rng.lognormvariate(6, 1), at=1_790_000_000.0 + i % 120) for i in range(300)] for _ in parts
    ]
    async with migrated.acquire() as conn:
        await stored_offsets(conn, GROUP, parts)

    async def pod(part, calls, expected, next_offset):
        async with migrated.acquire() as conn:
            await write_flush(
                conn,
                flush_plan.plan(calls, now=1_790_000_000.0),
                group=GROUP,
                expected={part: expected},
                next_offsets={part: next_offset},
                dead_letters=0,
            )

    # two rounds: the first mostly creates the rows (racing to insert), the second adds to stored ones
    await asyncio.gather(*(pod(part, calls[:150], UNSTORED, 150) for part, calls in zip(parts, batches, strict=True)))
    await asyncio.gather(*(pod(part, calls[150:], 150, 300) for part, calls in zip(parts, batches, strict=True)))
    everything = [c for calls in batches for c in calls]
    for minute in (1_790_000_000 // 60 * 60, 1_790_000_000 // 60 * 60 + 60):
        in_minute = [c.latency_ms for c in everything if c.occurred_at // 60 * 60 == minute]
        if not in_minute:
            continue
        row = await migrated.fetchrow(
            "SELECT total_calls, hist_quantile(latency_histogram, 0.5) AS p50 FROM model_performance_minutes "
            "WHERE minute = to_timestamp($1)",
            float(minute),
        )  # the minute rows: merged by the worker where stored, upserted where new, by four pods at once
        assert row["total_calls"] == len(in_minute)
        assert row["p50"] == pytest.approx(histogram.quantile(histogram.from_values(in_minute), 0.5))
        for name, q in (("latency_p50_ms", 0.5), ("latency_p99_ms", 0.99)):
            value = await migrated.fetchval(
                "SELECT metric_value FROM performance_metrics WHERE metric_name = $1 AND series_key = 'layer=all' "
                "AND recorded_at = to_timestamp($2)",
                name,
                float(minute),
            )
            assert value == pytest.approx(histogram.quantile(histogram.from_values(in_minute), q))


async def test_a_pattern_becoming_critical_is_counted_once(migrated):
    """What the TelemetryCriticalBugPattern alert reads: a flush reports the patterns it made critical
    (here: every call of a model and task type failing the same way, a share of 100 %), and a later
    flush of the same failures, the pattern already critical, reports none."""
    from tests import samples
    from worker.calls.decode import to_call
    from worker.calls.events import CallFailed

    def failures(n: int) -> list[Call]:
        now = dt.datetime.now(dt.UTC).isoformat()  # the share is read over the recent window
        return [
            to_call(
                CallFailed.model_validate(samples.failed(event_id=str(uuid.uuid4()), model_id="m1", occurred_at=now))
            )
            for _ in range(n)
        ]

    async with migrated.acquire() as conn:
        await stored_offsets(conn, GROUP, [TP])
        first = await flush(conn, failures(30), UNSTORED, 30)
        again = await flush(conn, failures(30), 30, 60)
        severity = await conn.fetchval("SELECT severity FROM bug_patterns")
    assert (first.new_patterns, first.critical_patterns, severity) == (1, 1, "critical")
    assert (again.new_patterns, again.critical_patterns) == (0, 0)
