"""The feedback join, inside the flush transaction: calls are kept for FEEDBACK_WINDOW_S (in the dedupe
log's rows, seen_events, read through the call_index view), feedback is joined to its call (or
waits for it), and the quality sums move by what worker.feedback.join decides.

Everything here runs in the transaction that stores the offsets, so a feedback and the calls it
releases from waiting count exactly once, under kill -9, re-delivery and rebalances alike. What
this transaction refuses (a flood, a name past the bound, no room to wait) goes to the dead-letter
outbox in the same transaction; `drain_outbox` produces it after the commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import orjson

from worker.calls.decode import SCORE_UNIT, Call, Feedback
from worker.feedback import join
from worker.flush.rows import columns

NAME_LOCK_KEY = 0x7E1E_FEED  # serialises the rare addition of a new feedback name across pods

_PENDING_COLUMNS = """event_id::text, call_event_id::text, request_id, name, source, score_micro,
    extract(epoch FROM occurred_at)::float8 AS occurred_at, comment"""

ANY_PENDING = "SELECT EXISTS (SELECT 1 FROM feedback_pending)"  # most flushes: none, so no lookup of every call
RELEASE_PENDING = f"""
DELETE FROM feedback_pending
WHERE call_event_id = ANY($1::uuid[]) OR (call_event_id IS NULL AND request_id = ANY($2::text[]))
RETURNING {_PENDING_COLUMNS}"""

_CALL_COLUMNS = """event_id::text, request_id, extract(epoch FROM minute)::float8 AS minute, model_id, task_type, layer,
    experiment_id, arm, routing_rule_id, extract(epoch FROM occurred_at)::float8 AS occurred_at"""
CALLS_BY_ID = f"SELECT {_CALL_COLUMNS} FROM call_index WHERE event_id = ANY($1::uuid[])"
# by request id: the latest answered call (a retry's failed attempts are not what a user judged)
CALLS_BY_REQUEST = f"""
SELECT DISTINCT ON (request_id) {_CALL_COLUMNS} FROM call_index WHERE request_id = ANY($1::text[])
ORDER BY request_id, ok DESC, occurred_at DESC"""

NAMES = "SELECT name FROM feedback_names"
ADD_NAMES = "INSERT INTO feedback_names (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING"

LOCK_SCORES = """
SELECT call_event_id::text, name, source, score_micro, extract(epoch FROM occurred_at)::float8 AS occurred_at,
    event_id::text, updates
FROM call_feedback
WHERE (call_event_id, name, source) IN (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]))
ORDER BY call_event_id, name, source FOR UPDATE"""

SET_SCORES = """
INSERT INTO call_feedback AS t (call_event_id, name, source, score_micro, occurred_at, event_id, updates,
    call_occurred_at, comment)
SELECT c, n, s, v, to_timestamp(a), e, u, to_timestamp(w), x
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::float8[], $6::uuid[], $7::int[], $8::float8[],
            $9::text[]) AS f(c, n, s, v, a, e, u, w, x)
ON CONFLICT (call_event_id, name, source) DO UPDATE SET
    score_micro = EXCLUDED.score_micro, occurred_at = EXCLUDED.occurred_at, event_id = EXCLUDED.event_id,
    updates = EXCLUDED.updates, comment = coalesce(EXCLUDED.comment, t.comment)"""

_QUALITY_SET = """
    feedback_count = t.feedback_count + EXCLUDED.feedback_count,
    score_sum = t.score_sum + EXCLUDED.score_sum,
    score_squares = t.score_squares + EXCLUDED.score_squares"""

UPSERT_MODEL_QUALITY = f"""
INSERT INTO model_quality AS t (model_id, task_type, name, feedback_count, score_sum, score_squares)
SELECT m, k, n, c, s::numeric / {SCORE_UNIT}, q::numeric / {SCORE_UNIT * SCORE_UNIT}
FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[]) AS u(m, k, n, c, s, q)
ON CONFLICT (model_id, task_type, name) DO UPDATE SET {_QUALITY_SET}, updated_at = now()"""

UPSERT_MINUTE_QUALITY = f"""
INSERT INTO model_quality_minutes AS t (minute, model_id, task_type, layer, name, feedback_count, score_sum,
    score_squares)
SELECT to_timestamp(w), m, k, y, n, c, s::numeric / {SCORE_UNIT}, q::numeric / {SCORE_UNIT * SCORE_UNIT}
FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::int8[])
    AS u(w, m, k, y, n, c, s, q)
