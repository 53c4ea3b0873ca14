"""Several worker pods over a 12-partition topic: one is killed, one is added, totals stay exact,
every partition ends owned and written, and only the leader publishes heuristics."""

import asyncio

import orjson

from tests.integration.harness import (
    assert_matches_ledger,
    assert_patterns_match_ledger,
    end_offsets,
    read_topic,
    wait_drained,
)
from worker.simulation.producer import ensure_topics, simulate

FAST_ROUTING = {"heuristics_interval_s": 3.0, "degradation_check_s": 1.0}


async def test_three_workers_one_killed_one_added_over_twelve_partitions(settings, workers, pool):
    await ensure_topics(settings, partitions=12)
    pods = [workers(**FAST_ROUTING) for _ in range(3)]
    for pod in pods:
        await pod.wait_ready()
    traffic = asyncio.create_task(simulate(settings, count=30_000, rate=2500, seed=91, progress=False))
    await asyncio.sleep(3)
    pods[1].kill9()
    await asyncio.sleep(3)
    added = workers(**FAST_ROUTING)
    await added.wait_ready()
    result = await traffic
    survivors = [pods[0], pods[2], added]
    await wait_drained(settings, pool, workers=survivors, timeout=120)
    await assert_matches_ledger(pool, result.ledger)
    await assert_patterns_match_ledger(pool, result.ledger)

    ends = await end_offsets(settings)
    stored = {
        (r["topic"], r["partition"]): r["next_offset"]
        for r in await pool.fetch(
            "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer_group = $1",
            settings.consumer_group,
        )
    }
    # every partition owned and written (-1: owned, nothing to write yet: the idle commands topic)
    assert len(ends) == 36 + settings.tool_commands_partitions  # 3 input topics x 12 partitions
    assert all(stored[tp] == end or (end == 0 and stored[tp] == -1) for tp, end in ends.items())

    await asyncio.sleep(4)  # a period or two of heuristics after the group settled
    leaders = [pod for pod in survivors if (await pod.readiness())[1]["leader"]]
    assert len(leaders) == 1
    records = await read_topic(settings, settings.topic_heuristics, timeout=5)
    by_version: dict = {}
    for r in records:  # a version re-sent after a crash must be the same record, never a rival decision
        by_version.setdefault((r.key, orjson.loads(r.value)["version"]), set()).add(r.value)
    assert by_version and all(len(values) == 1 for values in by_version.values()), "rival records for one version"
    publishers = {dict(r.headers)["publisher"].decode() for r in records}
    assert f"{leaders[0].worker_host}:{leaders[0].proc.pid}" in publishers
