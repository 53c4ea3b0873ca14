"""A topic deleted and recreated under the worker: its new messages sit below the stored offset.
The worker must not skip them as "already counted": it holds the partition, says so (log, metric,
readiness), and resumes once an operator re-anchors it; then every new message is counted once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests import samples
from tests.integration.harness import settings_env, wait_drained
from tests.integration.test_routing import wait_for
from worker.simulation.producer import ensure_topics


async def _send(settings, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for _ in range(count):
            await producer.send(
                settings.topic_calls_completed, orjson.dumps(samples.completed(event_id=str(uuid.uuid4()))), partition=0
            )
        await producer.flush()
    finally:
        await producer.stop()


async def _recreate(settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([settings.topic_calls_completed])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                await admin.create_topics([NewTopic(settings.topic_calls_completed, 1, 1)])
                return
            except Exception:  # noqa: BLE001 - the deletion is still in progress
                await asyncio.sleep(0.5)
        raise AssertionError("the topic could not be recreated within 60 s")
    finally:
        await admin.close()


async def test_a_recreated_topic_is_held_and_counted_after_a_reanchor(settings, workers, pool):
    await ensure_topics(settings, partitions=1)
    worker = workers()
    await worker.wait_ready()
    await _send(settings, 300)
    await wait_drained(settings, pool, workers=[worker])
    assert await pool.fetchval("SELECT sum(total_calls) FROM model_performance") == 300

    await _recreate(settings)
    await _send(settings, 100)  # offsets 0..99, all below the stored 300

    async def held():
        answer = await worker.readiness()
        return answer and answer[0] == 503 and answer[1]["partitions_offset_ahead"] and answer

    status, body = await wait_for(held, 60, "readiness to report the partition stored past the log's end")
    assert any("reanchor" in reason for reason in body["not_ready_because"]), body
    assert body["partitions_offset_ahead"][0]["stored_offset"] == 300
    assert (await worker.metrics())["telemetry_partitions_offset_ahead"] == 1
    await asyncio.sleep(3)
    assert await pool.fetchval("SELECT sum(total_calls) FROM model_performance") == 300  # nothing skipped, nothing
    assert "telemetry-worker offsets reanchor" in worker.log_tail(500)

    done = _reanchor(settings, settings.topic_calls_completed)
    assert done.returncode == 0 and "stored offset 300 -> 0" in done.stdout, done.stdout + done.stderr

    async def counted():
        return await pool.fetchval("SELECT sum(total_calls) FROM model_performance") == 400

    await wait_for(counted, 30, "the 100 new events to be counted after the re-anchor")
    await wait_for(lambda: _ready(worker), 30, "readiness to recover")
    assert (await worker.metrics())["telemetry_partitions_offset_ahead"] == 0

    # the same command on the healthy topic would read counted events again: refused without --rewind
    again = _reanchor(settings, settings.topic_calls_completed)
    said = " ".join(again.stderr.split())  # rich wraps its lines
    assert again.returncode == 2 and "DEDUPE_WINDOW_S" in said and "--rewind" in said, said
    stray = _reanchor(settings, settings.topic_heuristics)
    assert stray.returncode == 2 and "does not consume" in " ".join(stray.stderr.split()), stray.stderr
    assert await pool.fetchval("SELECT sum(total_calls) FROM model_performance") == 400  # nothing moved


def _reanchor(settings, topic: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "offsets", "reanchor", "--topic", topic],
        env={**settings_env(settings), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _ready(worker) -> bool:
    answer = await worker.readiness()
    return bool(answer and answer[0] == 200)
