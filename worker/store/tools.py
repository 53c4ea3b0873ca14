"""The tools' reads (one page at a time) and their direct writes (rows that are not aggregates)."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
import orjson

from worker.failures.junit import Report
from worker.store.bug_patterns import transition

BUG_PATTERNS = """
SELECT p.id, p.category, p.pattern, p.description, p.solution, p.occurrences, p.severity, p.fingerprint,
       p.error_type, p.first_seen, p.last_seen, p.models, p.layers, p.solution_source, p.created_at, p.updated_at,
       p.status, p.status_changed_at, p.status_by, p.status_reason, run.outcome AS last_result,
       run.recorded_at AS last_run_at, count(*) OVER () AS total
FROM bug_patterns p
LEFT JOIN LATERAL (
    SELECT r.outcome, r.recorded_at FROM regression_tests t JOIN regression_test_results r ON r.test_id = t.id
    WHERE p.fingerprint IS NOT NULL AND t.metadata ->> 'fingerprint' = p.fingerprint
    ORDER BY r.recorded_at DESC, r.run_id DESC LIMIT 1) run ON true
WHERE ($1::text IS NULL OR p.category = $1)
ORDER BY p.occurrences DESC, p.id LIMIT $2 OFFSET $3"""

REGRESSION_TESTS = """
SELECT t.id, t.test_name, t.category, t.description, t.test_code, t.expected_behavior, t.discovered_from,
       t.metadata, t.created_at, t.updated_at, last.outcome AS last_result, last.recorded_at AS last_run_at,
       last.commit_sha AS last_commit, coalesce(runs.passes, 0) AS passes, coalesce(runs.failures, 0) AS failures,
       coalesce(runs.flaky, false) AS flaky, count(*) OVER () AS total
FROM regression_tests t
LEFT JOIN LATERAL (
    SELECT outcome, recorded_at, commit_sha FROM regression_test_results r
    WHERE r.test_id = t.id ORDER BY recorded_at DESC, run_id DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE outcome = 'passed') AS passes, count(*) FILTER (WHERE outcome = 'failed') AS failures,
           bool_or(both_ways) AS flaky
    FROM (SELECT outcome, bool_and(outcome = 'passed') OVER w <> bool_or(outcome = 'passed') OVER w AS both_ways
          FROM regression_test_results r WHERE r.test_id = t.id AND outcome <> 'skipped'
          WINDOW w AS (PARTITION BY commit_sha)) per_commit) runs ON true
WHERE ($1::text IS NULL OR t.category = $1)
ORDER BY t.id LIMIT $2 OFFSET $3"""

# record_test_results: the run first (its key makes a re-sent run a no-op), then one row per known stub.
INSERT_RUN = """
INSERT INTO regression_test_runs (run_id, commit_sha, environment, cases, not_stubs, unknown_stubs)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO NOTHING RETURNING recorded_at"""
STUB_IDS = "SELECT id, test_name FROM regression_tests WHERE test_name = ANY($1::text[])"
PREVIOUS_RESULTS = """
SELECT DISTINCT ON (test_id) test_id, outcome FROM regression_test_results
WHERE test_id = ANY($1::int8[]) AND outcome <> 'skipped' ORDER BY test_id, recorded_at DESC, run_id DESC"""
INSERT_RESULTS = """
INSERT INTO regression_test_results (test_id, run_id, outcome, message, commit_sha, environment, recorded_at)
SELECT t, $2, o, m, $3, $4, $5 FROM unnest($1::int8[], $6::text[], $7::text[]) AS x(t, o, m)"""
# The patterns of these stubs, whether each has been quiet long enough, and whether its last $2 results
# (skips aside) all passed.
PATTERNS_OF_STUBS = """
SELECT t.id AS test_id, p.id AS pattern_id, p.fingerprint, p.status,
       coalesce(p.last_seen < now() - make_interval(secs => $3), true) AS quiet,
       (SELECT count(*) = $2 AND bool_and(outcome = 'passed') FROM (
            SELECT outcome FROM regression_test_results r WHERE r.test_id = t.id AND outcome <> 'skipped'
            ORDER BY recorded_at DESC, run_id DESC LIMIT $2) last) AS passed_in_a_row
