"""Worker processes, drain detection and exact comparison of the database with a ledger."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import aiohttp.web
import asyncpg
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from worker.settings import Settings
from worker.simulation.traffic import Ledger
from worker.topics import partitions_of


async def serve_on_loopback(routes: list[aiohttp.web.RouteDef]) -> tuple[aiohttp.web.AppRunner, int]:
    """A small HTTP server for a test (a receiver, a fake gateway): its runner, to clean up, and its port."""
    app = aiohttp.web.Application()
    app.router.add_routes(routes)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a worker process read exactly these settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[name.upper()] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return env


class WorkerProcess:
    """`telemetry-worker run` as a real OS process, so that it can be killed with SIGKILL."""

    def __init__(self, settings: Settings, log_path: Path):
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.worker_host = socket.gethostname()

    def start(self) -> None:
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process writes to it for its whole life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def readiness(self) -> tuple[int, dict] | None:
        url = f"http://127.0.0.1:{self.settings.web_port}/readyz"
        try:
            async with aiohttp.ClientSession() as http, http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status, await r.json()
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None

    async def metrics(self) -> dict[str, float]:
        """/metrics parsed: sample name with sorted labels -> value."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.settings.web_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200 and response.content_type == "text/plain"
            text = await response.text()
        return {
            sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    async def wait_ready(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            answer = await self.readiness()
            if answer and answer[0] == 200:
                return answer[1]
            await asyncio.sleep(0.25)
        raise AssertionError(f"worker not ready within {timeout} s:\n{self.log_tail()}")

    async def wait_flushing(self, timeout: float = 60.0) -> None:
        """Until this process has written at least one flush."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = await self.wait_ready(max(1.0, deadline - time.monotonic()))
            if ready["stats"]["flushes"] > 0:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"worker wrote nothing within {timeout} s:\n{self.log_tail()}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


async def end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, tuple(settings.consumed_topics))
        return {(tp.topic, tp.partition): o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def wait_drained(settings: Settings, pool: asyncpg.Pool, timeout: float = 90.0, workers=()) -> None:
    """Until the stored offsets reach the end of every input partition."""
    ends = await end_offsets(settings)
    deadline = time.monotonic() + timeout
    stored: dict = {}
    while time.monotonic() < deadline:
        rows = await pool.fetch(
            "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer_group=$1",
            settings.consumer_group,
        )
        stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        if all(end == 0 or stored.get(tp, -1) >= end for tp, end in ends.items()):
            return
        await asyncio.sleep(0.25)
    logs = "\n".join(w.log_tail(20) for w in workers)
    raise AssertionError(f"not drained in {timeout} s: ends={ends} stored={stored}\n{logs}")


async def assert_matches_ledger(pool: asyncpg.Pool, ledger: Ledger) -> None:
    """Every (model, task type) row equals what was produced: counts and tokens exactly."""
    rows = await pool.fetch(
        "SELECT model_id, task_type, total_calls, success_count, latency_sum_ms, cost_sum_usd, input_tokens,"
        " output_tokens FROM model_performance"
    )
    got = {(r["model_id"], r["task_type"]): r for r in rows}
    assert set(got) == set(ledger.by_model_task)
    for key, want in ledger.by_model_task.items():
        row = got[key]
        assert (row["total_calls"], row["success_count"], row["input_tokens"], row["output_tokens"]) == (
            want.calls,
            want.successes,
            want.input_tokens,
            want.output_tokens,
        ), key
        assert abs(row["latency_sum_ms"] - want.latency_sum_ms) <= 1e-9 * want.latency_sum_ms + 1e-6, key
        assert abs(row["cost_sum_usd"] - want.cost_sum_usd) <= 1e-9 * want.cost_sum_usd + 1e-9, key
    minutes = await pool.fetchval("SELECT coalesce(sum(total_calls), 0) FROM model_performance_minutes")
    series = await pool.fetchval(
        "SELECT coalesce(sum(metric_value), 0) FROM performance_metrics WHERE metric_name = 'calls'"
        " AND series_key = 'layer=all'"
    )
    assert minutes == ledger.calls and series == ledger.calls


async def assert_patterns_match_ledger(pool: asyncpg.Pool, ledger: Ledger) -> None:
    """One bug pattern per simulated error type, occurrences exact, one regression stub each."""
    rows = await pool.fetch("SELECT error_type, occurrences FROM bug_patterns")
    assert {r["error_type"]: r["occurrences"] for r in rows} == ledger.failures_by_type
    assert len(rows) == len(ledger.failures_by_type)
    assert await pool.fetchval("SELECT count(*) FROM regression_tests") == len(rows)


async def assert_quality_matches_ledger(pool: asyncpg.Pool, ledger: Ledger, timeout: float = 20.0) -> None:
    """Feedback counted once per call, name and source, with the score that counts, to the millionth;
    nothing left waiting. Feedback sent before its call is released by the flush that brings the call."""
    want = {key: (n, Decimal(total) / 1_000_000) for key, (n, total) in ledger.quality.items()}
    deadline = time.monotonic() + timeout
    while True:
        rows = await pool.fetch("SELECT model_id, task_type, name, feedback_count, score_sum FROM model_quality")
        got = {(r["model_id"], r["task_type"], r["name"]): (r["feedback_count"], r["score_sum"]) for r in rows}
        if got == want or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    assert got == want
    assert await pool.fetchval("SELECT count(*) FROM feedback_pending") == 0


async def dead_letters(settings: Settings, timeout: float = 10.0) -> list:
    """Every record on the dead-letter topic, from the beginning."""
    return await read_topic(settings, settings.topic_dlq, timeout)


async def read_topic(settings: Settings, topic: str, timeout: float = 10.0) -> list:
    """Every record of `topic` from the beginning: until a poll comes back empty after some records."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch and records:
                break
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


def source_of(record) -> tuple:
    h = {k: v.decode() for k, v in record.headers}
    return (
        h["dlq.source_topic"],
        int(h["dlq.source_partition"]),
        int(h["dlq.source_offset"]),
        h.get("dlq.envelope_index"),
    )


async def kill9_scenario(settings: Settings, workers, pool: asyncpg.Pool, *, kills: int, seed: int) -> None:
    """SIGKILL the worker `kills` times while traffic flows, restart it each time, then compare exactly."""
    from worker.simulation.producer import ensure_topics, simulate

    await ensure_topics(settings, partitions=4)
    worker = workers()
    await worker.wait_ready()
    traffic = asyncio.create_task(
        simulate(
            settings,
            count=14_000 * kills,
            rate=1200,
            envelope=1,
            seed=seed,
            resend_fraction=0.02,
            invalid_fraction=0.005,
            progress=False,
            feedback_fraction=0.3,
        )
    )
    rng = random.Random(seed)
    done = 0
    while not traffic.done() and done < kills:
        await worker.wait_flushing()  # kill while it works, not while it is still joining the group
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        worker.kill9()
        done += 1
        worker = workers()
    result = await traffic
    assert done == kills, "the traffic ended before every kill: make it longer"
    await worker.wait_ready()
    await wait_drained(settings, pool, workers=[worker])
    await assert_matches_ledger(pool, result.ledger)
    await assert_patterns_match_ledger(pool, result.ledger)
    await assert_quality_matches_ledger(pool, result.ledger)
    duplicates = await pool.fetchval(
        "SELECT sum(metric_value) FROM performance_metrics WHERE metric_name = 'events_duplicate'"
    )
    assert duplicates == result.resent
    assert len({source_of(r) for r in await dead_letters(settings)}) == result.invalid
