"""One flush = one transaction that executes a flush plan: fence on the stored offsets, drop re-sent
events, add the deltas (aggregates, series, bug patterns and their stubs), advance the offsets.
Either all of it is visible or none of it is; that is the exactly-once effect. What to add is
decided by the pure plan (worker/flush/plan.py); this module only runs the statements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
import orjson

from worker.calls import histogram
from worker.calls.batch import PartitionKey
from worker.calls.decode import Item
from worker.flush import plan as flush_plan
from worker.flush import rows
from worker.flush.plan import FlushPlan
from worker.flush.rows import PERCENTILES
from worker.store.bug_patterns import write_patterns
from worker.store.commands import write_commands
from worker.store.feedback import FeedbackLimits, FeedbackOutcome, apply_feedback

LOCK_OFFSETS = """
SELECT topic, partition, next_offset FROM consumer_offsets
WHERE consumer_group = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
ORDER BY topic, partition FOR UPDATE"""

ADVANCE_OFFSETS = """
UPDATE consumer_offsets AS c SET next_offset = u.next_offset, updated_at = now()
FROM unnest($2::text[], $3::int[], $4::int8[]) AS u(topic, partition, next_offset)
WHERE c.consumer_group = $1 AND c.topic = u.topic AND c.partition = u.partition"""

# One row per event: its id (the dedupe log) and, for a call, what the feedback join needs. Kept until the
# dedupe window has passed and, for a call, the feedback window after it occurred (see migration 0016).
# The rows come as one jsonb array of arrays (worker/flush/rows.py, seen_json): asyncpg's array
# parameters check every element in Python, which cost the worker about 10 us of CPU per event here,
# against about 1.4 us to serialise the rows with orjson (PostgreSQL's time is the same).
MARK_SEEN = """
INSERT INTO seen_events (event_id, keep_until, request_id, occurred_at, minute, model_id, task_type, layer, ok,
    experiment_id, arm, routing_rule_id, route_probability)
SELECT (r->>0)::uuid,
    greatest(now() + make_interval(secs => $2), to_timestamp((r->>2)::float8) + make_interval(secs => $3)),
    r->>1, to_timestamp((r->>2)::float8), to_timestamp((r->>3)::float8), r->>4, r->>5, r->>6, (r->>7)::bool,
    r->>8, r->>9, r->>10, (r->>11)::float8
FROM jsonb_array_elements($1::jsonb) AS r
ON CONFLICT DO NOTHING RETURNING event_id::text"""

_SUMS_UPDATE = """
    total_calls = t.total_calls + EXCLUDED.total_calls,
    success_count = t.success_count + EXCLUDED.success_count,
    latency_sum_ms = t.latency_sum_ms + EXCLUDED.latency_sum_ms,
    cost_sum_usd = t.cost_sum_usd + EXCLUDED.cost_sum_usd,
    input_tokens = t.input_tokens + EXCLUDED.input_tokens,
    output_tokens = t.output_tokens + EXCLUDED.output_tokens,
    latency_histogram = hist_merge(t.latency_histogram, EXCLUDED.latency_histogram)"""

UPSERT_MODELS = f"""
INSERT INTO model_performance AS t (model_id, task_type, total_calls, success_count, latency_sum_ms,
    cost_sum_usd, input_tokens, output_tokens, latency_histogram, first_seen, last_seen)
SELECT m, k, n, s, l, c, i, o, h, to_timestamp(f), to_timestamp(z)
FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::float8[], $6::float8[], $7::int8[],
            $8::int8[], $9::jsonb[], $10::float8[], $11::float8[]) AS u(m, k, n, s, l, c, i, o, h, f, z)
ON CONFLICT (model_id, task_type) DO UPDATE SET {_SUMS_UPDATE},
    first_seen = least(t.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(t.last_seen, EXCLUDED.last_seen),
    updated_at = now()"""

UPSERT_MINUTES = f"""
INSERT INTO model_performance_minutes AS t (minute, model_id, task_type, layer, total_calls, success_count,
    latency_sum_ms, cost_sum_usd, input_tokens, output_tokens, latency_histogram)
SELECT to_timestamp(w), m, k, y, n, s, l, c, i, o, h
FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::float8[],
            $8::float8[], $9::int8[], $10::int8[], $11::jsonb[]) AS u(w, m, k, y, n, s, l, c, i, o, h)
ON CONFLICT (minute, model_id, task_type, layer) DO UPDATE SET {_SUMS_UPDATE}"""

UPSERT_HEALTH = """
INSERT INTO model_health AS t (bucket, model_id, task_type, layer, total_calls, failure_count, latency_histogram)
SELECT to_timestamp(b), m, k, y, n, f, h
FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::jsonb[])
    AS u(b, m, k, y, n, f, h)
ON CONFLICT (bucket, model_id, task_type, layer) DO UPDATE SET
    total_calls = t.total_calls + EXCLUDED.total_calls,
    failure_count = t.failure_count + EXCLUDED.failure_count,
    latency_histogram = hist_merge(t.latency_histogram, EXCLUDED.latency_histogram)"""

UPSERT_LOGGED = """
INSERT INTO route_propensity_minutes AS t (task_type, minute, model_id, calls, unweighted, weight, weight_sq,
    success_w, success_w_sq, cost_w, cost_w_sq, cost_sq_w_sq)
