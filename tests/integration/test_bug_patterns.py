"""Failures on real services: one pattern per (error type, template) with exact occurrences, one
parseable stub per pattern, runnable exported files, and no secret in any table or topic."""

import ast
import subprocess
import sys
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests import samples
from tests.integration.harness import dead_letters, settings_env, wait_drained
from tests.typescript_parser import TypeScriptParser
from worker.simulation.producer import ensure_topics, simulate

SECRETS = [
    "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2",
    "AKIAZZZZYYYYXXXXWWWW",
    "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjoibWFsbG9yeSJ9.c2lnbmF0dXJlLXNlY3JldA",
    "hunter2-db-password",
    "mallory.secret@example.org",
]


@pytest.fixture(scope="module")
def typescript():
    parser = TypeScriptParser()
    yield parser
    parser.close()


async def test_failures_collapse_into_exact_patterns_with_one_stub_each(settings, workers, pool, tmp_path, typescript):
    await ensure_topics(settings, partitions=3)
    worker = workers()
    await worker.wait_ready()
    result = await simulate(settings, count=8000, seed=3, resend_fraction=0.02, progress=False)
    await wait_drained(settings, pool, workers=[worker])

    rows = await pool.fetch("SELECT fingerprint, error_type, occurrences, severity, pattern FROM bug_patterns")
    per_type = {r["error_type"]: r["occurrences"] for r in rows}
    assert per_type == result.ledger.failures_by_type  # one pattern per type, re-sends not counted twice
    assert len(rows) == len(result.ledger.failures_by_type)
    assert all(r["severity"] in ("low", "medium", "high", "critical") for r in rows)

    stubs = await pool.fetch("SELECT test_name, test_code, metadata, discovered_from FROM regression_tests")
    assert sorted(orjson.loads(s["metadata"])["fingerprint"] for s in stubs) == sorted(r["fingerprint"] for r in rows)
    for stub in stubs:
        answer = typescript.parse(stub["test_code"])
        assert answer["diagnostics"] == [] and stub["discovered_from"] == "bug"
        assert answer["values"]["request"]["messages"][0]["role"] == "user"

    env = settings_env(settings)
    for framework, suffix in (("vitest", ".test.ts"), ("pytest", ".py")):
        out = tmp_path / framework
        subprocess.run(
            [sys.executable, "-m", "worker.cli", "export-tests", "--framework", framework, "--out", str(out)],
            env={**env, "PATH": ""},
            check=True,
            capture_output=True,
        )
        files = sorted(p for p in out.iterdir() if p.name.endswith(suffix) and p.name != "conftest.py")
        assert len(files) == len(rows) and (out / "README.md").exists()
        assert (out / "conftest.py").exists() == (framework == "pytest")  # the gateway fixture and the checks
        for path in files:
            code = path.read_text()
            if framework == "vitest":
                assert typescript.parse(code)["diagnostics"] == []
            else:
                compile(ast.parse(code), str(path), "exec")
    routing = tmp_path / "routing"
    subprocess.run(
        [sys.executable, "-m", "worker.cli", "export-tests", "--out", str(routing), "--category", "routing"],
        env={**env, "PATH": ""},
        check=True,
        capture_output=True,
    )
    assert [p.name.split("_")[1] for p in routing.glob("*.test.ts")] == ["timeout"]


async def test_no_secret_reaches_any_table_or_topic(settings, workers, pool):
    await ensure_topics(settings, partitions=1)
    worker = workers()
    await worker.wait_ready()
    key, aws, jwt, password, email = SECRETS
    failures = [
        samples.failed(
            event_id=str(uuid.uuid4()),
            error_type="auth",
            error_message=f"Incorrect API key provided: {key} for {email}",
            request={
                "headers": {"Authorization": f"Bearer {jwt}", "x-api-key": key},
                "messages": [{"role": "user", "content": f"use {aws} and postgres://app:{password}@db/x"}],
            },
        ),
        samples.failed(
            event_id=str(uuid.uuid4()),
            error_type="api",
            error_message=f"upstream said: password={password} token {jwt}",
        ),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for event in failures:
            await producer.send_and_wait(settings.topic_calls_failed, orjson.dumps(event))
        bad = samples.failed(latency_ms=-1, error_message=f"leak {key} {email}")  # invalid: dead-lettered
        await producer.send_and_wait(settings.topic_calls_failed, orjson.dumps(bad))
    finally:
        await producer.stop()
    await wait_drained(settings, pool, workers=[worker])
    assert await pool.fetchval("SELECT count(*) FROM bug_patterns") == 2

    tables = [r[0] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    dump = ""
    for table in tables:
        dump += "\n".join(row[0] for row in await pool.fetch(f'SELECT t::text FROM "{table}" t')) + "\n"
    assert "Incorrect API key provided" in dump  # the failure is there...
    for secret in SECRETS:
        assert secret not in dump  # ...its secrets are not

    letters = await dead_letters(settings)
    assert len(letters) == 1
    raw = letters[0].value + b"".join(v for _, v in letters[0].headers)
    assert b"leak" in raw and not any(s.encode() in raw for s in SECRETS)
    log = worker.log_tail(10_000)
    assert not any(secret in log for secret in SECRETS)
