"""OpenTelemetry GenAI spans in, on real clients: the OpenTelemetry SDK's OTLP/HTTP exporter, OpenLLMetry
instrumenting the official `openai` client against a fake provider, the receiver (`telemetry-worker otlp`
as a process), the worker, Kafka and PostgreSQL. Exact counts, tokens, failures into bug patterns, a
re-sent export counted once, and every refusal with its reason."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import subprocess
import sys
import time

import httpx
import openai
import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from examples.litellm_proxy_gateway import FakeProvider
from tests.integration.harness import dead_letters, free_port, settings_env, wait_drained
from worker.otlp.receiver import Receiver
from worker.simulation.producer import ensure_topics


class ReceiverProcess:
    """`telemetry-worker otlp`, as its deployment runs it."""

    def __init__(self, settings, tmp_path, **overrides) -> None:
        self.port = free_port()
        own = settings.model_copy(update={"otlp_port": self.port, "otlp_host": "127.0.0.1", **overrides})
        self.log = tmp_path / f"otlp-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "otlp"],
                env={**os.environ, **settings_env(own)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.log.read_text()
                try:
                    answer = await client.get(f"{self.url}/readyz", timeout=2)
                    if answer.status_code == 200:
                        return answer.json()
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.25)
        raise AssertionError(f"the receiver was not ready within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)


def genai_spans() -> list:
    """Spans made by the OpenTelemetry SDK as a gateway's instrumentation makes them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway", "gateway.task_type": "coding"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("gateway")
    for i in range(30):
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                    "gen_ai.usage.input_tokens": 100 + i,
                    "gen_ai.usage.output_tokens": 20,
                    "gen_ai.usage.cost": 0.001,
                }
            )
    for _ in range(10):
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes({"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini-2024-07-18"})
            span.set_attribute("error.type", "RateLimitError")
            span.record_exception(RuntimeError("rate limited for key sk-proj-abcdefghijklmnopqrstuvwx"))
            span.set_status(trace.Status(trace.StatusCode.ERROR, "429"))
    for _ in range(5):
        with tracer.start_as_current_span("GET /health") as span:
            span.set_attribute("http.request.method", "GET")
    for _ in range(2):
        with tracer.start_as_current_span("chat ?") as span:
            span.set_attribute("gen_ai.operation.name", "chat")  # no model: rejected with the reason
    provider.shutdown()
    return list(memory.get_finished_spans())


async def test_sdk_exports_are_counted_exactly_once_with_failures_into_bug_patterns(settings, workers, pool, tmp_path):
    await ensure_topics(settings, partitions=2)
    worker = workers()
    receiver = ReceiverProcess(settings, tmp_path)
    try:
        await worker.wait_ready()
        await receiver.ready()
        exporter = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces")
        spans = genai_spans()
        assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS
        assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS  # a retry: counted once
        exporter.shutdown()
        await wait_drained(settings, pool, workers=[worker])
        rows = await pool.fetch(
            "SELECT model_id, task_type, total_calls, success_count, input_tokens, output_tokens, cost_sum_usd "
            "FROM model_performance"
        )
        assert [(r["model_id"], r["task_type"], r["total_calls"], r["success_count"]) for r in rows] == [
            ("gpt-4o-mini-2024-07-18", "coding", 40, 30)
        ]
        assert rows[0]["input_tokens"] == sum(100 + i for i in range(30))
        assert rows[0]["output_tokens"] == 20 * 30 and rows[0]["cost_sum_usd"] == pytest.approx(0.03)
        patterns = await pool.fetch("SELECT pattern, occurrences FROM bug_patterns")
        assert [p["occurrences"] for p in patterns] == [10]
        assert "sk-proj-abc" not in patterns[0]["pattern"]
        stats = (await receiver.ready())["stats"]
        assert (stats["spans_accepted"], stats["spans_ignored"], stats["spans_rejected"]) == (80, 10, 4)
    finally:
        assert receiver.stop() == 0, receiver.log.read_text()  # SIGTERM: a clean stop


