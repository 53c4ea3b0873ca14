"""The tool surface under abuse: heavy reads never take ingestion's connections, answers name the
caller's mistake (422, 413, 408) instead of "unavailable, retry", and a trickling body is cut off."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from tests import samples
from tests.integration.harness import wait_drained
from worker.simulation.producer import ensure_topics

TOKEN = "storm-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _url(worker, name: str) -> str:
    return f"http://127.0.0.1:{worker.settings.web_port}/tools/{name}"


async def test_reads_stuck_in_postgresql_leave_ingestion_counting(settings, workers, pool):
    await ensure_topics(settings, partitions=2)
    worker = workers(tools_token=TOKEN, tools_db_connections=2, tools_query_timeout_s=3.0)
    await worker.wait_ready()
    blocker = await asyncpg.connect(settings.database_url)
    await blocker.execute("BEGIN; LOCK TABLE regression_tests IN ACCESS EXCLUSIVE MODE")  # every read of it waits
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        async with aiohttp.ClientSession() as http:

            async def heavy():
                started = time.monotonic()
                async with http.post(
                    _url(worker, "analyze_metrics"), json={}, headers=AUTH, timeout=aiohttp.ClientTimeout(total=60)
                ) as r:
                    return r.status, await r.json(), time.monotonic() - started

            reads = [asyncio.create_task(heavy()) for _ in range(8)]
            await asyncio.sleep(0.5)
            for _ in range(200):
                await producer.send(
                    settings.topic_calls_completed, orjson.dumps(samples.completed(event_id=str(uuid.uuid4())))
                )
            await producer.flush()
            started = time.monotonic()
            await wait_drained(settings, pool, workers=[worker], timeout=30)
            counted_after = time.monotonic() - started
            assert await pool.fetchval("SELECT sum(total_calls) FROM model_performance") == 200
            answers = await asyncio.gather(*reads)
    finally:
        await blocker.execute("ROLLBACK")
        await blocker.close()
        await producer.stop()
    assert counted_after < 10, f"ingestion waited {counted_after:.1f} s behind the reads"
    assert all(status == 503 and "TOOLS_QUERY_TIMEOUT_S" in body["message"] for status, body, _ in answers), answers
    assert max(seconds for *_, seconds in answers) < 30  # each read is cancelled, none hangs


async def test_mistakes_are_client_errors_and_a_trickling_body_is_cut_off(settings, workers):
    await ensure_topics(settings, partitions=1)
    worker = workers(tools_token=TOKEN, tools_body_timeout_s=1.0)
    await worker.wait_ready()
    async with aiohttp.ClientSession() as http:
        async with http.get(_url(worker, "get_bug_patterns"), params={"offset": str(2**63)}, headers=AUTH) as r:
            body = await r.json()
            assert r.status == 422 and body["detail"][0]["field"] == "offset", body
        async with http.get(_url(worker, "get_bug_patterns"), params={"offset": "1000000"}, headers=AUTH) as r:
            assert r.status == 200 and (await r.json())["items"] == []
        huge = {"name": "m", "value": 1.0, "unit": "ms", "context": {f"k{i}": "v" * 900 for i in range(700)}}
        async with http.post(_url(worker, "record_metric"), json=huge, headers=AUTH) as r:
            body = await r.json()
            assert r.status in (413, 422) and "retry" not in body["message"].replace("a retry cannot", ""), body

    reader, writer = await asyncio.open_connection("127.0.0.1", worker.settings.web_port)
    try:
        writer.write(
            b"POST /tools/record_metric HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b'\r\nContent-Length: 100\r\n\r\n{"na'
        )
        await writer.drain()
        started = time.monotonic()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert b" 408 " in status_line, status_line
        # then the server closes the connection, after at most aiohttp's 10 s of lingering: read() ends
        rest = await asyncio.wait_for(reader.read(), 20)
        assert b"TOOLS_BODY_TIMEOUT_S" in rest and time.monotonic() - started < 15
    finally:
        writer.close()
