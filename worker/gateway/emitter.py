"""Report model calls to Kafka as v1 call events without ever holding up the gateway.

`completed(...)` / `failed(...)` / `feedback(...)` validate the event against the contract models (worker.calls.events)
and raise `EventRejected` with every field and reason: a bad event is refused at the gateway,
before it reaches Kafka. `emit(event)` only enqueues: the buffer holds `buffer_size` events and a
background task sends them in batches through an idempotent producer (acks=all). When the buffer
is full (the broker is away longer than the buffer lasts), the policy decides:

- `when_full="drop"` (default): the event is dropped at once, counted in `stats.dropped`, and a
  warning is logged at most every 10 s. The request path never waits.
- `when_full="block"`: `emit_wait(event)` waits up to `block_timeout_s` for room, then drops and
  counts the same way.

`start()` never fails and never waits for Kafka: the producer connects in the background and
reconnects with back-off (1 s doubling to 30 s) while the broker is away; events wait in the buffer
meanwhile (the same bound and policy). `status` says which. `stop()` flushes what is buffered (up to
`flush_timeout_s`) before closing the producer; whatever was never sent is counted in `stats.dropped`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from worker.calls.events import CallCompleted, CallEvent, CallFailed, CallFeedback
from worker.calls.redaction import redact_payload, redact_text
from worker.throttle import Throttle

log = logging.getLogger(__name__)
Checked = TypeVar("Checked", CallCompleted, CallFailed, CallFeedback)


class EventRejected(ValueError):
    """The event violates the v1 contract; nothing was sent."""

    def __init__(self, problem: ValidationError | list[tuple[str, str]]):
        self.errors = (
            problem
            if isinstance(problem, list)
            else [
                (".".join(str(p) for p in e["loc"]), e["msg"])
                for e in problem.errors(include_url=False, include_input=False)
            ]
        )
        super().__init__("call event refused: " + "; ".join(f"{field}: {why}" for field, why in self.errors))


@dataclass
class EmitterStats:
    enqueued: int = 0
    sent: int = 0
    dropped: int = 0  # buffer full (or stopped): never sent
    send_errors: int = 0  # the producer gave up on a batch (after its own retries): never sent


def _base(fields: dict[str, Any]) -> dict[str, Any]:
    event = {"event_id": str(uuid.uuid4()), "occurred_at": dt.datetime.now(dt.UTC).isoformat()} | fields
    if isinstance(event.get("occurred_at"), dt.datetime):
        event["occurred_at"] = event["occurred_at"].isoformat()
    return event


def _checked(model: type[Checked], event: dict[str, Any]) -> Checked:
    """The wire contract ignores unknown fields (newer producers); a helper refuses them: a typo
    (`latency=` for `latency_ms=`) must not vanish silently."""
    unknown = sorted(set(event) - set(model.model_fields))
    if unknown:
        raise EventRejected([(name, f"not a field of {model.__name__}") for name in unknown])
    try:
        return model.model_validate(event)
    except ValidationError as problem:
        raise EventRejected(problem) from None


def completed(**fields: Any) -> CallCompleted:
    """A call-completed event; `event_id` and `occurred_at` (now) are filled in when absent."""
    return _checked(CallCompleted, _base(fields))


def failed(**fields: Any) -> CallFailed:
    """A call-failed event, with secrets redacted from the message and the captured request."""
    event = _base(fields)
    if isinstance(event.get("error_message"), str):
        event["error_message"] = redact_text(event["error_message"])
    if isinstance(event.get("request"), dict):
        event["request"] = redact_payload(event["request"])
    return _checked(CallFailed, event)


def feedback(**fields: Any) -> CallFeedback:
    """Feedback on a call's answer (a vote, an eval, a judge), naming the call by `call_event_id` (the call
    event's `event_id`) or `request_id`; `event_id` and `occurred_at` (now) are filled in when absent and
    the comment is redacted. A later feedback for the same call, name and source replaces the earlier one."""
    event = _base(fields)
    if isinstance(event.get("comment"), str):
        event["comment"] = redact_text(event["comment"])
    return _checked(CallFeedback, event)


Emitted = CallEvent | CallFeedback


def _key(event: Emitted) -> bytes:
    """Calls by their own id, so that they spread over every partition (keyed by model, two models kept
    all events on two partitions, and more worker pods could not help); feedback by its call, so that
    one call's votes stay in order on one partition."""
    if isinstance(event, CallFeedback):
        return str(event.call_event_id or event.request_id).encode()
    return str(event.event_id).encode()