SELECT k, to_timestamp(w), m, n, u, a, b, c, d, e, f, g
FROM unnest($1::text[], $2::float8[], $3::text[], $4::int8[], $5::int8[], $6::float8[], $7::float8[],
            $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[]) AS x(k, w, m, n, u, a, b, c, d, e, f, g)
ON CONFLICT (task_type, minute, model_id) DO UPDATE SET
    calls = t.calls + EXCLUDED.calls, unweighted = t.unweighted + EXCLUDED.unweighted,
    weight = t.weight + EXCLUDED.weight, weight_sq = t.weight_sq + EXCLUDED.weight_sq,
    success_w = t.success_w + EXCLUDED.success_w, success_w_sq = t.success_w_sq + EXCLUDED.success_w_sq,
    cost_w = t.cost_w + EXCLUDED.cost_w, cost_w_sq = t.cost_w_sq + EXCLUDED.cost_w_sq,
    cost_sq_w_sq = t.cost_sq_w_sq + EXCLUDED.cost_sq_w_sq"""

_SERIES = """
INSERT INTO performance_metrics AS t (metric_name, metric_value, metric_unit, context, recorded_at,
    series_key, histogram, quantile)
SELECT n, v, u, c, to_timestamp(w), k, h, q
FROM unnest($1::text[], $2::float8[], $3::text[], $4::jsonb[], $5::float8[], $6::text[], $7::jsonb[],
            $8::float8[]) AS x(n, v, u, c, w, k, h, q)
ON CONFLICT (metric_name, recorded_at, series_key) WHERE series_key IS NOT NULL DO UPDATE SET """
UPSERT_SERIES = _SERIES + "metric_value = t.metric_value + EXCLUDED.metric_value"

# The latency percentiles: merging jsonb histograms and ranking them in PostgreSQL cost about a
# millisecond per minute and layer, and a backlog touches thousands per flush. So the rows are
# created where missing, locked (in key order, like every upsert here), and set from the merged
# histogram the worker computes: the same exact values, a fraction of the time.
INSERT_LATENCY = _SERIES.replace("DO UPDATE SET ", "DO NOTHING")
LOCK_LATENCY = f"""
SELECT extract(epoch FROM recorded_at)::float8 AS minute, series_key, histogram FROM performance_metrics
WHERE metric_name = '{PERCENTILES[0][0]}' AND series_key IS NOT NULL
  AND (recorded_at, series_key) IN (SELECT to_timestamp(w), k FROM unnest($1::float8[], $2::text[]) AS u(w, k))
ORDER BY recorded_at, series_key FOR UPDATE"""
SET_LATENCY = """
UPDATE performance_metrics AS p SET metric_value = u.v, histogram = coalesce(u.h, p.histogram)
FROM unnest($1::text[], $2::float8[], $3::text[], $4::float8[], $5::jsonb[]) AS u(n, w, k, v, h)
WHERE p.metric_name = u.n AND p.recorded_at = to_timestamp(u.w) AND p.series_key = u.k AND p.series_key IS NOT NULL"""


RUNNING_ARMS = (
    "SELECT experiment_id, arms FROM experiments WHERE status = 'running' AND experiment_id = ANY($1::text[])"
)

UPSERT_ARMS = """
INSERT INTO experiment_arms AS t
    (experiment_id, arm, calls, successes, cost_sum, cost_squares, utility_sum, utility_squares, latency_histogram)
SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::float8[], $6::float8[], $7::float8[],
                     $8::float8[], $9::jsonb[])
