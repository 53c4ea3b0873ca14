"""The Python emitter: bad events refused at the gateway, secrets redacted, never blocking without a broker."""

import asyncio
import datetime as dt

import pytest

from worker.gateway.emitter import CallEmitter, EventRejected, completed, failed

OK = {"model_id": "gpt-4o", "layer": "balanced", "task_type": "chat", "latency_ms": 120.0}


def test_an_event_that_violates_the_contract_is_refused_with_every_field():
    with pytest.raises(EventRejected) as refused:
        completed(**{**OK, "layer": "turbo", "latency_ms": "120"})
    assert {field for field, _ in refused.value.errors} == {"layer", "latency_ms"}
    with pytest.raises(EventRejected, match="error_message"):
        failed(**OK, error_type="api")


def test_ids_and_times_are_filled_in_and_secrets_never_leave():
    event = completed(**OK, occurred_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert event.event_id and event.occurred_at.year == 2026
    bad = failed(
        **OK,
        error_type="auth",
        error_message="Incorrect API key provided: sk-proj-abcdef0123456789",
        request={"headers": {"Authorization": "Bearer abcdefghijklmnopqrstu"}, "prompt": "hi"},
    )
    assert "sk-proj" not in bad.error_message and "abcdefghijklmnop" not in str(bad.request)


async def test_without_a_broker_emit_never_blocks_and_a_full_buffer_drops_and_counts():
    emitter = CallEmitter("127.0.0.1:1", buffer_size=3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    accepted = [emitter.emit(completed(**OK)) for _ in range(10)]
    assert loop.time() - started < 0.1 and accepted.count(True) == 3 and emitter.stats.dropped == 7
    blocking = CallEmitter("127.0.0.1:1", buffer_size=1, when_full="block", block_timeout_s=0.05)
    assert await blocking.emit_wait(completed(**OK)) is True
    assert await blocking.emit_wait(completed(**OK)) is False and blocking.stats.dropped == 1
    with pytest.raises(ValueError, match="when_full"):
        CallEmitter("127.0.0.1:1", when_full="wait")


async def test_with_kafka_away_start_returns_at_once_and_stop_counts_every_event_never_sent():
    emitter = CallEmitter("127.0.0.1:1", flush_timeout_s=1.0, request_timeout_ms=500)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await emitter.start()  # the README's snippet: a gateway must boot with the telemetry side away
    assert loop.time() - started < 0.1 and emitter.status == "connecting"
    assert all(emitter.emit(completed(**OK)) for _ in range(5))
    await asyncio.sleep(1.5)
    assert emitter.status.startswith("connecting (attempt") and not emitter.connected.is_set()
    await emitter.stop()
    assert (emitter.stats.enqueued, emitter.stats.sent, emitter.stats.dropped) == (5, 0, 5)
    assert emitter.status == "stopped"


def test_a_helper_refuses_an_unknown_field_and_calls_are_keyed_to_spread_over_partitions():
    from worker.gateway.emitter import _key, feedback

    with pytest.raises(EventRejected, match="latency: not a field of CallCompleted"):
        completed(**{k: v for k, v in OK.items() if k != "latency_ms"}, latency=12.0)
    call = completed(**OK)
    assert _key(call) == str(call.event_id).encode()
    vote = feedback(call_event_id=str(call.event_id), name="thumbs", score=1.0, source="user")
    assert _key(vote) == str(call.event_id).encode()  # a call's votes follow one another on one partition