async def test_openllmetry_instrumenting_the_openai_client_reaches_the_aggregates(settings, workers, pool, tmp_path):
    await ensure_topics(settings, partitions=2)
    worker = workers()
    receiver = ReceiverProcess(settings, tmp_path, otlp_layers={"gpt-4o-mini": "fast"})
    provider = FakeProvider()
    await provider.start()
    tracing = TracerProvider(resource=Resource.create({"service.name": "app", "gateway.task_type": "summarization"}))
    tracing.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces")))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracing)
    try:
        await worker.wait_ready()
        await receiver.ready()
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{provider.port}/v1", api_key="sk-test", max_retries=0)

        def calls() -> None:
            for _ in range(6):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            provider.failing = True
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

        await asyncio.to_thread(calls)
        tracing.force_flush()
        await wait_drained(settings, pool, workers=[worker])
        rows = await pool.fetch(
            "SELECT model_id, task_type, layer, total_calls, success_count, input_tokens, output_tokens "
            "FROM model_performance_minutes"
        )
        totals = {(r["model_id"], r["task_type"], r["layer"]): (0, 0, 0, 0) for r in rows}
        for r in rows:
            key = (r["model_id"], r["task_type"], r["layer"])
            calls_, ok, i, o = totals[key]
            totals[key] = (
                calls_ + r["total_calls"],
                ok + r["success_count"],
                i + r["input_tokens"],
                o + r["output_tokens"],
            )
        assert totals == {("gpt-4o-mini", "summarization", "fast"): (7, 6, 6 * 12, 6 * 5)}
    finally:
        instrumentor.uninstrument()
        tracing.shutdown()
        await provider.stop()
        receiver.stop()


@contextlib.asynccontextmanager
async def in_process(settings):
    """A Receiver served on a free port in this process, stopped however the test ends."""
    receiver = Receiver(settings)
    await receiver.start()
    runner = web.AppRunner(receiver.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await receiver.stop()


async def test_json_gzip_partial_success_and_every_refusal_has_its_reason(settings):
    own = settings.model_copy(update={"otlp_max_body_bytes": 64 * 1024, "otlp_max_spans": 50})
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "chat",
        "startTimeUnixNano": str(time.time_ns() - 800_000_000),
        "endTimeUnixNano": str(time.time_ns()),
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4"}},
            {"key": "gateway.layer", "value": {"stringValue": "deep"}},
        ],
    }
    bad = {**span, "spanId": "eee19b7ec3c1b175", "attributes": [span["attributes"][0]]}
    body = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span, bad]}]}]}
    async with in_process(own) as (receiver, base):
        url = f"{base}/v1/traces"
        await asyncio.wait_for(_until(lambda: receiver.producer is not None), 30)
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                url,
                content=gzip.compress(orjson.dumps(body)),
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json() == {
                "partialSuccess": {
                    "rejectedSpans": "1",
                    "errorMessage": "span 'chat': no gen_ai.response.model or gen_ai.request.model",
                }
            }
            too_many = {"resourceSpans": [{"scopeSpans": [{"spans": [span] * 51}]}]}
            refused = await client.post(
                url, content=orjson.dumps(too_many), headers={"Content-Type": "application/json"}
            )
            assert refused.status_code == 400 and "at most 50 (OTLP_MAX_SPANS)" in refused.json()["message"]
            bomb = gzip.compress(b"\0" * (1024 * 1024))  # small on the wire, past the bound once inflated
            refused = await client.post(
                url, content=bomb, headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
            )
            assert refused.status_code == 413 and "OTLP_MAX_BODY_BYTES" in refused.json()["message"]
            refused = await client.post(
                url, content=b"\xff" * 70_000, headers={"Content-Type": "application/x-protobuf"}
            )
            assert refused.status_code == 413
            refused = await client.post(
                url, content=b"not protobuf \xff", headers={"Content-Type": "application/x-protobuf"}
            )
            assert refused.status_code == 400 and "ExportTraceServiceRequest" in refused.json()["message"]
            refused = await client.post(url, content=b"{}", headers={"Content-Type": "text/plain"})
            assert refused.status_code == 400 and "Content-Type" in refused.json()["message"]
    records = await _events(settings)
    assert [(e["model_id"], e["layer"], e["task_type"]) for e in records] == [("claude-sonnet-4", "deep", "chat")]