ON CONFLICT (minute, model_id, task_type, layer, name) DO UPDATE SET {_QUALITY_SET}"""

# only arms of running experiments get rows, as with the arms' call sums
UPSERT_ARM_QUALITY = f"""
INSERT INTO experiment_arm_quality AS t (experiment_id, arm, name, feedback_count, score_sum, score_squares)
SELECT u.x, u.a, u.n, u.c, u.s::numeric / {SCORE_UNIT}, u.q::numeric / {SCORE_UNIT * SCORE_UNIT}
FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[]) AS u(x, a, n, c, s, q)
JOIN experiments e ON e.experiment_id = u.x AND e.status = 'running' AND u.a = ANY(e.arms)
ON CONFLICT (experiment_id, arm, name) DO UPDATE SET {_QUALITY_SET}"""

PENDING_ESTIMATE = "SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = 'feedback_pending'::regclass"

WAIT = """
INSERT INTO feedback_pending (event_id, call_event_id, request_id, name, source, score_micro, occurred_at, comment)
SELECT e, c, r, n, s, v, to_timestamp(a), x
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[], $7::float8[], $8::text[])
    AS f(e, c, r, n, s, v, a, x)
ON CONFLICT DO NOTHING"""

TO_OUTBOX = """
INSERT INTO dead_letter_outbox (source_topic, reason, detail, value)
SELECT $1, r, d, v FROM unnest($2::text[], $3::text[], $4::bytea[]) AS o(r, d, v)"""

EXPIRE_PENDING = f"""
WITH expired AS (
    DELETE FROM feedback_pending WHERE event_id IN (
        SELECT event_id FROM feedback_pending WHERE arrived_at < now() - make_interval(secs => $1) LIMIT $2)
    RETURNING {_PENDING_COLUMNS})
INSERT INTO dead_letter_outbox (source_topic, reason, detail, value)
SELECT $3, 'unknown_call', $4, convert_to(json_build_object(
    'event_id', event_id, 'call_event_id', call_event_id, 'request_id', request_id, 'name', name,
    'source', source, 'score', score_micro::float8 / {SCORE_UNIT}, 'occurred_at', to_timestamp(occurred_at),
    'comment', comment)::text, 'UTF8')
