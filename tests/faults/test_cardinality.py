"""A stranger's distinct ids cost bounded work: 100,000 model ids in a few seconds leave the leader
answering, the rule small, and every other rule (manual ones too) published."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
import uuid

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from tests import samples
from tests.integration.harness import settings_env, wait_drained
from tests.integration.test_routing import wait_for
from worker.gateway.router import HeuristicsSubscriber, RoutingTable
from worker.simulation.producer import ensure_topics

MODELS = 100_000
HEALTHZ_BOUND_S = 2.0


def _flood(now: dt.datetime) -> list[bytes]:
    """Envelopes of 1,000 events: two known models with real traffic, then one call each of 100,000 new ids."""
    stamp = now.isoformat().replace("+00:00", "Z")
    events = [
        samples.completed(event_id=str(uuid.uuid4()), occurred_at=stamp, model_id=f"known-{i % 2}", task_type="coding")
        for i in range(2_000)
    ]
    events += [
        samples.completed(
            event_id=str(uuid.uuid4()), occurred_at=stamp, model_id=f"stranger-{i:06d}", task_type="coding"
        )
        for i in range(MODELS)
    ]
    return [orjson.dumps(events[i : i + 1000]) for i in range(0, len(events), 1000)]


async def test_a_hundred_thousand_model_ids_leave_the_leader_answering_and_the_rules_small(settings, workers, pool):
    await ensure_topics(settings, partitions=2)
    worker = workers(heuristics_interval_s=3.0, degradation_check_s=1.0, routing_max_models=50)
    await worker.wait_ready()
    env = {**settings_env(settings), "PATH": ""}
    manual = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.cli",
            "rules",
            "add",
            "--pattern",
            "(?i)proof",
            "--layer",
            "deep",
            "--model",
            "deep-model",
            "--priority",
            "100",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert manual.returncode == 0, manual.stderr

    table = RoutingTable()
    subscriber = HeuristicsSubscriber(settings.kafka_bootstrap_servers, table, topic=settings.topic_heuristics)
    await subscriber.start()
    slowest, stop = [0.0], asyncio.Event()

    async def probe_health():  # what a kubelet sees while the flood is counted and the rules recomputed
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                started = time.monotonic()
                async with http.get(
                    f"http://127.0.0.1:{worker.settings.web_port}/healthz", timeout=aiohttp.ClientTimeout(total=30)
                ) as response:
                    assert response.status == 200
                slowest[0] = max(slowest[0], time.monotonic() - started)
                await asyncio.sleep(0.2)

    prober = asyncio.create_task(probe_health())
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, max_request_size=4_194_304, compression_type="gzip"
    )
    await producer.start()
    try:
        for envelope in _flood(dt.datetime.now(dt.UTC)):
            await producer.send(settings.topic_calls_completed, envelope)
        await producer.flush()
        await wait_drained(settings, pool, workers=[worker], timeout=180)
        assert await pool.fetchval("SELECT count(*) FROM model_performance") == MODELS + 2

        rule = await wait_for(
            lambda: (r := table.choose("coding")) and "known-0" in r.weights and r,
            60,
            "a learned rule for coding that weighs the known models",
        )
        await asyncio.sleep(8)  # a few more recomputes and degradation checks over the flood
        assert len(rule.weights) <= 50 and len(rule.evidence) <= 50
        assert table.choose("coding", "a proof of the lemma").preferred_model == "deep-model"  # manual: published
        stored = await pool.fetchval("SELECT max(length(heuristic::text)) FROM routing_rules")
        assert stored < 100_000, stored
        metrics = await worker.metrics()
        assert metrics["telemetry_routing_left_out|kind=models"] >= MODELS - 50
        assert len([k for k in metrics if k.startswith("telemetry_calls_total")]) <= 2 * 201  # bounded labels
        assert metrics["telemetry_calls_total|model_id=other|outcome=success"] >= MODELS - 200
    finally:
        stop.set()
        await producer.stop()
        await subscriber.stop()
    await prober
    print(f"100,000 model ids: /healthz answered within {slowest[0]:.2f} s at worst; rule record {stored:,} characters")
    # well inside the 3 s the liveness probe of deploy/k8s gives /healthz (timeoutSeconds)
    assert slowest[0] < HEALTHZ_BOUND_S, f"/healthz took {slowest[0]:.1f} s at worst"
    assert worker.proc.poll() is None and "Traceback" not in worker.log_tail(100_000)
    assert "routing bounds reached" in worker.log_tail(100_000)


async def test_twenty_thousand_error_types_give_a_bounded_number_of_patterns_and_lose_no_failure(
    settings, workers, pool
):
    await ensure_topics(settings, partitions=2)
    worker = workers(patterns_max_new_per_hour=300)
    await worker.wait_ready()
    stamp = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    events = [
        samples.failed(
            event_id=str(uuid.uuid4()),
            occurred_at=stamp,
            error_type=f"boom_{i:05d}",
            error_message=f"kind {i:05d} exploded",
        )
        for i in range(20_000)
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, max_request_size=4_194_304, compression_type="gzip"
    )
    await producer.start()
    try:
        for i in range(0, len(events), 500):
            await producer.send(settings.topic_calls_failed, orjson.dumps(events[i : i + 500]))
        await producer.flush()
    finally:
        await producer.stop()
    await wait_drained(settings, pool, workers=[worker], timeout=120)

    patterns = await pool.fetchval("SELECT count(*) FROM bug_patterns")
    stubs = await pool.fetchval("SELECT count(*) FROM regression_tests")
    assert patterns <= 300 + 1 and stubs == patterns, (patterns, stubs)
    assert await pool.fetchval("SELECT sum(occurrences) FROM bug_patterns") == 20_000  # every failure counted
    overflow = await pool.fetchrow("SELECT occurrences FROM bug_patterns WHERE error_type = 'pattern_limit_reached'")
    assert overflow is not None and overflow["occurrences"] >= 20_000 - 300
    # the metric follows each flush once the pod has collected its outcome, a moment after the commit
    deadline = time.monotonic() + 15
    while (folded := (await worker.metrics())["telemetry_bug_patterns_folded_total"]) != overflow["occurrences"]:
        assert time.monotonic() < deadline, (folded, overflow["occurrences"])
        await asyncio.sleep(0.2)
