"""Signed routing records on real Kafka: a router given the worker's public key follows the worker's
rules and skips a stranger's record for the same key, which a router without keys would follow."""

import asyncio

import orjson
from aiokafka import AIOKafkaProducer

from tests.unit.gateway.test_router_client import record
from worker.gateway.router import HeuristicsSubscriber, RoutingTable
from worker.routing.signing import generate
from worker.simulation.producer import ensure_topics, simulate


async def test_a_router_with_the_key_follows_only_the_worker(settings, workers):
    private, public = generate()
    await ensure_topics(settings, partitions=1)
    worker = workers(routing_signing_key=private, heuristics_interval_s=2.0)
    await worker.wait_ready()
    await simulate(settings, count=600, seed=3, task_types=("coding",), progress=False)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    signed, open_ = RoutingTable(public_keys=[public]), RoutingTable()
    subscribers = [
        HeuristicsSubscriber(settings.kafka_bootstrap_servers, t, topic=settings.topic_heuristics)
        for t in (signed, open_)
    ]
    await producer.start()
    try:
        for _ in range(120):  # the worker's first rule for coding
            await asyncio.sleep(0.5)
            probe = RoutingTable()
            sub = HeuristicsSubscriber(settings.kafka_bootstrap_servers, probe, topic=settings.topic_heuristics)
            await sub.start()
            await asyncio.wait_for(sub.caught_up.wait(), 30)
            await sub.stop()
            if probe.choose("coding") is not None:
                break
        genuine = probe.choose("coding")
        assert genuine is not None
        forged = record("learned:coding", genuine.version + 1000, task_type="coding", model="attacker")
        await producer.send_and_wait(settings.topic_heuristics, forged, key=b"coding")  # unsigned, plausible version
        for sub in subscribers:
            await sub.start()
            await asyncio.wait_for(sub.caught_up.wait(), 30)
    finally:
        await producer.stop()
        for sub in subscribers:
            await sub.stop()
    assert open_.choose("coding").preferred_model == "attacker"  # what the issue found: anyone could steer it
    kept = signed.choose("coding")
    assert kept is not None and kept.preferred_model != "attacker" and kept.version >= genuine.version
    assert signed.refused >= 1 and "unsigned" in signed.last_refusal
    assert orjson.loads(forged)["weights"] == {"attacker": 1.0}
    assert worker.terminate() == 0
