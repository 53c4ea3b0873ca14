"""Exactly-once under the events that break naive consumers: SIGKILL mid-stream, and workers
joining and leaving the group while traffic flows."""

import asyncio
import random

from tests.integration.harness import (
    assert_matches_ledger,
    assert_patterns_match_ledger,
    dead_letters,
    source_of,
    wait_drained,
)
from worker.simulator import ensure_topics, simulate


async def test_kill9_mid_stream_then_restart_loses_and_doubles_nothing(settings, workers, pool):
    await ensure_topics(settings, partitions=4)
    worker = workers()
    await worker.wait_ready()
    traffic = asyncio.create_task(simulate(settings, count=40_000, rate=1200, envelope=1, seed=5,
                                           resend_fraction=0.02, invalid_fraction=0.005, progress=False))
    rng = random.Random(99)
    kills = 0
    while not traffic.done() and kills < 3:
        await worker.wait_flushing()  # kill while it works, not while it is still joining the group
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        worker.kill9()
        kills += 1
        worker = workers()
    result = await traffic
    assert kills == 3, "the traffic ended before three kills: make it longer"
    await worker.wait_ready()
    await wait_drained(settings, pool, workers=[worker])
    await assert_matches_ledger(pool, result.ledger)
    await assert_patterns_match_ledger(pool, result.ledger)
    duplicates = await pool.fetchval(
        "SELECT sum(metric_value) FROM performance_metrics WHERE metric_name = 'events_duplicate'")
    assert duplicates == result.resent
    assert len({source_of(r) for r in await dead_letters(settings)}) == result.invalid


async def test_workers_joining_and_leaving_mid_stream_keep_totals_exact(settings, workers, pool):
    await ensure_topics(settings, partitions=6)
    first = workers()
    await first.wait_ready()
    traffic = asyncio.create_task(simulate(settings, count=24_000, rate=4000, envelope=10, seed=8, progress=False))
    await asyncio.sleep(1.5)
    second = workers()  # joins: partitions move while the first worker is flushing
    await second.wait_ready()
    await asyncio.sleep(1.5)
    third = workers()
    await third.wait_ready()
    await asyncio.sleep(1.0)
    assert first.terminate() == 0  # leaves gracefully: final flush, then its partitions move
    result = await traffic
    await wait_drained(settings, pool, workers=[second, third])
    await assert_matches_ledger(pool, result.ledger)
    await assert_patterns_match_ledger(pool, result.ledger)
