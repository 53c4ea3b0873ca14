"""Outages and crashes on real services: each test ends with an exact comparison of the database
against the simulator's independent count of what was produced."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import asyncpg
import psutil

from tests.integration.harness import (
    assert_matches_ledger,
    assert_patterns_match_ledger,
    kill9_scenario,
    wait_drained,
)
from worker.simulator import ensure_topics, simulate


async def test_postgres_down_for_30_seconds(settings, workers, local_services):
    await ensure_topics(settings, partitions=4)
    worker = workers(retry_backoff_max_s=2.0)
    await worker.wait_ready()
    traffic = asyncio.create_task(simulate(settings, count=30_000, rate=700, seed=61, progress=False))
    await asyncio.sleep(5)
    process = psutil.Process(worker.proc.pid)
    rss_before = process.memory_info().rss
    local_services.pg_stop()
    stopped = time.monotonic()
    not_ready, rss_peak = False, rss_before
    while time.monotonic() - stopped < 30:
        answer = await worker.readiness()
        not_ready |= answer is not None and answer[0] == 503
        rss_peak = max(rss_peak, process.memory_info().rss)
        await asyncio.sleep(1)
    local_services.pg_start()
    result = await traffic

    assert not_ready, "/readyz should answer 503 while flushes fail"
    assert rss_peak - rss_before < 64 * 2**20, f"memory grew {(rss_peak - rss_before) / 2**20:.0f} MiB during the outage"
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await wait_drained(settings, pool, workers=[worker])
        await assert_matches_ledger(pool, result.ledger)
        await assert_patterns_match_ledger(pool, result.ledger)
    finally:
        await pool.close()
    stats = (await worker.wait_ready())["stats"]
    assert stats["flush_errors"] > 0 and worker.proc.poll() is None


async def test_kafka_broker_stopped_and_restarted_mid_stream(settings, workers, pool, local_services):
    await ensure_topics(settings, partitions=4)
    worker = workers()
    await worker.wait_ready()
    before = await simulate(settings, count=8_000, rate=2000, seed=71, progress=False)
    local_services.kafka_stop()
    await asyncio.sleep(8)
    local_services.kafka_start()
    after = await simulate(settings, count=8_000, rate=2000, seed=72, progress=False)
    await worker.wait_ready(timeout=90)
    await wait_drained(settings, pool, workers=[worker])
    ledger = before.ledger.merge(after.ledger)
    await assert_matches_ledger(pool, ledger)
    await assert_patterns_match_ledger(pool, ledger)
    assert worker.proc.poll() is None, "the worker must ride out a broker restart"


async def test_five_kill9_at_random_moments(settings, workers, pool):
    await kill9_scenario(settings, workers, pool, kills=5, seed=17)


async def test_rebalance_while_a_flush_is_in_flight_is_fenced(settings, workers, pool):
    """The first worker freezes (SIGSTOP) holding an unwritten batch; the group gives its partitions to a
    second worker, which writes; when the first thaws, its stale write must be fenced, not added."""
    await ensure_topics(settings, partitions=4)
    first = workers(flush_interval_ms=2000)  # long batches: there is almost always one in flight
    await first.wait_ready()
    traffic = asyncio.create_task(simulate(settings, count=20_000, rate=1500, seed=81, progress=False))
    await first.wait_flushing()
    await asyncio.sleep(1.0)
    os.kill(first.proc.pid, signal.SIGSTOP)
    second = workers()
    await second.wait_flushing(timeout=60)  # it owns the partitions only after the first's session expires
    await asyncio.sleep(2.0)
    os.kill(first.proc.pid, signal.SIGCONT)
    result = await traffic
    await wait_drained(settings, pool, workers=[first, second])
    await assert_matches_ledger(pool, result.ledger)
    await assert_patterns_match_ledger(pool, result.ledger)
    fenced = (await first.wait_ready(timeout=60))["stats"]["fenced"]
    assert fenced >= 1, "the thawed worker's stale batch should have met the fence"
