"""Feedback on calls, joined on real Kafka and PostgreSQL: exact quality sums whatever the order
(feedback before its call, replacements out of order, re-sends), the request-id join, and every bound
dead-lettered with its reason."""

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import orjson
from aiokafka import AIOKafkaProducer

from tests import samples
from tests.integration.harness import assert_quality_matches_ledger, dead_letters, wait_drained
from worker.simulation.producer import ensure_topics, simulate


async def _quality(pool) -> dict[tuple[str, str, str], tuple[int, Decimal]]:
    rows = await pool.fetch("SELECT model_id, task_type, name, feedback_count, score_sum FROM model_quality")
    return {(r["model_id"], r["task_type"], r["name"]): (r["feedback_count"], r["score_sum"]) for r in rows}


async def test_quality_sums_equal_the_final_scores_with_early_replaced_and_resent_feedback(settings, workers, pool):
    worker = workers()
    await ensure_topics(settings, partitions=4)
    await worker.wait_ready()
    result = await simulate(settings, count=4000, seed=11, feedback_fraction=0.4, resend_fraction=0.05, progress=False)
    await wait_drained(settings, pool, workers=[worker])
    want = {key: (n, Decimal(total) / 1_000_000) for key, (n, total) in result.ledger.quality.items()}
    assert result.feedback > 1000 and want
    await assert_quality_matches_ledger(pool, result.ledger)
    minutes = await pool.fetch(
        "SELECT name, sum(feedback_count) AS n, sum(score_sum) AS s FROM model_quality_minutes GROUP BY name"
    )
    assert [(r["name"], r["n"], r["s"]) for r in minutes] == [
        ("correctness", sum(n for n, _ in want.values()), sum(s for _, s in want.values()))
    ]
    # the counters follow the database by up to one turn of the consume loop (a write is accounted for after it
    # committed): wait for the last release to be counted
    for _ in range(50):
        exported = await worker.metrics()
        waiting = exported["telemetry_feedback_total|outcome=waiting"]
        if exported["telemetry_feedback_total|outcome=released"] == waiting:
            break
        await asyncio.sleep(0.2)
    assert waiting >= 1  # some did arrive before their call
    assert exported["telemetry_feedback_total|outcome=released"] == waiting
    assert exported["telemetry_feedback_total|outcome=refused"] == 0
    assert worker.terminate() == 0


async def test_request_id_join_bounds_and_unknown_calls_are_dead_lettered_with_the_reason(settings, workers, pool):
    await ensure_topics(settings, partitions=1)
    worker = workers(feedback_window_s=6, feedback_max_names=2, feedback_max_updates=2)
    await worker.wait_ready()
    now = dt.datetime.now(dt.UTC)
    call = {"request_id": "req-answered", "task_type": "chat", "occurred_at": now.isoformat()}  # inside the window
    answered = samples.completed(model_id="gpt-4o", **call)
    retried = samples.failed(model_id="gpt-4o-mini", **call)

    def vote(name: str, score: float, at_s: float, **call) -> bytes:
        at = (now + dt.timedelta(seconds=at_s)).isoformat()
        body = {"event_id": str(uuid.uuid4()), "name": name, "score": score, "source": "user", "occurred_at": at}
        return orjson.dumps(body | call)

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_calls_failed, orjson.dumps(retried))
        await producer.send_and_wait(settings.topic_calls_completed, orjson.dumps(answered))
        await wait_drained(settings, pool, workers=[worker])
        by_request = {"request_id": "req-answered"}
        for message in (
            vote("thumbs", 1.0, 0, **by_request),  # joins the answered call, not the failed attempt
            vote("thumbs", 0.0, 2, **by_request),  # a later vote replaces it
            vote("thumbs", 1.0, 1, **by_request),  # older than the one that counts: superseded, and the flood bound
            vote("correctness", 0.5, 0, call_event_id=answered["event_id"]),
            vote("style", 0.5, 0, call_event_id=answered["event_id"]),  # a third name: past FEEDBACK_MAX_NAMES
            vote("thumbs", 1.0, 3, call_event_id=str(uuid.uuid4())),  # a call that never comes
            b'{"event_id": "not-a-uuid", "name": "thumbs", "score": 2}',
        ):
            await producer.send_and_wait(settings.topic_calls_feedback, message)
    finally:
        await producer.stop()
    await wait_drained(settings, pool, workers=[worker])
    assert await _quality(pool) == {
        ("gpt-4o", "chat", "thumbs"): (1, Decimal(0)),
        ("gpt-4o", "chat", "correctness"): (1, Decimal("0.5")),
    }
    deadline = asyncio.get_running_loop().time() + 40  # the window (6 s), the expiry check, the outbox
    reasons: dict[str, str] = {}
    while asyncio.get_running_loop().time() < deadline and "unknown_call" not in reasons:
        await asyncio.sleep(1)
        for record in await dead_letters(settings, timeout=2):
            h = {k: v.decode() for k, v in record.headers}
            reasons[h["dlq.reason"]] = h["dlq.detail"]
    assert set(reasons) == {"invalid_event", "feedback_name_limit", "feedback_flood", "unknown_call"}, reasons
    assert "FEEDBACK_MAX_NAMES" in reasons["feedback_name_limit"]
    assert "FEEDBACK_WINDOW_S" in reasons["unknown_call"]
    assert "score" in reasons["invalid_event"] and "event_id" in reasons["invalid_event"]
    assert await pool.fetchval("SELECT count(*) FROM feedback_pending") == 0
    assert worker.terminate() == 0
