"""The heuristics topic as the leader writes it: learned and manual rules and experiments alike, one
idempotent producer, each record signed when ROUTING_SIGNING_KEY is set (routers that hold the public
key follow only those), and the worker's other topics created when missing. The routing publisher and
the experiment runner both publish through it; the app starts it before them and stops it after."""

from __future__ import annotations

import logging
import os
import socket

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic

from worker.kafka_client import client_options
from worker.routing.signing import Signer
from worker.settings import Settings
from worker.topics import create_missing

log = logging.getLogger(__name__)


class HeuristicsTopic:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"  # in each record's `publisher` header
        self.producer: AIOKafkaProducer | None = None
        key = settings.routing_signing_key
        self.signer = Signer(key.get_secret_value()) if key is not None else None

    @property
    def started(self) -> bool:
        return self.producer is not None

    async def start(self) -> None:
        s = self.settings
        if self.signer is None:
            log.warning(
                "routing records are published unsigned (ROUTING_SIGNING_KEY is not set): a router cannot tell "
                "them from records anyone else who can write to %s produces (docs/operations.md)",
                s.topic_heuristics,
            )
        else:
            log.info("routing records are signed with key %s", self.signer.key_id)
        rf = s.topic_replication_factor
        await create_missing(  # the heuristics topic is compacted: the latest version per key
            s,
            [
                NewTopic(s.topic_heuristics, 1, rf, topic_configs={"cleanup.policy": "compact"}),
                NewTopic(s.topic_alerts, 1, rf),
                NewTopic(s.topic_dlq, 1, rf),
                NewTopic(s.topic_tool_commands, s.tool_commands_partitions, rf),
            ],
        )
        self.producer = AIOKafkaProducer(**client_options(s), enable_idempotence=True)
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    def _started(self) -> AIOKafkaProducer:
        if self.producer is None:  # the timers call in only once the app started it
            raise RuntimeError("the heuristics topic's producer has not started")
        return self.producer

    async def publish(self, key: bytes, record: dict | None, what: str) -> bool:
        """Send one record (None: a tombstone); False when it could not be sent, logged: one record must
        never hold back the others, the next tick retries."""
        value = None if record is None else orjson.dumps(record)
        headers = [("publisher", self.worker_id.encode())]
        if self.signer is not None:
            headers += self.signer.headers(key.decode(), value)
        try:
            await self._started().send_and_wait(self.settings.topic_heuristics, key=key, value=value, headers=headers)
        except Exception as error:  # noqa: BLE001
            log.warning("could not publish %s (%s: %s); the next tick retries", what, type(error).__name__, error)
            return False
        return True

    async def alert(self, key: bytes, value: bytes) -> None:
        """A routing alert, on the alerts topic."""
        await self._started().send_and_wait(self.settings.topic_alerts, key=key, value=value)
