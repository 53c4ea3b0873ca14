"""Bug patterns and their regression stubs, written inside the flush transaction.

Three steps, each one statement: add the batch's pattern deltas (RETURNING the merged rows), raise
severities from the evidence, and create one stub for each pattern this statement inserted
(a pattern another pod inserted first is an update here, so its stub is created exactly once).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import asyncpg
import orjson

from worker.failures.patterns import PatternDelta, fold_past_budget, pattern_columns, stub_row
from worker.failures.severity import MergedPattern, raised_levels
from worker.notifications import webhook
from worker.store import notifications

UPSERT = """
INSERT INTO bug_patterns AS t (fingerprint, error_type, category, pattern, description, solution, occurrences,
    severity, first_seen, last_seen, models, layers, retryable_occurrences, example_event_ids, example_request)
SELECT f, e, c, p, d, s, n, 'low', to_timestamp(a), to_timestamp(z), m, l, r, string_to_array(x, ','), q
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::float8[],
            $9::float8[], $10::jsonb[], $11::jsonb[], $12::int8[], $13::text[], $14::jsonb[])
     AS u(f, e, c, p, d, s, n, a, z, m, l, r, x, q)
ON CONFLICT (fingerprint) DO UPDATE SET
    occurrences = t.occurrences + EXCLUDED.occurrences,
    first_seen = least(t.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(t.last_seen, EXCLUDED.last_seen),
    models = hist_merge(t.models, EXCLUDED.models),
    layers = hist_merge(t.layers, EXCLUDED.layers),
    retryable_occurrences = t.retryable_occurrences + EXCLUDED.retryable_occurrences,
    example_event_ids = (t.example_event_ids || EXCLUDED.example_event_ids)[1:5],
    example_request = coalesce(t.example_request, EXCLUDED.example_request),
    solution = CASE WHEN t.solution_source = 'operator' THEN t.solution ELSE EXCLUDED.solution END,
    updated_at = now()
RETURNING fingerprint, occurrences, models, retryable_occurrences, severity, (xmax = 0) AS inserted"""

WINDOW_SHARES = """
SELECT model_id, task_type, sum(total_calls) AS calls, sum(total_calls - success_count) AS failures
FROM model_performance_minutes
WHERE minute >= now() - make_interval(secs => $3)
  AND (model_id, task_type) IN (SELECT * FROM unnest($1::text[], $2::text[]))
GROUP BY model_id, task_type"""

SET_SEVERITY = """
UPDATE bug_patterns AS t SET severity = u.s FROM unnest($1::text[], $2::text[]) AS u(f, s)
WHERE t.fingerprint = u.f AND t.severity <> u.s"""

KNOWN = "SELECT id, fingerprint, status FROM bug_patterns WHERE fingerprint = ANY($1::text[])"

# One lifecycle step for many patterns: only from the states it may leave (resolved <- open or regressed;
# regressed <- resolved); a regression raises the severity one level. The old state is read under the row
# lock, and the transition row is written by the same statement.
TRANSITION = """
WITH old AS (
    SELECT id, status, severity FROM bug_patterns WHERE id = ANY($1::int8[]) AND status = ANY($5::text[]) FOR UPDATE),
changed AS (
    UPDATE bug_patterns b SET status = $2, status_changed_at = now(), status_by = $3, status_reason = $4,
        severity = CASE WHEN $2 <> 'regressed' THEN b.severity WHEN b.severity = 'low' THEN 'medium'
                        WHEN b.severity = 'medium' THEN 'high' ELSE 'critical' END,
        updated_at = now()
    FROM old WHERE b.id = old.id
    RETURNING b.id, old.status AS from_status, old.severity AS from_severity, b.severity, b.fingerprint, b.pattern),
logged AS (
    INSERT INTO bug_pattern_transitions (pattern_id, from_status, to_status, changed_by, reason)
    SELECT id, from_status, $2, $3, $4 FROM changed RETURNING id, pattern_id)
SELECT c.id AS pattern_id, c.from_status, c.from_severity, c.severity, c.fingerprint, c.pattern, l.id AS transition_id
FROM changed c JOIN logged l ON l.pattern_id = c.id"""
LEAVES = {"resolved": ["open", "regressed"], "regressed": ["resolved"]}


async def transition(conn: asyncpg.Connection, ids: list[int], to: str, by: str, reason: str) -> list[asyncpg.Record]:
    """Move these patterns to `to` where allowed; returns each that moved: pattern_id, from_status,
    from_severity, severity, fingerprint, pattern and transition_id. A regression is also a notification
    (worker/notifications), written in the same transaction."""
    if not ids:
        return []
    moved = await conn.fetch(TRANSITION, sorted(set(ids)), to, by, reason, LEAVES[to])
    if to == "regressed":
        await notifications.enqueue(
            conn,
            (
                webhook.bug_pattern(
                    "bug_pattern_regressed", r["fingerprint"] or str(r["pattern_id"]), r["pattern"], r["severity"],
                    reason, time.time(), r["transition_id"],
                )
                for r in moved
            ),
        )  # fmt: skip
    return moved


CREATED_LATELY = """
SELECT count(*) FROM bug_patterns WHERE fingerprint IS NOT NULL AND created_at > now() - interval '1 hour'"""

INSERT_STUBS = """
INSERT INTO regression_tests (test_name, category, description, test_code, expected_behavior, discovered_from, metadata)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
ON CONFLICT (test_name) DO NOTHING"""


class PatternsWritten(NamedTuple):
    new: int  # patterns (and stubs) that appeared
    folded: int  # failures folded into the overflow pattern: `max_new_per_hour` patterns were created in the
    # last hour (pods flushing at the same moment may each create a batch's worth more: a bound, not a quota)
    critical: int  # patterns that became critical (new at that level, or raised to it): what pages someone
    regressed: int  # resolved patterns whose occurrences came back


async def write_patterns(
    conn: asyncpg.Connection, deltas: dict[str, PatternDelta], window_s: float, max_new_per_hour: int = 500
) -> PatternsWritten:
    """Add the deltas. What to write is decided in worker/failures; this runs the statements."""
    rows = await conn.fetch(KNOWN, list(deltas))
    known = {r["fingerprint"] for r in rows}
    resolved = {r["fingerprint"]: r["id"] for r in rows if r["status"] == "resolved"}
    folded = 0
    if len(deltas) > len(known):
        budget = max_new_per_hour - int(await conn.fetchval(CREATED_LATELY))
        deltas, folded = fold_past_budget(deltas, known, budget)
    ordered = [deltas[k] for k in sorted(deltas)]
    merged = {r["fingerprint"]: r for r in await conn.fetch(UPSERT, *pattern_columns(ordered))}

    pairs = sorted({pair for d in ordered for pair in d.pairs})
    shares = {
        (r["model_id"], r["task_type"]): (r["calls"], r["failures"])
        for r in await conn.fetch(WINDOW_SHARES, [m for m, _ in pairs], [t for _, t in pairs], float(window_s))
    }
    rows = {
        digest: MergedPattern(
            r["occurrences"], len(orjson.loads(r["models"])), r["retryable_occurrences"], r["severity"]
        )
        for digest, r in merged.items()
    }
    changes = raised_levels({d.fingerprint.digest: d.pairs for d in ordered}, rows, shares)
    if changes:
        await conn.execute(SET_SEVERITY, [f for f, _ in changes], [s for _, s in changes])

    new = [d for d in ordered if merged[d.fingerprint.digest]["inserted"]]
    if new:
        await conn.execute(INSERT_STUBS, *map(list, zip(*(stub_row(d) for d in new), strict=True)))
    critical = {d.fingerprint.digest for d in new if merged[d.fingerprint.digest]["severity"] == "critical"}
    critical |= {digest for digest, level in changes if level == "critical"}
    back = [pattern_id for digest, pattern_id in resolved.items() if digest in merged]
    regressed = await transition(conn, back, "regressed", "worker", "occurrences came back after it was resolved")
    by_id = {pattern_id: digest for digest, pattern_id in resolved.items()}
    critical |= {
        by_id[r["pattern_id"]] for r in regressed if r["severity"] == "critical" and r["from_severity"] != "critical"
    }
    if critical:
        now = time.time()
        await notifications.enqueue(
            conn,
            (
                webhook.bug_pattern("bug_pattern_critical", digest, deltas[digest].fingerprint.template, "critical",
                                    "its failure share, spread or count reached the critical level", now, 0)
                for digest in sorted(critical)
                if digest in deltas
            ),
        )  # fmt: skip
    return PatternsWritten(len(new), folded, len(critical), len(regressed))