ON CONFLICT (experiment_id, arm) DO UPDATE SET
    calls = t.calls + EXCLUDED.calls,
    successes = t.successes + EXCLUDED.successes,
    cost_sum = t.cost_sum + EXCLUDED.cost_sum,
    cost_squares = t.cost_squares + EXCLUDED.cost_squares,
    utility_sum = t.utility_sum + EXCLUDED.utility_sum,
    utility_squares = t.utility_squares + EXCLUDED.utility_squares,
    latency_histogram = hist_merge(t.latency_histogram, EXCLUDED.latency_histogram),
    updated_at = now()"""


class OffsetFenced(RuntimeError):
    """Another consumer stored offsets for these partitions since we read them: our batch is stale."""

    def __init__(self, stale: Mapping[PartitionKey, tuple[int, int | None]]):
        self.stale = dict(stale)
        listed = ", ".join(f"{t}[{p}] expected {e} found {f}" for (t, p), (e, f) in sorted(self.stale.items()))
        super().__init__(f"stored offsets moved under this consumer: {listed}")


@dataclass(frozen=True, slots=True)
class FlushOutcome:
    counted: int
    duplicates: int
    new_patterns: int = 0
    critical_patterns: int = 0  # patterns that became critical: new at that level, or raised to it
    regressed_patterns: int = 0  # resolved patterns whose occurrences came back
    folded_failures: int = 0  # failures of new fingerprints past PATTERNS_MAX_NEW_PER_HOUR, in the overflow pattern
    per_model: dict[str, tuple[int, int]] = field(default_factory=dict)  # model_id -> (calls, successes) written
    arm_calls_ignored: int = 0  # tagged with an experiment arm that is not running (counted everywhere else)
    feedback: FeedbackOutcome = field(default_factory=FeedbackOutcome)


async def write_flush(
    conn: asyncpg.Connection,
    plan: FlushPlan,
    *,
    group: str,
    expected: Mapping[PartitionKey, int],
    next_offsets: Mapping[PartitionKey, int],
    dead_letters: int,
    pattern_window_s: float = 900.0,
    patterns_max_new_per_hour: int = 500,
    feedback: FeedbackLimits = FeedbackLimits(),
    dedupe_window_s: float = 21_600.0,
) -> FlushOutcome:
    """Execute `plan` (worker/flush/plan.py) in one transaction, fenced on `expected`."""
    parts = sorted(next_offsets)
    topics, partitions = [t for t, _ in parts], [p for _, p in parts]
    async with conn.transaction():
        found = {(r[0], r[1]): r[2] for r in await conn.fetch(LOCK_OFFSETS, group, topics, partitions)}
        stale = {tp: (expected.get(tp, -2), found.get(tp)) for tp in parts if found.get(tp) != expected.get(tp)}
        if stale:
            raise OffsetFenced(stale)
        if plan.items:
            windows = (float(dedupe_window_s), float(feedback.window_s))
            fresh_ids = {r[0] for r in await conn.fetch(MARK_SEEN, plan.seen_json, *windows)}
            if len(fresh_ids) < plan.counted:  # re-sent events: count the others (rare, so planned again only then)
                plan = await asyncio.to_thread(plan.fresh, fresh_ids)
        joined = FeedbackOutcome()
        if plan.calls or plan.feedback:
            joined = await apply_feedback(conn, plan.calls, plan.feedback, feedback)
        if plan.metrics or plan.bug_reports:  # tool commands: rare, and only on their topic
            await write_commands(conn, plan.metrics, plan.bug_reports)
        new_patterns = folded = ignored = critical = regressed = 0
        if plan.deltas.by_arm:  # only while experiments run, and only for their tagged calls
            running = {r[0]: frozenset(r[1]) for r in await conn.fetch(RUNNING_ARMS, plan.experiment_ids)}
            arm_rows, ignored = rows.arm_rows(plan.deltas, running)
            if arm_rows[0]:
                await conn.execute(UPSERT_ARMS, *arm_rows)
        if plan.calls:
            await conn.execute(UPSERT_MODELS, *plan.model_rows)
            await conn.execute(UPSERT_MINUTES, *plan.minute_rows)
            if plan.health_rows[0]:
                await conn.execute(UPSERT_HEALTH, *plan.health_rows)
            if plan.logged_rows[0]:
                await conn.execute(UPSERT_LOGGED, *plan.logged_rows)
            if plan.patterns:
                new_patterns, folded, critical, regressed = await write_patterns(
                    conn, plan.patterns, pattern_window_s, patterns_max_new_per_hour
                )
        await conn.execute(UPSERT_SERIES, *plan.series_rows(dead_letters, group))
        if plan.deltas.by_layer_minute:
            await conn.execute(INSERT_LATENCY, *plan.latency_rows)
            stored = {
                (int(r["minute"]), r["series_key"]): histogram.from_json_keys(orjson.loads(r["histogram"] or "{}"))
                for r in await conn.fetch(LOCK_LATENCY, *plan.latency_keys)
            }
            await conn.execute(SET_LATENCY, *rows.latency_updates(plan.deltas, stored))
        await conn.execute(ADVANCE_OFFSETS, group, topics, partitions, [next_offsets[tp] for tp in parts])
    return FlushOutcome(
        counted=plan.counted,
        duplicates=plan.consumed - plan.counted,
        new_patterns=new_patterns,
        critical_patterns=critical,
        regressed_patterns=regressed,
        folded_failures=folded,
        per_model=plan.per_model,
        arm_calls_ignored=ignored,
        feedback=joined,
    )


# Errors that say "these values", not "try again": data exceptions (class 22) and constraint violations (23).
REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


class _DryRun(Exception):
    pass


async def refused_calls(conn: asyncpg.Connection, *, calls: Sequence[Item], now: float, **flush) -> list[Item]:
    """The calls whose write the database refuses with a data error, found by bisection with rolled-back
    trial flushes (only after a real flush failed that way: log2(n) trials per refused call)."""

    async def refused(subset: Sequence[Item]) -> bool:
        try:
            async with conn.transaction():
                await write_flush(conn, flush_plan.plan(subset, now), **flush)
                raise _DryRun
        except _DryRun:
            return False
        except REFUSED:
            return True

    async def bisect(subset: Sequence[Item]) -> list[Item]:
        if not subset or not await refused(subset):
            return []
        if len(subset) == 1:
            return list(subset)
        middle = len(subset) // 2
        return await bisect(subset[:middle]) + await bisect(subset[middle:])

    if await refused([]):
        return []  # the failure does not come from the events
    return await bisect(list(calls))