async def test_with_kafka_away_an_export_is_answered_503_with_retry_after(settings):
    away = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    async with in_process(away) as (_, base):
        exporter_body = ExportTraceServiceRequest()
        span = exporter_body.resource_spans.add().scope_spans.add().spans.add()
        span.trace_id, span.span_id, span.name = b"\1" * 16, b"\2" * 8, "chat"
        span.start_time_unix_nano, span.end_time_unix_nano = time.time_ns() - 10**9, time.time_ns()
        for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "m")):
            attribute = span.attributes.add()
            attribute.key, attribute.value.string_value = key, value
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{base}/v1/traces",
                content=exporter_body.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            ready = await client.get(f"{base}/readyz")
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        assert ready.status_code == 503


async def test_the_collector_kafka_exporter_topic_is_mapped_and_a_bad_record_dead_lettered(settings, workers, pool):
    topic = f"{settings.topic_calls_completed}.otlp"
    own = settings.model_copy(update={"otlp_kafka_topic": topic})
    await ensure_topics(settings, partitions=2)
    worker = workers()
    export = ExportTraceServiceRequest()
    scope = export.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(25):
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = bytes([i + 1]) * 16, bytes([i + 1]) * 8, "chat"
        span.start_time_unix_nano, span.end_time_unix_nano = now - 2 * 10**9, now - 10**9
        for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4o")):
            attribute = span.attributes.add()
            attribute.key, attribute.value.string_value = key, value
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for value in (export.SerializeToString(), b"not otlp \xff\xfe", export.SerializeToString()):  # a repeat too
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    receiver = Receiver(own)
    await receiver.start()
    try:
        await worker.wait_ready()
        await asyncio.wait_for(_until(lambda: receiver.stats["spans_accepted"] >= 50), 60)
        await wait_drained(settings, pool, workers=[worker])
        assert await pool.fetchval("SELECT sum(total_calls) FROM model_performance") == 25  # the repeat: once
        letters = [r for r in await dead_letters(settings) if r.value.startswith(b"not otlp")]
        assert len(letters) == 1
        headers = dict(letters[0].headers)
        assert headers["dlq.reason"] == b"invalid_otlp" and b"protobuf" in headers["dlq.detail"]
    finally:
        await receiver.stop()


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.1)


async def _events(settings) -> list[dict]:
    from tests.integration.harness import read_topic

    return [orjson.loads(r.value) for r in await read_topic(settings, settings.topic_calls_completed, timeout=5)]


async def test_the_readme_snippet_reports_a_span_through_the_receiver(settings, workers, pool, tmp_path):
    from tests.integration.test_readme_snippets import snippet

    await ensure_topics(settings, partitions=2)
    worker = workers()
    receiver = ReceiverProcess(settings, tmp_path)
    try:
        await worker.wait_ready()
        await receiver.ready()
        code = snippet("otlp")
        assert "http://127.0.0.1:4318/v1/traces" in code
        code = code.replace("http://127.0.0.1:4318/v1/traces", f"{receiver.url}/v1/traces")
        await asyncio.to_thread(exec, compile(code, "README.md", "exec"), {})  # the snippet as written: synchronous
        await wait_drained(settings, pool, workers=[worker])
        row = await pool.fetchrow("SELECT model_id, task_type, total_calls, input_tokens FROM model_performance")
        assert tuple(row) == ("gpt-4o-mini", "chat", 1, 120)
        layer = await pool.fetchval("SELECT DISTINCT layer FROM model_performance_minutes")
        assert layer == "fast"
    finally:
        receiver.stop()
