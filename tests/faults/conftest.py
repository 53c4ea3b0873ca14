"""Fault tests stop and start the local services themselves (deploy/local/services.sh): they need the
services of `make services-up`, not external ones or testcontainers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import *  # noqa: F403 - the same service, database and worker fixtures

ROOT = Path(__file__).resolve().parents[2]


class LocalServices:
    def run(self, action: str) -> None:
        subprocess.run(["bash", str(ROOT / "deploy/local/services.sh"), action], check=True, capture_output=True)

    def pg_stop(self) -> None:
        self.run("pg-stop")

    def pg_start(self) -> None:
        self.run("pg-start")

    def kafka_stop(self) -> None:
        self.run("kafka-stop")

    def kafka_start(self) -> None:
        self.run("kafka-start")


@pytest.fixture
def local_services(service_urls):
    if not (ROOT / ".cache/kafka/kafka.pid").exists() or not (ROOT / ".cache/postgres/data/postmaster.pid").exists():
        pytest.fail(
            "fault tests stop and start the local services: run `make services-up` first (they cannot "
            "drive external services or testcontainers)"
        )
    services = LocalServices()
    yield services
    services.pg_start()  # whatever the test did, leave both running
    services.kafka_start()
