"""A gateway boots while Kafka is away: the emitter's start() returns at once, events wait in its
buffer, and once Kafka answers (here: a forwarder starts listening on the address the emitter was
given) every one of them is delivered and counted by the worker, exactly once."""

import asyncio

from tests.integration.harness import free_port
from tests.integration.test_readme_snippets import counted
from worker.gateway.emitter import CallEmitter, completed
from worker.simulation.producer import ensure_topics


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: tuple[str, int]) -> None:
    up_reader, up_writer = await asyncio.open_connection(*target)

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)


async def test_an_emitter_started_while_kafka_is_away_delivers_everything_once_it_answers(settings, workers, pool):
    await ensure_topics(settings, partitions=1)
    worker = workers()
    await worker.wait_ready()
    port = free_port()
    emitter = CallEmitter(f"127.0.0.1:{port}", topic_completed=settings.topic_calls_completed, request_timeout_ms=2000)
    await asyncio.wait_for(emitter.start(), 0.5)  # nothing listens on that port yet
    for i in range(20):
        assert emitter.emit(completed(model_id="boot-model", layer="fast", task_type="chat", latency_ms=float(i)))
    await asyncio.sleep(2.0)
    assert emitter.stats.sent == 0 and emitter.status.startswith("connecting")
    host, _, broker_port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
    server = await asyncio.start_server(lambda r, w: _forward(r, w, (host, int(broker_port))), "127.0.0.1", port)
    try:
        await asyncio.wait_for(emitter.connected.wait(), 60)
        await emitter.stop()
    finally:
        server.close()
    assert (emitter.stats.sent, emitter.stats.dropped, emitter.stats.send_errors) == (20, 0, 0)
    assert await counted(pool, ("boot-model",), 20) == 20
    assert worker.terminate() == 0