FROM expired"""

JOIN_LOCK = "hashtext('gateway-telemetry-worker: the feedback join')"
JOIN_SHARED = f"SELECT pg_advisory_xact_lock_shared({JOIN_LOCK})"
JOIN_EXCLUSIVE = f"SELECT pg_advisory_xact_lock({JOIN_LOCK})"
# only the scores of calls already forgotten (worker/store/offsets.py forgets them with the dedupe log):
# a call that can still be joined keeps the score that counts
PRUNE_SCORES = """
DELETE FROM call_feedback WHERE (call_event_id, name, source) IN (
    SELECT f.call_event_id, f.name, f.source FROM call_feedback f
    WHERE f.call_occurred_at < now() - make_interval(secs => $1)
      AND NOT EXISTS (SELECT 1 FROM seen_events c WHERE c.event_id = f.call_event_id) LIMIT $2)"""

TAKE_OUTBOX = """
SELECT id, source_topic, reason, detail, value FROM dead_letter_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"""
CLEAR_OUTBOX = "DELETE FROM dead_letter_outbox WHERE id = ANY($1::int8[])"

NAME_LIMIT = "feedback_name_limit"
PENDING_FULL = "feedback_pending_full"


@dataclass(frozen=True, slots=True)
class FeedbackLimits:
    window_s: int = 604_800
    max_names: int = 20
    max_updates: int = 100
    pending_max: int = 1_000_000
    topic: str = "gateway.calls.feedback"  # the source topic named in dead letters


@dataclass(frozen=True, slots=True)
class FeedbackOutcome:
    applied: int = 0  # set or replaced a score
    superseded: int = 0  # older than the score that counts
    waiting: int = 0  # their call is not known yet
    released: int = 0  # had waited, and their call came in this flush
    refused: dict[str, int] | None = None  # reason -> count, sent to the dead-letter outbox


def _call_facts(row: asyncpg.Record) -> join.CallFacts:
    return join.CallFacts(
        row["event_id"],
        int(row["minute"]),
        row["model_id"],
        row["task_type"],
        row["layer"],
        row["experiment_id"],
        row["arm"],
        row["routing_rule_id"],
    )


def _as_feedback(row: asyncpg.Record) -> Feedback:
    return Feedback(
        row["event_id"],
        row["call_event_id"],
        row["request_id"],
        row["name"],
        row["source"],
        row["score_micro"],
        row["occurred_at"],
        row["comment"],
    )


def dead_letter_value(feedback: Feedback) -> bytes:
    """The feedback as the wire contract spells it (score in [0, 1]), for the dead-letter topic."""
    return orjson.dumps(
        {
            "event_id": feedback.event_id,
            "call_event_id": feedback.call_event_id,
            "request_id": feedback.request_id,
            "name": feedback.name,
            "source": feedback.source,
            "score": feedback.score_micro / SCORE_UNIT,
            "occurred_at": feedback.occurred_at,
            "comment": feedback.comment,
        }
    )


async def _find_calls(
    conn: asyncpg.Connection, feedback: Sequence[Feedback]
) -> tuple[dict[str, join.CallFacts], dict[str, join.CallFacts]]:
    ids = sorted({f.call_event_id for f in feedback if f.call_event_id is not None})
    requests = sorted({f.request_id for f in feedback if f.call_event_id is None and f.request_id is not None})
    by_id = {r["event_id"]: _call_facts(r) for r in await conn.fetch(CALLS_BY_ID, ids)} if ids else {}
    by_request = (
        {r["request_id"]: _call_facts(r) for r in await conn.fetch(CALLS_BY_REQUEST, requests)} if requests else {}
    )
    return by_id, by_request


async def _admit_names(conn: asyncpg.Connection, wanted: list[str], max_names: int) -> set[str]:
    """The names among `wanted` (in order of arrival) that may be counted; new ones are added, first come
    first served, while there is room."""
    known = {r[0] for r in await conn.fetch(NAMES)}
    if known.issuperset(wanted):
        return set(wanted)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", NAME_LOCK_KEY)
    known = {r[0] for r in await conn.fetch(NAMES)}  # again, under the lock: another pod may have added some
    room = max(0, max_names - len(known))
    admitted = [name for name in dict.fromkeys(wanted) if name not in known][:room]
    if admitted:
        await conn.execute(ADD_NAMES, admitted)
    return known.intersection(wanted) | set(admitted)


async def apply_feedback(
    conn: asyncpg.Connection, calls: Sequence[Call], feedback: Sequence[Feedback], limits: FeedbackLimits
) -> FeedbackOutcome:
    """Release the feedback that waited for this flush's new calls (the flush stored what the join needs
    of them with their ids, worker/store/flush.py), and join and apply every feedback whose call is
    known; the rest waits (bounded) or is dead-lettered."""
    released: list[Feedback] = []
    if limits.window_s > 0 and calls and await conn.fetchval(ANY_PENDING):
        requests = sorted({c.request_id for c in calls if c.request_id is not None})
        released = [_as_feedback(r) for r in await conn.fetch(RELEASE_PENDING, [c.event_id for c in calls], requests)]
    incoming = released + list(feedback)  # arrival order: what waited arrived first
    if not incoming:
        return FeedbackOutcome()
    refused: list[tuple[Feedback, str, str]] = []
    if limits.window_s <= 0:
        refused = [(f, "unknown_call", "the feedback join is off (FEEDBACK_WINDOW_S=0)") for f in incoming]
        return await _refuse(conn, refused, limits)
    # the calls and their stored scores are read as one state: `expire` forgets a call and its scores
    # under the exclusive side of this lock, never between the two reads (or a replacement would count twice)
    await conn.execute(JOIN_SHARED)
    by_id, by_request = await _find_calls(conn, incoming)
    joined: list[tuple[Feedback, join.CallFacts]] = []
    waiting: list[Feedback] = []
    for f in incoming:
        call = by_id.get(f.call_event_id) if f.call_event_id is not None else by_request.get(f.request_id or "")
        if call is None:
            waiting.append(f)
        else:
            joined.append((f, call))
    if joined:
        admitted = await _admit_names(conn, [f.name for f, _ in joined], limits.max_names)
        refused += [
            (f, NAME_LIMIT, f"{limits.max_names} feedback names are counted already (FEEDBACK_MAX_NAMES)")
            for f, _ in joined
            if f.name not in admitted
        ]
        joined = [(f, c) for f, c in joined if f.name in admitted]
    applied = await _apply_joined(conn, joined, limits) if joined else join.Applied({}, join.QualityDeltas())
    refused += applied.refused
    if waiting:
        estimate = await conn.fetchval(PENDING_ESTIMATE) or 0
        room = max(0, limits.pending_max - estimate)
        refused += [
            (f, PENDING_FULL, f"{limits.pending_max} feedback already wait for their calls (FEEDBACK_PENDING_MAX)")
            for f in waiting[room:]
        ]
        waiting = waiting[:room]
        if waiting:
            await _wait(conn, waiting)
    outcome = await _refuse(conn, refused, limits)
    return FeedbackOutcome(applied.applied, applied.superseded, len(waiting), len(released), outcome.refused)


async def _apply_joined(
    conn: asyncpg.Connection, joined: list[tuple[Feedback, join.CallFacts]], limits: FeedbackLimits
) -> join.Applied:
    keys = sorted({join.key_of(f, c) for f, c in joined})
    rows = await conn.fetch(LOCK_SCORES, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
    stored = {
        (r["call_event_id"], r["name"], r["source"]): join.Stored(
            r["score_micro"], r["occurred_at"], r["event_id"], r["updates"]
        )
        for r in rows
    }
    applied = join.apply(joined, stored, limits.max_updates)
    comments = {join.key_of(f, c): f.comment for f, c in joined if f.comment is not None}
    changed = sorted(applied.stored.items())
    if changed:
        call_at = {c.event_id: float(c.minute) for _, c in joined}
        await conn.execute(
            SET_SCORES,
            [k[0] for k, _ in changed],
            [k[1] for k, _ in changed],
            [k[2] for k, _ in changed],
            [s.score_micro for _, s in changed],
            [s.occurred_at for _, s in changed],
            [s.event_id for _, s in changed],
            [s.updates for _, s in changed],
            [call_at[k[0]] for k, _ in changed],
            [comments.get(k) for k, _ in changed],
        )
    await _add_quality(conn, applied.deltas)
    return applied


def _sums(tallies: list[join.QualityTally]) -> list[list[int]]:
    return [[t.count for t in tallies], [t.sum_micro for t in tallies], [t.squares for t in tallies]]


async def _add_quality(conn: asyncpg.Connection, deltas: join.QualityDeltas) -> None:
    models = sorted((k, t) for k, t in deltas.by_model.items() if not t.empty)
    if models:
        keys = [k for k, _ in models]
        await conn.execute(
            UPSERT_MODEL_QUALITY, *([k[i] for k in keys] for i in range(3)), *_sums([t for _, t in models])
        )
    minutes = sorted((k, t) for k, t in deltas.by_minute.items() if not t.empty)
    if minutes:
        keys2 = [k for k, _ in minutes]
        await conn.execute(
            UPSERT_MINUTE_QUALITY,
            [float(k[0]) for k in keys2],
            *([k[i] for k in keys2] for i in range(1, 5)),
            *_sums([t for _, t in minutes]),
        )
    arms = sorted((k, t) for k, t in deltas.by_arm.items() if not t.empty)
    if arms:
        keys3 = [k for k, _ in arms]
        await conn.execute(UPSERT_ARM_QUALITY, *([k[i] for k in keys3] for i in range(3)), *_sums([t for _, t in arms]))


async def _wait(conn: asyncpg.Connection, waiting: list[Feedback]) -> None:
    await conn.execute(WAIT, *columns(waiting, 8))  # a Feedback's fields are WAIT's columns, in order


async def _refuse(
    conn: asyncpg.Connection, refused: list[tuple[Feedback, str, str]], limits: FeedbackLimits
) -> FeedbackOutcome:
    if not refused:
        return FeedbackOutcome(refused={})
    await conn.execute(
        TO_OUTBOX,
        limits.topic,
        [reason for _, reason, _ in refused],
        [detail for _, _, detail in refused],
        [dead_letter_value(f) for f, _, _ in refused],
    )
    counts: dict[str, int] = {}
    for _, reason, _ in refused:
        counts[reason] = counts.get(reason, 0) + 1
    return FeedbackOutcome(refused=counts)


async def expire(conn: asyncpg.Connection, limits: FeedbackLimits, batch_size: int = 50_000) -> tuple[int, int]:
    """Feedback that waited FEEDBACK_WINDOW_S for its call goes to the outbox (unknown_call); the scores
    of calls already forgotten are too. Returns (expired feedback, forgotten scores)."""
    detail = f"no call with this call_event_id or request_id arrived within {limits.window_s} s (FEEDBACK_WINDOW_S)"
    async with conn.transaction():
        status = await conn.execute(EXPIRE_PENDING, float(limits.window_s), batch_size, limits.topic, detail)
        expired = int(status.split()[-1])
    forgotten = 0
    while True:
        async with conn.transaction():  # never between a flush's read of a call and of its scores
            await conn.execute(JOIN_EXCLUSIVE)
            count = int((await conn.execute(PRUNE_SCORES, float(limits.window_s), batch_size)).split()[-1])
        forgotten += count
        if count < batch_size:
            return expired, forgotten


async def drain_outbox(
    conn: asyncpg.Connection, send: Callable[[list[asyncpg.Record]], Awaitable[None]], limit: int = 500
) -> int:
    """Hand up to `limit` outbox rows to `send` and delete them once it returned (acknowledged by Kafka):
    at least once, and rows another pod holds are skipped."""
    async with conn.transaction():
        rows = await conn.fetch(TAKE_OUTBOX, limit)
        if rows:
            await send(rows)
            await conn.execute(CLEAR_OUTBOX, [r["id"] for r in rows])
    return len(rows)
