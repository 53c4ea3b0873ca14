"""Real Kafka and PostgreSQL for integration tests.

Services come from KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL (what `make test` exports after
`make services-up`); without them, a Docker engine is used through testcontainers; without
either, the tests fail and say how to start the services. They are never skipped.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.integration.harness import WorkerProcess, free_port
from worker.settings import Settings

HOW_TO_START = (
    "Start the local services with `make services-up` (Kafka on 127.0.0.1:9092, PostgreSQL on "
    "127.0.0.1:5432) and export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 "
    "DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:5432/telemetry, or run `make test`, which does both."
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - no Docker, whatever the reason: the native services are used
        return False


@pytest.fixture(scope="session")
def service_urls():
    kafka, dsn = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if kafka and dsn:
        host, _, port = kafka.split(",")[0].rpartition(":")
        if not _reachable(host, int(port)):
            pytest.fail(f"Kafka does not answer at {kafka}. {HOW_TO_START}")
        db = urlsplit(dsn)
        if not _reachable(db.hostname or "127.0.0.1", db.port or 5432):
            pytest.fail(f"PostgreSQL does not answer at {db.hostname}:{db.port}. {HOW_TO_START}")
        yield kafka, dsn
        return
    if not _docker_answers():
        pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are not set and no Docker engine answers. {HOW_TO_START}")
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as k, PostgresContainer("postgres:16", driver=None) as p:
        yield k.get_bootstrap_server(), p.get_connection_url()


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
async def database(service_urls):
    """A fresh, empty database per test, dropped afterwards."""
    _, dsn = service_urls
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_with_database(dsn, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(dsn, name)
    admin = await asyncpg.connect(_with_database(dsn, "postgres"))  # a new one: a fault test may restart the server
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def settings(service_urls, database) -> Settings:
    """Settings isolated per test: own topics, consumer group, app id, database and port."""
    kafka, _ = service_urls
    run = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap_servers=kafka,
        database_url=database,
        topic_calls_completed=f"test.{run}.calls.completed",
        topic_calls_failed=f"test.{run}.calls.failed",
        topic_calls_feedback=f"test.{run}.calls.feedback",
        topic_heuristics=f"test.{run}.routing.heuristics",
        topic_dlq=f"test.{run}.dlq",
        topic_alerts=f"test.{run}.routing.alerts",
        topic_tool_commands=f"test.{run}.tools.commands",
        consumer_group=f"test-{run}",
        app_id=f"test-{run}-app",
        web_port=free_port(),
        flush_interval_ms=200,
        flush_max_events=2000,
        kafka_session_timeout_s=6.0,
    )


@pytest.fixture
async def pool(database):
    p = await asyncpg.create_pool(database, min_size=1, max_size=8)
    yield p
    await p.close()


@pytest.fixture
def workers(settings, tmp_path):
    """Start worker processes on demand; all are killed at the end of the test."""
    started: list[WorkerProcess] = []

    def start(**overrides) -> WorkerProcess:
        own = settings.model_copy(update={"web_port": free_port(), **overrides})
        worker = WorkerProcess(own, tmp_path / f"worker-{len(started)}.log")
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill9()
