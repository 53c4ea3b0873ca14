"""Create topics that do not exist yet; existing ones are left exactly as an operator made them."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from worker.kafka_client import client_options
from worker.settings import Settings


async def refresh_metadata(consumer: AIOKafkaConsumer) -> bool:
    """Ask the broker for the metadata of the consumer's topics now; False when it did not answer.
    aiokafka has no public call for it: this is the one place that reaches into its client."""
    return bool(await consumer._client.force_metadata_update())


async def partitions_of(consumer: AIOKafkaConsumer, topics: list[str] | tuple[str, ...]) -> list[TopicPartition]:
    """Every partition of `topics`, in order; a fresh client knows no topic until it asks the broker."""
    await refresh_metadata(consumer)
    return [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]


async def create_missing(settings: Settings, wanted: list[NewTopic]) -> list[str]:
    """Returns the names created. Safe when several processes race to create the same topic."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
