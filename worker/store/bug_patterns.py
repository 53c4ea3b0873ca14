"""Bug patterns and their regression stubs, written inside the flush transaction.

Three steps, each one statement: add the batch's pattern deltas (RETURNING the merged rows), raise
severities from the evidence, and create one stub for each pattern this statement inserted
(a pattern another pod inserted first is an update here, so its stub is created exactly once).
"""

from __future__ import annotations

import asyncpg
import orjson

from worker.failures.patterns import PatternDelta, fold_past_budget, pattern_columns, stub_row
from worker.failures.severity import MergedPattern, raised_levels

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

KNOWN = "SELECT fingerprint FROM bug_patterns WHERE fingerprint = ANY($1::text[])"
CREATED_LATELY = """
SELECT count(*) FROM bug_patterns WHERE fingerprint IS NOT NULL AND created_at > now() - interval '1 hour'"""

INSERT_STUBS = """
INSERT INTO regression_tests (test_name, category, description, test_code, expected_behavior, discovered_from, metadata)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
ON CONFLICT (test_name) DO NOTHING"""


async def write_patterns(
    conn: asyncpg.Connection, deltas: dict[str, PatternDelta], window_s: float, max_new_per_hour: int = 500
) -> tuple[int, int, int]:
    """Add the deltas; return how many new patterns (and stubs) appeared, how many failures were
    folded into the overflow pattern because `max_new_per_hour` patterns were created in the last hour
    (pods flushing at the same moment may each create a batch's worth more: a bound, not a quota), and
    how many patterns became critical (new at that level, or raised to it: what pages someone).
    What to write is decided in worker/failures; this runs the statements."""
    known = {r["fingerprint"] for r in await conn.fetch(KNOWN, list(deltas))}
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
    return len(new), folded, len(critical)
