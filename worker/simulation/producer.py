"""Produce simulated gateway traffic to Kafka: rate-limited, optionally enveloped, with re-sends and
invalid input mixed in on request, and a ledger of what a correct worker must end up counting.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from worker.calls.events import EventKind
from worker.kafka_client import client_options
from worker.settings import Settings
from worker.simulation.traffic import (
    FEEDBACK_NAME,
    MODELS,
    TASK_TYPES,
    Degradation,
    Ledger,
    ModelProfile,
    generate,
    judgements,
)
from worker.topics import create_missing

INVALID_SAMPLES = (
    b"this is not json",
    b'{"event_id": "not-a-uuid"}',
    b'{"model_id": 42, "layer": "fast"}',
    b"\xff\xfe\x00garbage",
    b"[]",
)


def _invalid_element(rng: random.Random, event: dict) -> dict:
    broken = dict(event)
    choice = rng.randrange(4)
    if choice == 0:
        broken["latency_ms"] = -5
    elif choice == 1:
        del broken["model_id"]
    elif choice == 2:
        broken["layer"] = "turbo"
    else:
        broken["input_tokens"] = "many"
    return broken


@dataclass
class Result:
    ledger: Ledger = field(default_factory=Ledger)
    messages: int = 0
    resent: int = 0
    invalid: int = 0  # items that must reach the dead-letter topic
    feedback: int = 0  # feedback events produced (re-sends not included)
    seconds: float = 0.0


async def ensure_topics(settings: Settings, partitions: int) -> None:
    names = (
        settings.topic_calls_completed,
        settings.topic_calls_failed,
        settings.topic_calls_feedback,
        settings.topic_dlq,
    )
    await create_missing(settings, [NewTopic(name, partitions, settings.topic_replication_factor) for name in names])


async def simulate(
    settings: Settings,
    *,
    count: int,
    rate: float | None = None,
    envelope: int = 1,
    seed: int = 7,
    resend_fraction: float = 0.0,
    invalid_fraction: float = 0.0,
    degrade: Degradation | None = None,
    partitions: int = 4,
    progress: bool = True,
    models: tuple[ModelProfile, ...] = MODELS,
    task_types: tuple[str, ...] = TASK_TYPES,
    feedback_fraction: float = 0.0,
    early_feedback_fraction: float = 0.2,
) -> Result:
    """Produce `count` call events (and, for `feedback_fraction` of the answered calls, correctness
    feedback: some replaced by a later vote, some sent before their call), keeping the ledger."""
    await ensure_topics(settings, partitions)
    rng = random.Random(seed + 1)
    topics = {
        EventKind.completed: settings.topic_calls_completed,
        EventKind.failed: settings.topic_calls_failed,
        EventKind.feedback: settings.topic_calls_feedback,
    }
    profiles = {m.model_id: m for m in models}
    producer = AIOKafkaProducer(
        **client_options(settings),
        enable_idempotence=True,
        linger_ms=10,
        max_batch_size=262_144,
        max_request_size=4_194_304,
    )
    result, pending = Result(), []
    sent_events: list[tuple[EventKind, dict]] = []
    envelopes: dict[EventKind, list[dict]] = {EventKind.completed: [], EventKind.failed: []}
    started = time.monotonic()
    clock = lambda: dt.datetime.now(dt.UTC).isoformat()
    later = lambda offset_s: (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)).isoformat()

    async def send(kind: EventKind, value: bytes) -> None:
        pending.append(await producer.send(topics[kind], value=value))
        result.messages += 1
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()

    async def emit(kind: EventKind, item: dict) -> None:
        if envelope <= 1:
            await send(kind, orjson.dumps(item))
            return
        envelopes[kind].append(item)
        if len(envelopes[kind]) >= envelope:
            await send(kind, orjson.dumps(envelopes[kind]))
            envelopes[kind] = []

    columns = (
        TextColumn("[bold]simulating gateway traffic"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8.0f} events/s"),
        TimeRemainingColumn(),
    )
    await producer.start()
    try:
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("events", total=count, rate=0.0)
            for number, (kind, event) in enumerate(
                generate(count, seed=seed, clock=clock, degrade=degrade, models=models, task_types=task_types), 1
            ):
                result.ledger.add(kind, event)
                if len(sent_events) < 10_000:  # re-sends are drawn from the first events
                    sent_events.append((kind, event))
                votes: list[dict] = []
                if kind is EventKind.completed and feedback_fraction and rng.random() < feedback_fraction:
                    votes, final = judgements(rng, event, profiles[event["model_id"]], clock=later)
                    result.ledger.judged(event, FEEDBACK_NAME, final)
                    result.feedback += len(votes)
                early = bool(votes) and rng.random() < early_feedback_fraction
                for vote in votes if early else ():  # before its call: it must wait for it
                    await send(EventKind.feedback, orjson.dumps(vote))
                await emit(kind, event)
                for vote in () if early else votes:
                    await send(EventKind.feedback, orjson.dumps(vote))
                if votes and resend_fraction and rng.random() < resend_fraction:
                    await send(EventKind.feedback, orjson.dumps(rng.choice(votes)))
                    result.resent += 1
                if resend_fraction and rng.random() < resend_fraction:
                    await emit(*rng.choice(sent_events))
                    result.resent += 1
                if invalid_fraction and rng.random() < invalid_fraction:
                    result.invalid += 1
                    if envelope <= 1:
                        await send(kind, rng.choice(INVALID_SAMPLES))
                    else:
                        await emit(kind, _invalid_element(rng, event))
                if rate and number % 50 == 0:
                    ahead = number / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                if number % 500 == 0 or number == count:
                    bar.update(task, completed=number, rate=number / max(1e-9, time.monotonic() - started))
            for kind, items in envelopes.items():
                if items:
                    await send(kind, orjson.dumps(items))
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    result.seconds = time.monotonic() - started
    return result
