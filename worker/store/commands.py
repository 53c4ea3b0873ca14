"""Tool commands inside the flush transaction: free-form metrics and hand-recorded bug patterns.

Reported call outcomes (update_model_performance) need nothing here: they are calls and join the
aggregates with the events.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import orjson

from worker.calls.commands import BugReport, Metric, merged_reports

INSERT_METRICS = """
INSERT INTO performance_metrics (metric_name, metric_value, metric_unit, context, recorded_at)
SELECT n, v, u, c, to_timestamp(w)
FROM unnest($1::text[], $2::float8[], $3::text[], $4::jsonb[], $5::float8[]) AS x(n, v, u, c, w)"""

UPSERT_RECORDED = """
INSERT INTO bug_patterns AS t (category, pattern, description, solution, occurrences, severity, first_seen,
    last_seen, solution_source)
SELECT c, p, d, s, n, v, to_timestamp(a), to_timestamp(z), 'operator'
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::float8[], $8::float8[])
     AS u(c, p, d, s, n, v, a, z)
ON CONFLICT (category, pattern) WHERE fingerprint IS NULL DO UPDATE SET
    occurrences = t.occurrences + EXCLUDED.occurrences,
    description = CASE WHEN EXCLUDED.description = '' THEN t.description ELSE EXCLUDED.description END,
    solution = CASE WHEN EXCLUDED.solution = '' THEN t.solution ELSE EXCLUDED.solution END,
    severity = EXCLUDED.severity,
    first_seen = least(t.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(t.last_seen, EXCLUDED.last_seen),
    updated_at = now()"""


async def write_commands(conn: asyncpg.Connection, metrics: Sequence[Metric], reports: Sequence[BugReport]) -> None:
    if metrics:
        await conn.execute(
            INSERT_METRICS,
            [m.name for m in metrics],
            [m.value for m in metrics],
            [m.unit for m in metrics],
            [orjson.dumps(m.context).decode() for m in metrics],
            [m.recorded_at for m in metrics],
        )
    if reports:
        await conn.execute(UPSERT_RECORDED, *map(list, zip(*merged_reports(reports))))