FROM regression_tests t JOIN bug_patterns p ON p.fingerprint = t.metadata ->> 'fingerprint'
WHERE t.id = ANY($1::int8[])"""
BUG_PATTERN = """
SELECT id, fingerprint, status FROM bug_patterns WHERE ($1::int8 IS NOT NULL AND id = $1) OR fingerprint = $2"""
RUN_RESULTS = """
SELECT r.outcome, t.test_name, run.recorded_at, run.unknown_stubs, run.not_stubs, run.cases
FROM regression_test_runs run LEFT JOIN regression_test_results r ON r.run_id = run.run_id
LEFT JOIN regression_tests t ON t.id = r.test_id WHERE run.run_id = $1"""

HEURISTICS = """
SELECT heuristic, count(*) OVER () AS total FROM routing_rules
WHERE heuristic IS NOT NULL AND ($1 = false OR active)
ORDER BY priority DESC, id LIMIT $2 OFFSET $3"""

COUNT = {
    "bug_patterns": "SELECT count(*) FROM bug_patterns WHERE ($1::text IS NULL OR category = $1)",
    "regression_tests": "SELECT count(*) FROM regression_tests WHERE ($1::text IS NULL OR category = $1)",
    "heuristics": "SELECT count(*) FROM routing_rules WHERE heuristic IS NOT NULL AND ($1 = false OR active)",
}

SAVE_TEST = """
INSERT INTO regression_tests (test_name, category, description, test_code, expected_behavior, discovered_from, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (test_name) DO UPDATE SET category = EXCLUDED.category, description = EXCLUDED.description,
    test_code = EXCLUDED.test_code, expected_behavior = EXCLUDED.expected_behavior,
    discovered_from = EXCLUDED.discovered_from, metadata = EXCLUDED.metadata, updated_at = now()
RETURNING id, (xmax = 0) AS created"""

LAST_LAYER = "SELECT layer FROM model_performance_minutes WHERE model_id = $1 ORDER BY minute DESC LIMIT 1"

_JSON_COLUMNS = ("models", "layers", "metadata")


def _row(record: asyncpg.Record) -> dict:
    row = {k: (orjson.loads(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in record.items()}
    row.pop("total", None)
    return row


async def _page(conn: asyncpg.Connection, query: str, count: str, arg, limit: int, offset: int) -> tuple[list, int]:
    records = await conn.fetch(query, arg, limit, offset)
    if records:
        return records, int(records[0]["total"])
    return [], int(await conn.fetchval(COUNT[count], arg))  # past the end: still say how many there are


async def bug_patterns(
    conn: asyncpg.Connection, category: str | None, limit: int, offset: int
) -> tuple[list[dict], int]:
    records, total = await _page(conn, BUG_PATTERNS, "bug_patterns", category, limit, offset)
    return [_row(r) for r in records], total


async def regression_tests(
    conn: asyncpg.Connection, category: str | None, limit: int, offset: int
) -> tuple[list[dict], int]:
    records, total = await _page(conn, REGRESSION_TESTS, "regression_tests", category, limit, offset)
    return [_row(r) for r in records], total


async def heuristics(conn: asyncpg.Connection, active_only: bool, limit: int, offset: int) -> tuple[list[dict], int]:
    records, total = await _page(conn, HEURISTICS, "heuristics", active_only, limit, offset)
    return [orjson.loads(r["heuristic"]) for r in records], total


async def save_test(
    conn: asyncpg.Connection,
    *,
    test_name: str,
    category: str,
    description: str,
    test_code: str,
    expected_behavior: str,
    discovered_from: str,
    metadata: dict,
) -> tuple[int, bool]:
    row = await conn.fetchrow(
        SAVE_TEST,
        test_name,
        category,
        description,
        test_code,
        expected_behavior,
        discovered_from,
        orjson.dumps(metadata).decode(),
    )
    return row["id"], row["created"]


async def last_layer(conn: asyncpg.Connection, model_id: str) -> str | None:
    return await conn.fetchval(LAST_LAYER, model_id)


@dataclass(frozen=True)
class RunRecorded:
    recorded: bool  # False: this run_id was recorded before, and nothing changed
    unknown: list[str]  # stubs in the report this worker does not know
    regressions: list[str]  # stubs that failed after their previous result passed
    resolved: list[str] = field(default_factory=list)  # fingerprints of patterns this run resolved
    regressed: list[str] = field(default_factory=list)  # fingerprints of resolved patterns whose stub failed


async def record_run(
    conn: asyncpg.Connection,
    run_id: str,
    commit: str,
    environment: str,
    report: Report,
    resolve_passes: int = 3,
    resolve_quiet_s: float = 86_400.0,
) -> RunRecorded:
    """Store one CI run's stub results, once per run_id, and move their patterns along the lifecycle in
    the same transaction: a resolved pattern whose stub fails regresses; an open or regressed one whose
    stub passed `resolve_passes` runs in a row, with no occurrence for `resolve_quiet_s`, is resolved.
    A run already recorded changes nothing."""
    async with conn.transaction():
        known = {r["test_name"]: r["id"] for r in await conn.fetch(STUB_IDS, sorted(report.results))}
        unknown = sorted(set(report.results) - set(known))
        recorded_at = await conn.fetchval(
            INSERT_RUN, run_id, commit, environment, report.cases, report.not_stubs, len(unknown)
        )
        if recorded_at is None:
            return RunRecorded(False, unknown, [])
        ids = [known[name] for name in sorted(known)]
        before = {r["test_id"]: r["outcome"] for r in await conn.fetch(PREVIOUS_RESULTS, ids)}
        results = [report.results[name] for name in sorted(known)]
        await conn.execute(
            INSERT_RESULTS,
            ids,
            run_id,
            commit,
            environment,
            recorded_at,
            [r.outcome for r in results],
            [r.message for r in results],
        )
        outcome = {i: r.outcome for i, r in zip(ids, results, strict=True)}
        rows = await conn.fetch(PATTERNS_OF_STUBS, ids, resolve_passes, float(resolve_quiet_s))
        back = [r["pattern_id"] for r in rows if outcome[r["test_id"]] == "failed" and r["status"] == "resolved"]
        fixed = [
            r["pattern_id"]
            for r in rows
            if outcome[r["test_id"]] == "passed" and r["status"] != "resolved" and r["quiet"] and r["passed_in_a_row"]
        ]
        reason = f"its stub failed in CI run {run_id} (commit {commit}, {environment})"
        regressed = await transition(conn, back, "regressed", "ci", reason)
        reason = (
            f"its stub passed {resolve_passes} CI runs in a row (the last: {run_id}, commit {commit}) and it has "
            f"not occurred for {resolve_quiet_s:g} s"
        )
        resolved = await transition(conn, fixed, "resolved", "ci", reason)
    fingerprint = {r["pattern_id"]: r["fingerprint"] for r in rows}
    return RunRecorded(
        True,
        unknown,
        [r.test_name for i, r in zip(ids, results, strict=True) if r.outcome == "failed" and before.get(i) == "passed"],
        sorted(fingerprint[r["pattern_id"]] for r in resolved),
        sorted(fingerprint[r["pattern_id"]] for r in regressed),
    )


async def run_results(conn: asyncpg.Connection, run_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(RUN_RESULTS, run_id)


async def bug_pattern(
    conn: asyncpg.Connection, pattern_id: int | None, fingerprint: str | None
) -> asyncpg.Record | None:
    return await conn.fetchrow(BUG_PATTERN, pattern_id, fingerprint)
