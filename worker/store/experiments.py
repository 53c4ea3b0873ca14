"""Experiments' rows: the record routers follow (with its versions' publication), the arms' sums,
and scoring weights promoted from an experiment."""

from __future__ import annotations

import asyncpg
import orjson

from worker.calls import histogram
from worker.experiments.contract import Experiment, ExperimentSpec
from worker.experiments.tally import ArmTally

MAX_RUNNING = 50  # experiments running at once: each is evaluated on every tick and held by every router

CREATE = """
INSERT INTO experiments (experiment_id, status, arms, version, record, spec)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (experiment_id) DO NOTHING RETURNING experiment_id"""

RECORD = "SELECT record, spec FROM experiments WHERE experiment_id = $1"

LIST = """
SELECT record, count(*) OVER () AS total FROM experiments WHERE ($1::text IS NULL OR status = $1)
ORDER BY created_at DESC, experiment_id LIMIT $2 OFFSET $3"""

COUNT_LIST = "SELECT count(*) FROM experiments WHERE ($1::text IS NULL OR status = $1)"

RUNNING = "SELECT record FROM experiments WHERE status = 'running' ORDER BY experiment_id"

SAVE = """
UPDATE experiments SET record = $3, status = $4, arms = $5, version = $6, updated_at = now()
WHERE experiment_id = $1 AND version = $2 RETURNING experiment_id"""

ARMS = """
SELECT experiment_id, arm, calls, successes, cost_sum, cost_squares, utility_sum, utility_squares, latency_histogram
FROM experiment_arms WHERE experiment_id = ANY($1::text[])"""

ARM_QUALITY = """
SELECT experiment_id, arm, name, feedback_count, score_sum::float8 AS total, score_squares::float8 AS squares
FROM experiment_arm_quality WHERE experiment_id = ANY($1::text[])"""

UNPUBLISHED = "SELECT experiment_id, version, record FROM experiments WHERE published_version < version"

ENDED_ON_TOPIC = """
SELECT experiment_id FROM experiments
WHERE status <> 'running' AND removed_from_topic_at IS NULL AND published_version >= version
  AND updated_at < now() - make_interval(secs => $1)
ORDER BY updated_at LIMIT $2"""

MARK_REMOVED = "UPDATE experiments SET removed_from_topic_at = now() WHERE experiment_id = $1"

MARK_PUBLISHED = """
UPDATE experiments SET published_version = greatest(published_version, $2) WHERE experiment_id = $1"""

SAVE_WEIGHTS = """
INSERT INTO routing_weights (task_type, weights, source) SELECT unnest($1::text[]), $2, $3
ON CONFLICT (task_type) DO UPDATE SET weights = EXCLUDED.weights, source = EXCLUDED.source, updated_at = now()"""

WEIGHTS = "SELECT task_type, weights FROM routing_weights"


class TooManyRunning(RuntimeError):
    pass


def _record(value: str) -> Experiment:
    return Experiment.model_validate(orjson.loads(value))


async def create(conn: asyncpg.Connection, spec: ExperimentSpec, record: Experiment) -> tuple[Experiment, bool]:
    """Store a new experiment; the same definition again returns the stored one (a retried call).
    A different definition under a taken id raises ValueError."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE experiments IN SHARE ROW EXCLUSIVE MODE")  # the running bound is exact
        known = await conn.fetchrow(RECORD, record.experiment_id)
        if known is not None:
            if orjson.loads(known["spec"]) != spec.model_dump(mode="json"):
                raise ValueError(f"experiment {record.experiment_id!r} exists with another definition")
            return _record(known["record"]), False
        others = await running(conn)
        if len(others) >= MAX_RUNNING:
            raise TooManyRunning(f"{len(others)} experiments are running; at most {MAX_RUNNING} may run at once")
        for other in others:
            if other.overlaps(record):
                raise ValueError(f"experiment {other.experiment_id!r} is running on the same task types; stop it first")
        await conn.execute(
            CREATE,
            record.experiment_id,
            record.status,
            [a.name for a in record.arms],
            record.version,
            record.model_dump_json(),
            spec.model_dump_json(),
        )
    return record, True


async def get(conn: asyncpg.Connection, experiment_id: str) -> Experiment | None:
    row = await conn.fetchrow(RECORD, experiment_id)
    return _record(row["record"]) if row else None


async def page(conn: asyncpg.Connection, status: str | None, limit: int, offset: int) -> tuple[list[dict], int]:
    rows = await conn.fetch(LIST, status, limit, offset)
    total = rows[0]["total"] if rows else await conn.fetchval(COUNT_LIST, status)
    return [orjson.loads(r["record"]) for r in rows], total


async def running(conn: asyncpg.Connection) -> list[Experiment]:
    return [_record(r["record"]) for r in await conn.fetch(RUNNING)]


async def save(conn: asyncpg.Connection, previous_version: int, record: Experiment) -> bool:
    """Store a new version; False when another writer (an operator's stop, another leader) was first."""
    row = await conn.fetchrow(
        SAVE,
        record.experiment_id,
        previous_version,
        record.model_dump_json(),
        record.status,
        [a.name for a in record.arms],
        record.version,
    )
    return row is not None


async def tallies(conn: asyncpg.Connection, experiment_ids: list[str]) -> dict[str, dict[str, ArmTally]]:
    out: dict[str, dict[str, ArmTally]] = {}
    for r in await conn.fetch(ARMS, experiment_ids):
        out.setdefault(r["experiment_id"], {})[r["arm"]] = ArmTally(
            calls=r["calls"],
            successes=r["successes"],
            cost_sum=r["cost_sum"],
            cost_squares=r["cost_squares"],
            utility_sum=r["utility_sum"],
            utility_squares=r["utility_squares"],
            latency=histogram.from_json_keys(orjson.loads(r["latency_histogram"])),
        )
    for r in await conn.fetch(ARM_QUALITY, experiment_ids):
        arm = out.setdefault(r["experiment_id"], {}).setdefault(r["arm"], ArmTally())
        arm.quality[r["name"]] = (r["feedback_count"], r["total"], r["squares"])
    return out


async def unpublished(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(UNPUBLISHED)


async def ended_on_topic(conn: asyncpg.Connection, retention_s: float, limit: int = 100) -> list[str]:
    """Ended experiments whose last record has been on the topic for longer than the retention."""
    return [r[0] for r in await conn.fetch(ENDED_ON_TOPIC, float(retention_s), limit)]


async def mark_removed(conn: asyncpg.Connection, experiment_id: str) -> None:
    await conn.execute(MARK_REMOVED, experiment_id)


async def mark_published(conn: asyncpg.Connection, experiment_id: str, version: int) -> None:
    await conn.execute(MARK_PUBLISHED, experiment_id, version)


async def save_weights(conn: asyncpg.Connection, task_types: list[str], weights: dict, source: str) -> None:
    await conn.execute(SAVE_WEIGHTS, task_types, orjson.dumps(weights).decode(), source)


async def weights(conn: asyncpg.Connection) -> dict[str, dict]:
    return {r["task_type"]: orjson.loads(r["weights"]) for r in await conn.fetch(WEIGHTS)}
