"""LiteLLM in the loop, on the real Kafka, PostgreSQL and worker: a real litellm.Router (mock
responses, no network) reports through TelemetryLogger and routes through HeuristicsRoutingPlugin;
one deployment starts failing, loses its traffic, and gets it back after it recovers."""

import asyncio
import time

from examples.litellm_gateway import LiteLLMGateway
from tests.integration.test_routing import OBEYED, wait_for
from worker.simulation.producer import ensure_topics

GOOD = "openai/acme-good"
HEALTHY_HISTORY_S = 150


async def test_a_failing_deployment_loses_its_traffic_and_gets_it_back(settings, workers, pool):
    await ensure_topics(settings, partitions=2)
    worker = workers(**OBEYED)
    await worker.wait_ready()
    gateway, subscriber, stop, traffic = await LiteLLMGateway.running(settings)
    table = gateway.table
    began = time.monotonic()
    try:
        await wait_for(
            lambda: all((r := table.choose(t)) and r.weights.get(GOOD, 0) > 0.5 for t in ("coding", "chat")),
            60,
            "rules that prefer the good deployment",
        )
        # history outside the incident: once restored, the incident's minutes no longer count, the rest does
        await asyncio.sleep(max(0.0, HEALTHY_HISTORY_S - (time.monotonic() - began)))
        healthy = time.monotonic() - 3
        before = gateway.shares(healthy, time.monotonic())[GOOD]
        gateway.success[GOOD] = 0.0  # the deployment starts failing
        failing = time.monotonic()
        await wait_for(lambda: all(GOOD in table.choose(t).excluded for t in ("coding", "chat")), 20, "the exclusion")
        excluded = time.monotonic()
        await asyncio.sleep(3)
        during = gateway.shares(excluded + 0.5, time.monotonic())[GOOD]
        print(f"failing -> excluded in {excluded - failing:.2f} s; share {before:.2f} -> {during:.2f}")
        assert before > 0.5 and during <= 0.06  # nothing, or the probe share once half-open
        gateway.success[GOOD] = 0.99  # it recovers
        recovering = time.monotonic()
        await wait_for(
            lambda: all(
                GOOD not in table.choose(t).excluded and GOOD not in table.choose(t).probes for t in ("coding", "chat")
            ),
            60,
            "the restore",
        )
        restored = time.monotonic()
        await asyncio.sleep(5)
        after = gateway.shares(restored + 1, time.monotonic())[GOOD]
        print(f"recovered -> restored in {restored - recovering:.2f} s; share back to {after:.2f}")
        assert after > 0.5
    finally:
        stop.set()
        await traffic
        await gateway.stop()
        await subscriber.stop()
    assert gateway.emitter.stats.dropped == 0 and gateway.emitter.stats.send_errors == 0
    assert gateway.logger.rejected == 0
    counted = {
        r["model_id"]: (r["total_calls"], r["success_count"])
        for r in await pool.fetch(
            "SELECT model_id, sum(total_calls)::int AS total_calls, sum(success_count)::int AS success_count "
            "FROM model_performance GROUP BY model_id"
        )
    }
    deadline = time.monotonic() + 30
    while sum(c for c, _ in counted.values()) < len(gateway.calls) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        counted = {
            r["model_id"]: (r["total_calls"], r["success_count"])
            for r in await pool.fetch(
                "SELECT model_id, sum(total_calls)::int AS total_calls, sum(success_count)::int AS success_count "
                "FROM model_performance GROUP BY model_id"
            )
        }
    assert sum(c for c, _ in counted.values()) == len(gateway.calls)  # every LiteLLM call counted once
    assert set(counted) <= set(gateway.success) and counted[GOOD][0] > counted[GOOD][1]
