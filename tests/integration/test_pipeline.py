"""The worker process end to end on real Kafka and PostgreSQL: exact totals, re-sends, envelopes,
dead letters, and a graceful stop that leaves nothing behind."""

import orjson
from aiokafka import AIOKafkaProducer

from tests import samples
from tests.integration.harness import assert_matches_ledger, dead_letters, source_of, wait_drained
from worker.simulation.producer import ensure_topics, simulate
from worker.simulation.traffic import Ledger


async def test_totals_are_exact_with_envelopes_resends_and_invalid_input(settings, workers, pool):
    worker = workers()
    await ensure_topics(settings, partitions=4)
    await worker.wait_ready()
    single = await simulate(settings, count=6000, seed=1, resend_fraction=0.03, invalid_fraction=0.01, progress=False)
    enveloped = await simulate(
        settings, count=6000, seed=2, envelope=50, resend_fraction=0.03, invalid_fraction=0.01, progress=False
    )
    await wait_drained(settings, pool, workers=[worker])

    ledger = Ledger().merge(single.ledger).merge(enveloped.ledger)
    await assert_matches_ledger(pool, ledger)

    invalid = single.invalid + enveloped.invalid
    letters = await dead_letters(settings)
    assert len({source_of(r) for r in letters}) == invalid
    metric = lambda name: pool.fetchval(
        "SELECT coalesce(sum(metric_value), 0) FROM performance_metrics WHERE metric_name = $1", name
    )
    assert await metric("events_dead_lettered") == invalid
    assert await metric("events_duplicate") == single.resent + enveloped.resent

    exported = await worker.metrics()  # the same story on /metrics, for Prometheus
    assert exported["telemetry_events_counted_total"] == ledger.calls
    assert exported["telemetry_events_duplicate_total"] == single.resent + enveloped.resent
    assert sum(v for k, v in exported.items() if k.startswith("telemetry_dead_letters_total|")) == invalid
    assert exported["telemetry_flush_seconds_count"] >= 1 and exported["telemetry_flush_errors_total"] == 0
    # FLUSH_MAX_EVENTS (2000 here) bounds a batch with envelopes too: at most one envelope (50) more
    assert exported["telemetry_batch_events_bucket|le=2500.0"] == exported["telemetry_batch_events_count"]
    for model_id in {m for m, _ in ledger.by_model_task}:
        tallies = [t for (m, _), t in ledger.by_model_task.items() if m == model_id]
        assert exported[f"telemetry_calls_total|model_id={model_id}|outcome=success"] == sum(
            t.successes for t in tallies
        )
        assert exported[f"telemetry_calls_total|model_id={model_id}|outcome=failure"] == sum(
            t.calls - t.successes for t in tallies
        )
    lags = {k: v for k, v in exported.items() if k.startswith("telemetry_consumer_lag_messages|")}
    # 3 input topics (completed, failed, feedback) x 4 partitions and the commands topic, all caught up
    assert len(lags) == 12 + settings.tool_commands_partitions and set(lags.values()) == {0.0}
    assert worker.terminate() == 0


async def test_dead_letters_say_why_and_where_from(settings, workers, pool):
    await ensure_topics(settings, partitions=1)
    worker = workers()
    await worker.wait_ready()
    good = samples.completed()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        topic = settings.topic_calls_completed
        await producer.send_and_wait(topic, b"{oops")
        await producer.send_and_wait(topic, orjson.dumps([good, {**samples.completed(), "latency_ms": "fast"}]))
        deep: object = 1
        for _ in range(40):
            deep = [deep]
        await producer.send_and_wait(topic, orjson.dumps(samples.completed(deep=deep)))
        await producer.send_and_wait(topic, orjson.dumps(good))  # a re-send of the envelope's good event
    finally:
        await producer.stop()
    await wait_drained(settings, pool, workers=[worker])

    letters = sorted(await dead_letters(settings), key=lambda r: source_of(r)[2])
    headers = [{k: v.decode() for k, v in r.headers} for r in letters]
    assert [(h["dlq.reason"], h["dlq.source_offset"], h.get("dlq.envelope_index")) for h in headers] == [
        ("not_json", "0", None),
        ("invalid_event", "1", "1"),
        ("too_deep", "2", None),
    ]
    assert all(h["dlq.source_topic"] == settings.topic_calls_completed for h in headers)
    assert "latency_ms" in headers[1]["dlq.detail"]
    assert letters[0].value == b"{oops"
    assert orjson.loads(letters[1].value)["latency_ms"] == "fast"
    assert await pool.fetchval("SELECT sum(total_calls) FROM model_performance") == 1
