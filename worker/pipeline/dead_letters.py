"""Dead-letter production, in one place: a batch's rejected inputs (produced before its flush, so a
crash after the commit cannot lose them) and the outbox that flushes fill inside their transactions
(feedback refused after the join, or never joined), produced after the commit."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
from aiokafka import AIOKafkaProducer

from worker import metrics
from worker.calls import batch as batching
from worker.calls.dead_letters import headers
from worker.calls.decode import Rejection
from worker.kafka_client import client_options
from worker.settings import Settings
from worker.store.feedback import drain_outbox


class DeadLetters:
    def __init__(self, settings: Settings, pool: asyncpg.Pool):
        self.settings = settings
        self.pool = pool
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            **client_options(self.settings),
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=max(1_048_576, self.settings.dlq_max_value_bytes + 65_536),
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send_unsent(self, batch: batching.Batch) -> None:
        """Produce the batch's dead letters not produced yet (a retried flush does not produce them again)."""
        assert self.producer is not None
        now = dt.datetime.now(dt.UTC).isoformat()
        sends = [
            await self.producer.send(
                self.settings.topic_dlq,
                value=letter.value,
                key=letter.key,
                headers=headers(letter, self.settings.consumer_group, now),
            )
            for letter in batch.dead_letters[batch.dead_letters_sent :]
        ]
        await asyncio.gather(*sends)
        batch.dead_letters_sent = len(batch.dead_letters)

    async def drain_outbox(self) -> int:
        """Produce the dead letters flushes decided inside their transactions; each pod takes rows the
        others have not locked."""
        if self.producer is None:
            return 0
        producer = self.producer

        async def send(rows) -> None:
            now = dt.datetime.now(dt.UTC).isoformat()
            sends = []
            for row in rows:
                letter = batching.DeadLetter(
                    row["source_topic"], -1, -1, None, bytes(row["value"]), Rejection(row["reason"], row["detail"])
                )
                sends.append(
                    await producer.send(
                        self.settings.topic_dlq,
                        value=letter.value,
                        headers=headers(letter, self.settings.consumer_group, now),
                    )
                )
                metrics.FEEDBACK_DEAD_LETTERS.labels(row["reason"]).inc()
            await asyncio.gather(*sends)

        drained = 0
        async with self.pool.acquire() as conn:
            while (sent := await drain_outbox(conn, send)) > 0:
                drained += sent
        return drained
