"""Exactly-once under the events that break naive consumers: SIGKILL mid-stream, and workers
joining and leaving the group while traffic flows."""

import asyncio

from tests.integration.harness import assert_matches_ledger, assert_patterns_match_ledger, kill9_scenario, wait_drained
from worker.simulation.producer import ensure_topics, simulate


async def test_kill9_mid_stream_then_restart_loses_and_doubles_nothing(settings, workers, pool):
    await kill9_scenario(settings, workers, pool, kills=3, seed=5)


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