class CallEmitter:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_completed: str = "gateway.calls.completed",
        topic_failed: str = "gateway.calls.failed",
        topic_feedback: str = "gateway.calls.feedback",
        buffer_size: int = 10_000,
        when_full: Literal["drop", "block"] = "drop",
        block_timeout_s: float = 0.05,
        max_batch: int = 500,
        flush_timeout_s: float = 10.0,
        **producer_options: Any,
    ):
        if when_full not in ("drop", "block"):
            raise ValueError(f"when_full must be 'drop' or 'block', not {when_full!r}")
        self.topics = {CallCompleted: topic_completed, CallFailed: topic_failed, CallFeedback: topic_feedback}
        self.when_full, self.block_timeout_s = when_full, block_timeout_s
        self.max_batch, self.flush_timeout_s = max_batch, flush_timeout_s
        self.queue: asyncio.Queue[Emitted] = asyncio.Queue(maxsize=buffer_size)
        self.stats = EmitterStats()
        self._producer_options = dict(
            bootstrap_servers=bootstrap_servers,
            enable_idempotence=True,
            acks="all",
            linger_ms=producer_options.pop("linger_ms", 20),
            **producer_options,
        )
        self.producer: AIOKafkaProducer | None = None
        self.connected = asyncio.Event()
        self.status = "not started"
        self._task: asyncio.Task | None = None
        self._warning = Throttle()
        self._acks: dict[str, asyncio.Future[bool]] = {}  # event id -> resolved once Kafka answered for it

    async def start(self) -> None:
        """Returns at once: the producer connects in the background (see `status`)."""
        self.status = "connecting"
        self._task = asyncio.create_task(self._connect_and_drain(), name="call-emitter")

    async def _connect_and_drain(self) -> None:
        delay, attempts = 1.0, 0
        while self.producer is None:
            producer = AIOKafkaProducer(**self._producer_options)
            try:
                await producer.start()
            except Exception as error:  # noqa: BLE001 - the gateway must never see this; retried
                await asyncio.gather(producer.stop(), return_exceptions=True)
                attempts += 1
                self.status = f"connecting (attempt {attempts} failed: {type(error).__name__}: {error})"[:300]
                if self._warning.ready():
                    log.warning(
                        "call emitter: Kafka not reachable (%s); retrying in %.0f s, %d events buffered",
                        error,
                        delay,
                        self.queue.qsize(),
                    )
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)
                continue
            self.producer = producer
        self.status = "connected"
        self.connected.set()
        await self._drain()

    async def stop(self) -> None:
        """Send what is buffered (up to `flush_timeout_s`), then close; what is left is counted as dropped."""
        if self._task is not None:
            try:
                await asyncio.wait_for(self._sent_all(), self.flush_timeout_s)
            except TimeoutError:
                log.warning(
                    "call emitter: %d events still buffered after %.0f s; dropping them",
                    self.queue.qsize(),
                    self.flush_timeout_s,
                )
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self.stats.dropped += self.queue.qsize()
        if self.producer is not None:
            await self.producer.stop()
        self.status = "stopped"

    async def _sent_all(self) -> None:
        await self.connected.wait()  # never connected: the timeout counts what is buffered as dropped
        await self.queue.join()

    def emit(self, event: Emitted) -> bool:
        """Enqueue without waiting; False when the buffer is full and the event was dropped."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped()
            return False
        self.stats.enqueued += 1
        return True

    async def emit_acked(self, event: Emitted, timeout_s: float) -> bool:
        """Enqueue, then wait up to `timeout_s` for Kafka's acknowledgement while connected (never while the
        broker is away: then it returns at once, the event buffered as by `emit`). For callers that must
        not report a request done before its event is durable, such as a proxy draining its callbacks on
        shutdown. True: acknowledged."""
        if not self.connected.is_set() or self.status != "connected":
            self.emit(event)
            return False
        key = str(event.event_id)
        waiter = self._acks[key] = asyncio.get_running_loop().create_future()
        if not self.emit(event):
            self._acks.pop(key, None)
            return False
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        except TimeoutError:
            return False
        finally:
            self._acks.pop(key, None)

    async def emit_wait(self, event: Emitted) -> bool:
        """With when_full='block': wait up to block_timeout_s for room; else the same as emit()."""
        if self.when_full == "drop":
            return self.emit(event)
        try:
            await asyncio.wait_for(self.queue.put(event), self.block_timeout_s)
        except TimeoutError:
            self._dropped()
            return False
        self.stats.enqueued += 1
        return True

    def _dropped(self) -> None:
        self.stats.dropped += 1
        if self._warning.ready():
            log.warning(
                "call emitter: buffer full (%d events), %d dropped so far (%s)",
                self.queue.maxsize,
                self.stats.dropped,
                self.status if self.status != "connected" else "sending slower than events arrive",
            )

    async def _drain(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            assert self.producer is not None
            try:
                futures = [
                    await self.producer.send(self.topics[type(e)], orjson.dumps(e.model_dump(mode="json")), key=_key(e))
                    for e in batch
                ]
                results = await asyncio.gather(*futures, return_exceptions=True)
                errors = [r for r in results if isinstance(r, BaseException)]
                self.stats.sent += len(batch) - len(errors)
                self.stats.send_errors += len(errors)
                if errors:
                    log.warning(
                        "call emitter: %d of %d events not sent (%s)", len(errors), len(batch), type(errors[0]).__name__
                    )
            except Exception as error:  # noqa: BLE001 - the gateway must never see this
                self.stats.send_errors += len(batch)
                log.warning(
                    "call emitter: a batch of %d events was not sent (%s: %s)", len(batch), type(error).__name__, error
                )
                results = [BaseException()] * len(batch)
            finally:
                for _ in batch:
                    self.queue.task_done()
            if self._acks:
                for e, result in zip(batch, results, strict=True):
                    waiter = self._acks.get(str(e.event_id))
                    if waiter is not None and not waiter.done():
                        waiter.set_result(not isinstance(result, BaseException))
