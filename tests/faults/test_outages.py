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
from worker.simulation.producer import ensure_topics, simulate


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
    assert rss_peak - rss_before < 64 * 2**20, (
        f"memory grew {(rss_peak - rss_before) / 2**20:.0f} MiB during the outage"
    )
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
    lines_before = len(worker.log_tail(1_000_000).splitlines())
    local_services.kafka_stop()
    deadline, reasons = time.monotonic() + 20, []
    while time.monotonic() < deadline:  # readiness says so while the broker is away
        answer = await worker.readiness()
        reasons = answer[1].get("not_ready_because", []) if answer else reasons
        if answer and answer[0] == 503 and "the Kafka broker does not answer" in reasons:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"/readyz did not report the absent broker within 20 s: {reasons}")
    await asyncio.sleep(8)
    outage_lines = len(worker.log_tail(1_000_000).splitlines()) - lines_before
    local_services.kafka_start()
    after = await simulate(settings, count=8_000, rate=2000, seed=72, progress=False)
    await worker.wait_ready(timeout=90)
    await wait_drained(settings, pool, workers=[worker])
    ledger = before.ledger.merge(after.ledger)
    await assert_matches_ledger(pool, ledger)
    await assert_patterns_match_ledger(pool, ledger)
    assert worker.proc.poll() is None, "the worker must ride out a broker restart"
    assert outage_lines < 300, f"{outage_lines} log lines in a short broker outage"  # rate limited per template


async def test_five_kill9_at_random_moments(settings, workers, pool):
    await kill9_scenario(settings, workers, pool, kills=5, seed=17)


async def test_a_pod_frozen_inside_its_flush_transaction_neither_blocks_the_group_nor_counts_twice(
    settings, workers, pool
):
    """The first worker freezes (SIGSTOP) inside its flush transaction, holding its partitions' offset
    locks. The group gives the partitions to a second worker, which can write only once PostgreSQL ends
    the frozen transaction (IDLE_IN_TRANSACTION_TIMEOUT_S); when the first thaws, its stale write must
    meet the fence, not be added."""
    await ensure_topics(settings, partitions=4)
    first = workers(flush_interval_ms=2000, idle_in_transaction_timeout_s=5.0)
    await first.wait_ready()
    traffic = asyncio.create_task(simulate(settings, count=20_000, rate=1500, seed=81, progress=False))
    await first.wait_flushing()
    blocker = await asyncpg.connect(settings.database_url)
    try:
        await blocker.execute("BEGIN; LOCK TABLE model_performance IN ACCESS EXCLUSIVE MODE")
        deadline = time.monotonic() + 30  # the first's next flush locks its offsets, then waits here
        while time.monotonic() < deadline and not await pool.fetchval(WAITING_ON_A_LOCK):
            await asyncio.sleep(0.1)
        assert await pool.fetchval(WAITING_ON_A_LOCK), "the first worker's flush never reached model_performance"
        os.kill(first.proc.pid, signal.SIGSTOP)
    finally:
        await blocker.execute("ROLLBACK")  # the frozen flush's statement completes; its transaction stays open
        await blocker.close()
    second = workers(idle_in_transaction_timeout_s=5.0)
    await second.wait_flushing(timeout=60)  # after the first's Kafka session and its transaction both end
    await asyncio.sleep(2.0)
    os.kill(first.proc.pid, signal.SIGCONT)
    result = await traffic
    await wait_drained(settings, pool, workers=[first, second])
    await assert_matches_ledger(pool, result.ledger)
    await assert_patterns_match_ledger(pool, result.ledger)
    deadline, fenced = time.monotonic() + 120, 0  # the thawed worker's write fails, is retried, is fenced
    while time.monotonic() < deadline and fenced < 1:
        answer = await first.readiness()
        fenced = answer[1]["stats"]["fenced"] if answer and answer[1].get("stats") else 0
        await asyncio.sleep(0.5)
    assert fenced >= 1, "the thawed worker's stale batch should have met the fence"


WAITING_ON_A_LOCK = """SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%model_performance%'"""


async def test_a_flush_blocked_by_a_lock_makes_the_pod_not_ready_then_counts_exactly(settings, workers, pool):
    await ensure_topics(settings, partitions=2)
    worker = workers()
    await worker.wait_ready()
    blocker = await asyncpg.connect(settings.database_url)
    await blocker.execute("BEGIN; LOCK TABLE model_performance IN ACCESS EXCLUSIVE MODE")
    try:
        traffic = asyncio.create_task(simulate(settings, count=2_000, rate=500, seed=81, progress=False))
        deadline, reasons = time.monotonic() + 25, []
        while time.monotonic() < deadline:
            answer = await worker.readiness()
            reasons = answer[1].get("not_ready_because", []) if answer else reasons
            if answer and answer[0] == 503 and any("in flight" in r for r in reasons):
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"/readyz stayed green while the flush was blocked: {reasons}")
    finally:
        await blocker.execute("ROLLBACK")
        await blocker.close()
    result = await traffic
    await wait_drained(settings, pool, workers=[worker])
    await assert_matches_ledger(pool, result.ledger)
    assert (await worker.wait_ready())["ready"]
