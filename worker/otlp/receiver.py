"""`telemetry-worker otlp`: OTLP/HTTP in, call events out, stateless (run as many as the load needs).

POST /v1/traces takes an ExportTraceServiceRequest (protobuf or JSON, gzip or not). Its GenAI spans
become call events (worker/calls/spans.py), produced to the input topics by an idempotent producer;
the answer is 200 only once Kafka acknowledged every one of them, so an exporter's retry after any
other answer is safe (the event ids come from the span ids: the worker counts a re-sent span once).

- Kafka away or slow: 503 with Retry-After, which OTLP exporters retry.
- Spans that are not model calls: ignored, counted (`otlp_spans_ignored`), not an error.
- GenAI spans that cannot be mapped: OTLP partial success (`rejected_spans`, `error_message` with
  the first reasons); the rest is accepted.
- A body past OTLP_MAX_BODY_BYTES (compressed or not): 413; more than OTLP_MAX_SPANS spans, or a
  body that is not OTLP: 400 with the reason.

With OTLP_KAFKA_TOPIC set it also reads the topic that an OpenTelemetry Collector's Kafka exporter
writes (encoding `otlp_proto`) and maps it the same way; a record that is not OTLP goes to the
dead-letter topic with the reason. Offsets are committed after the events are acknowledged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from worker.calls.events import CallCompleted, CallFailed
from worker.calls.spans import Mapped, SpanMapping, map_request
from worker.kafka_client import client_options
from worker.otlp import decode
from worker.settings import Settings
from worker.throttle import Throttle

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
REASONS_SHOWN = 5


def mapping_of(settings: Settings) -> SpanMapping:
    def names(text: str) -> tuple[str, ...]:
        return tuple(n.strip() for n in text.split(",") if n.strip())

    return SpanMapping(
        task_type_attributes=names(settings.otlp_task_type_attributes),
        layer_attributes=names(settings.otlp_layer_attributes),
        cost_attributes=names(settings.otlp_cost_attributes),
        layers=dict(settings.otlp_layers),
        default_layer=settings.otlp_default_layer,
        prices={m: (float(i), float(o)) for m, (i, o) in settings.otlp_prices.items()},
        max_attributes=settings.otlp_max_attributes,
    )


class Unavailable(Exception):
    """Kafka did not acknowledge in time: the exporter should retry."""


class Receiver:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mapping = mapping_of(settings)
        self.producer: AIOKafkaProducer | None = None
        self.stats: Counter = Counter()
        self._tasks: list[asyncio.Task] = []
        self._warning = Throttle()

    # --- lifecycle
    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._connect(), name="otlp-producer"))
        if self.settings.otlp_kafka_topic:
            self._tasks.append(asyncio.create_task(self._follow_collector_topic(), name="otlp-collector-topic"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.producer is not None:
            await self.producer.stop()

    async def _connect(self) -> None:
        delay = 1.0
        while self.producer is None:
            producer = AIOKafkaProducer(**client_options(self.settings), enable_idempotence=True, acks="all")
            try:
                await producer.start()
            except (KafkaError, OSError) as error:
                await asyncio.gather(producer.stop(), return_exceptions=True)
                log.warning("otlp: Kafka not reachable (%s); retrying in %.0f s, answering 503 meanwhile", error, delay)
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)
                continue
            self.producer = producer
            log.info("otlp: producing call events to %s", self.settings.kafka_bootstrap_servers)

    # --- the one path both inputs take
    async def deliver(self, mapped: Mapped) -> None:
        """Produce the mapped events and wait for every acknowledgement; Unavailable when Kafka is not there."""
        self.stats["spans_ignored"] += mapped.ignored
        self.stats["spans_rejected"] += mapped.rejected_count
        if not mapped.events:
            return
        if self.producer is None:
            raise Unavailable("Kafka is not connected yet")
        topics = {CallCompleted: self.settings.topic_calls_completed, CallFailed: self.settings.topic_calls_failed}
        try:
            sent = [
                await self.producer.send(
                    topics[type(e)], orjson.dumps(e.model_dump(mode="json")), key=str(e.event_id).encode()
                )
                for e in mapped.events
            ]
            await asyncio.wait_for(asyncio.gather(*sent), self.settings.otlp_produce_timeout_s)
        except (KafkaError, TimeoutError) as error:
            self.stats["unavailable"] += 1
            raise Unavailable(f"{type(error).__name__}: {error}") from None
        self.stats["spans_accepted"] += len(mapped.events)
        self.stats["failed_calls"] += sum(isinstance(e, CallFailed) for e in mapped.events)

    # --- HTTP
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.otlp_max_body_bytes)
        app.router.add_post("/v1/traces", self.export)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def export(self, request: web.Request) -> web.Response:
        content_type = request.headers.get("Content-Type", decode.PROTOBUF)
        self.stats["exports"] += 1
        try:
            raw = await request.read()
            data = decode.body(raw, request.headers.get("Content-Encoding", ""))
            message = decode.request(data, content_type)
            mapped = await asyncio.to_thread(map_request, message, self.mapping, max_spans=self.settings.otlp_max_spans)
            await self.deliver(mapped)
        except web.HTTPRequestEntityTooLarge:
            return self._refused(
                413, f"the body is past {self.settings.otlp_max_body_bytes} bytes (OTLP_MAX_BODY_BYTES)"
            )
        except (decode.BadRequest, ValueError) as error:
            return self._refused(400, str(error))
        except Unavailable as error:
            if self._warning.ready():
                log.warning("otlp: answering 503 (%s)", error)
            return web.json_response(
                {"code": 14, "message": f"Kafka unavailable: {error}"},
                status=503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        reasons = "; ".join(mapped.rejected[:REASONS_SHOWN])
        if mapped.rejected_count > REASONS_SHOWN:
            reasons += f"; and {mapped.rejected_count - REASONS_SHOWN} more"
        payload, kind = decode.response(mapped.rejected_count, reasons, content_type)
        return web.Response(body=payload, content_type=kind)

    def _refused(self, status: int, reason: str) -> web.Response:
        self.stats[f"refused_{status}"] += 1
        return web.json_response({"code": 3, "message": reason}, status=status)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.producer is not None
        body = {"ready": ready, "stats": dict(self.stats)}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        lines = []
        for name, value in sorted(self.stats.items()):
            lines += [f"# TYPE otlp_{name}_total counter", f"otlp_{name}_total {value}"]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    # --- the Collector's Kafka exporter
    async def _follow_collector_topic(self) -> None:
        topic = self.settings.otlp_kafka_topic
        assert topic is not None
        consumer = AIOKafkaConsumer(
            topic,
            **client_options(self.settings),
            group_id=f"{self.settings.consumer_group}-otlp",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for records in batches.values():
                    for record in records:
                        await self._collector_record(record)
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()

    async def _collector_record(self, record: Any) -> None:
        try:
            message = decode.request(record.value or b"", decode.PROTOBUF)
            mapped = map_request(message, self.mapping, max_spans=self.settings.otlp_max_spans)
        except ValueError as error:
            await self._dead_letter(record, str(error))
            return
        while True:  # Kafka away: wait, never skip (the offset is committed only after delivery)
            try:
                await self.deliver(mapped)
                break
            except Unavailable as error:
                log.warning("otlp: collector topic waits for Kafka (%s)", error)
                await asyncio.sleep(RETRY_AFTER_S)
        for reason in mapped.rejected:
            await self._dead_letter(record, reason)

    async def _dead_letter(self, record: Any, reason: str) -> None:
        self.stats["dead_lettered"] += 1
        while self.producer is None:
            await asyncio.sleep(1)
        headers = [
            ("dlq.reason", b"invalid_otlp"),
            ("dlq.detail", reason[:2000].encode("utf-8", "replace")),
            ("dlq.source_topic", record.topic.encode()),
            ("dlq.source_partition", str(record.partition).encode()),
            ("dlq.source_offset", str(record.offset).encode()),
            ("dlq.failed_at", dt.datetime.now(dt.UTC).isoformat().encode()),
        ]
        await self.producer.send_and_wait(self.settings.topic_dlq, (record.value or b"")[:65536], headers=headers)


async def serve(settings: Settings) -> None:
    """Run until cancelled (SIGTERM, SIGINT): stop taking requests, then close the producer."""
    receiver = Receiver(settings)
    await receiver.start()
    runner = web.AppRunner(receiver.app())
    await runner.setup()
    site = web.TCPSite(runner, settings.otlp_host, settings.otlp_port)
    await site.start()
    log.info("otlp: receiving OTLP/HTTP on http://%s:%d/v1/traces", settings.otlp_host, settings.otlp_port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await receiver.stop()
