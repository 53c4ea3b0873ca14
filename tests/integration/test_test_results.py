"""The bug loop's way back: the exported pytest stubs run by a real pytest against a gateway, their JUnit
XML sent with `telemetry-worker record-test-results`, over HTTP and by the CI script, stored per stub
once per run; patterns resolved by passing stubs or an operator and regressed when a failure comes
back, each transition once; a regression failing the CI step."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests import samples
from tests.integration.harness import serve_on_loopback, settings_env
from tests.integration.test_tools import call
from worker.calls.decode import to_call
from worker.calls.events import CallFailed
from worker.flush import plan as flush_plan
from worker.reporting.export import export_tests
from worker.store.flush import write_flush
from worker.store.migrate import migrate
from worker.store.offsets import stored_offsets

FAILURES = {  # error type -> (category, message): one bug pattern, and one stub, each
    "timeout": ("routing", "Request to api.example.com timed out after 30000ms"),
    "rate_limit": ("routing", "Rate limit reached for requests (429), retry after 20s"),
    "context_length": ("validation", "This model's maximum context length is 8192 tokens"),
}


class FakeGateway:
    """An OpenAI-compatible gateway on loopback that still has some of the captured bugs: a request whose
    message names an error type in `broken` fails the way that bug does; the others are answered."""

    FAILS = {
        "timeout": (504, "upstream timed out"),
        "rate_limit": (429, "rate limited"),
        "context_length": (500, "boom"),
    }

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.runner, self.port = await serve_on_loopback([web.post("/v1/chat/completions", self.answer)])

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def answer(self, request: web.Request) -> web.Response:
        kind = (await request.json())["messages"][0]["content"]
        if kind in self.broken:
            status, message = self.FAILS[kind]
            return web.json_response({"error": {"message": message}}, status=status)
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": "ok"}}]})


async def patterns_with_stubs(conn) -> None:
    now = dt.datetime.now(dt.UTC).isoformat()
    calls = [
        to_call(
            CallFailed.model_validate(
                samples.failed(
                    event_id=str(uuid.uuid4()),
                    occurred_at=now,
                    error_type=error_type,
                    category=category,
                    error_message=message,
                    request={"messages": [{"role": "user", "content": error_type}], "max_tokens": 10},
                )
            )
        )
        for error_type, (category, message) in FAILURES.items()
    ]
    await stored_offsets(conn, "g", [("calls", 0)])
    await write_flush(
        conn, flush_plan.plan(calls, now=0.0), group="g", expected={("calls", 0): -1}, next_offsets={("calls", 0): 3},
        dead_letters=0,
    )  # fmt: skip


def run_stubs(suite: Path, gateway_url: str, junit: Path) -> None:
    """The exported suite as the gateway team's CI runs it: pytest, GATEWAY_URL, a JUnit report."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", str(suite)],
        env={"PATH": "", "GATEWAY_URL": gateway_url, "GATEWAY_BUDGET_S": "10"},
        cwd=suite,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: some stubs failed, as they should
    assert junit.exists()


def record(settings, junit: Path, commit: str, run_id: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "record-test-results", "--junit", str(junit), "--commit", commit,
         "--run-id", run_id],
        env={**settings_env(settings), "PATH": "", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


@pytest.fixture
async def migrated(pool):
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool


async def test_exported_stubs_run_against_a_gateway_and_their_results_drive_the_patterns(
    settings, migrated, tmp_path, workers
):
    """The exported pytest suite (its own conftest.py, GATEWAY_URL) against a fake gateway that still has
    the timeout bug; results sent with the CLI and over HTTP. Patterns resolve after two passing runs
    (PATTERN_RESOLVE_PASSES=2, no quiet period here), the timeout once it is fixed, and the rate limit
    regresses when its failure comes back: the step fails, and on the worker the regression counter moves."""
    settings = settings.model_copy(update={"pattern_resolve_passes": 2, "pattern_resolve_quiet_s": 0})
    async with migrated.acquire() as conn:
        await patterns_with_stubs(conn)
        suite = tmp_path / "suite"
        written = await export_tests(conn, "pytest", suite)
    assert len(written) == 3 and (suite / "conftest.py").exists()
    gateway = FakeGateway()
    await gateway.start()
    url = f"http://127.0.0.1:{gateway.port}/v1"

    async def statuses() -> dict[str, str]:
        rows = await migrated.fetch("SELECT error_type, status FROM bug_patterns")
        return {r["error_type"]: r["status"] for r in rows}

    try:
        # 1. the timeout is not fixed yet; run 1 sent twice (CI retried the step): recorded once
        gateway.broken = {"timeout"}
        await asyncio.to_thread(run_stubs, suite, url, tmp_path / "run1.xml")  # the gateway answers meanwhile
        first = record(settings, tmp_path / "run1.xml", "c0ffee1", "ci-1")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "run ci-1 recorded: 2 passed, 1 failed, 0 skipped" in " ".join(first.stdout.split())
        again = record(settings, tmp_path / "run1.xml", "c0ffee1", "ci-1")
        assert again.returncode == 0 and "already recorded (nothing changed)" in again.stdout
        assert await migrated.fetchval("SELECT count(*) FROM regression_test_results") == 3

        # 2. a second run: the two fixed patterns pass twice in a row and are resolved, the timeout is not
        await asyncio.to_thread(run_stubs, suite, url, tmp_path / "run2.xml")  # the gateway answers meanwhile
        assert record(settings, tmp_path / "run2.xml", "c0ffee2", "ci-2").returncode == 0
        assert await statuses() == {"timeout": "open", "rate_limit": "resolved", "context_length": "resolved"}

        # 3. the timeout is fixed but the rate limit comes back: the step fails, the pattern regresses
        gateway.broken = {"rate_limit"}
        await asyncio.to_thread(run_stubs, suite, url, tmp_path / "run3.xml")  # the gateway answers meanwhile
        third = record(settings, tmp_path / "run3.xml", "c0ffee3", "ci-3")
        assert third.returncode == 1
        assert "regressed (failed after passing): regression_rate_limit_" in " ".join(third.stderr.split())
        assert (await statuses())["rate_limit"] == "regressed"

        # 4. over HTTP (what the CI templates call), on a worker: the timeout passes a second time and is
        # resolved; the rate limit is fixed again on the same commit (its stub is flaky there); the
        # context-length bug comes back, and the worker counts that regression for the alert
        gateway.broken = {"context_length"}
        worker = workers(tools_token="t", pattern_resolve_passes=2, pattern_resolve_quiet_s=0)
        await worker.wait_ready()
        await asyncio.to_thread(run_stubs, suite, url, tmp_path / "run4.xml")  # the gateway answers meanwhile
        body = {"junitXml": (tmp_path / "run4.xml").read_text(), "commit": "c0ffee3", "runId": "ci-3-retry"}
        auth = {"Authorization": "Bearer t"}
        async with aiohttp.ClientSession() as http:
            status, answer = await call(http, worker.settings.web_port, "record_test_results", body, headers=auth)
            assert status == 200, answer
            assert (answer["recorded"], answer["passed"], answer["failed"]) == (True, 2, 1)
            assert [r.split("_")[1] for r in answer["regressions"]] == ["context"]
            assert len(answer["resolvedPatterns"]) == len(answer["regressedPatterns"]) == 1
            exported = await worker.metrics()  # what TelemetryBugPatternRegressed reads
            assert exported["telemetry_bug_patterns_regressed_total"] == 1
            status, refused = await call(
                http, worker.settings.web_port, "record_test_results", {**body, "junitXml": "<html>502</html>"},
                headers=auth,
            )  # fmt: skip
            assert status == 422 and "root element is <html>" in refused["message"]
            status, page = await call(http, worker.settings.web_port, "get_regression_tests", {}, headers=auth)
        assert status == 200
    finally:
        await gateway.stop()
    assert await statuses() == {"timeout": "resolved", "rate_limit": "regressed", "context_length": "regressed"}
    rows = {r["test_name"].split("_")[1]: r for r in page["items"]}  # the gateway's column names, as stored
    timeout, rate = rows["timeout"], rows["rate"]
    assert (timeout["last_result"], timeout["passes"], timeout["failures"], timeout["flaky"]) == ("passed", 2, 2, False)
    assert (rate["last_result"], rate["passes"], rate["failures"], rate["flaky"]) == ("passed", 3, 1, True)
    assert rate["last_commit"] == "c0ffee3"


# A stand-in for `npx vitest run --reporter=junit` (Vitest cannot be installed here: it needs native
# binaries): it "runs" each stub file the script wrote and reports in Vitest's JUnit shape, failing the
# stubs of the error types in BROKEN.
FAKE_VITEST = """
import os, pathlib
broken = set(filter(None, os.environ.get("BROKEN", "").split(",")))
cases = []
for path in sorted(pathlib.Path(os.environ["STUBS_DIR"]).glob("*.test.ts")):
    name = path.name.removesuffix(".test.ts")
    failed = any(name.startswith(f"regression_{kind}_") for kind in broken)
    body = '<failure message="expected a clear 4xx, got 500" type="AssertionError"/>' if failed else ""
    cases.append(f'<testcase classname="{path}" name="{name} &gt; handles it">{body}</testcase>')
pathlib.Path(os.environ["JUNIT"]).write_text(
    '<?xml version="1.0"?><testsuites name="vitest tests"><testsuite name="stubs">' + "".join(cases) + "</testsuite></testsuites>"
)
"""


async def test_the_ci_script_fetches_the_stubs_through_the_tools_and_fails_the_job_on_a_regression(
    settings, migrated, tmp_path, workers
):
    async with migrated.acquire() as conn:
        await patterns_with_stubs(conn)
    worker = workers(tools_token="t")
    await worker.wait_ready()
    (tmp_path / "fake_vitest.py").write_text(FAKE_VITEST)
    script = Path(__file__).resolve().parents[2] / "deploy" / "ci" / "regression-stubs.sh"

    def job(run_id: str, broken: str) -> subprocess.CompletedProcess:
        env = {
            "PATH": os.environ["PATH"],
            "WORKER_URL": f"http://127.0.0.1:{worker.settings.web_port}",
            "WORKER_TOKEN": "t",
            "COMMIT": "abc123",
            "RUN_ID": run_id,
            "RUN_STUBS": f"{sys.executable} {tmp_path / 'fake_vitest.py'}",
            "BROKEN": broken,
        }
        return subprocess.run(["bash", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    first = job("ci-1", "")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 written to regressions" in first.stdout and "run ci-1 recorded: 3 passed, 0 failed" in first.stdout
    assert len(list((tmp_path / "regressions").glob("regression_*.test.ts"))) == 3
    second = job("ci-2", "context_length")
    assert second.returncode == 1, second.stdout + second.stderr
    assert "regressed (failed after passing): regression_context_length_" in second.stderr
    away = subprocess.run(
        ["bash", str(script)],
        env={"PATH": os.environ["PATH"], "WORKER_URL": "http://127.0.0.1:9", "WORKER_TOKEN": "t", "COMMIT": "x"},
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert away.returncode == 2 and "cannot read" in away.stderr


def junit_of(outcomes: dict[str, str]) -> str:
    """A pytest-shaped report: stub name -> passed or failed."""
    cases = "".join(
        f'<testcase classname="test_{name}" name="test_{name}">'
        + ('<failure message="still broken"/>' if outcome == "failed" else "")
        + "</testcase>"
        for name, outcome in outcomes.items()
    )
    return f'<testsuites><testsuite name="pytest">{cases}</testsuite></testsuites>'


async def test_patterns_are_resolved_by_passing_stubs_or_an_operator_and_regress_exactly_once(settings, migrated):
    from worker.failures.junit import parse
    from worker.store import tools as store
    from worker.tools.invoke import invoke
    from worker.tools.service import ToolService

    async with migrated.acquire() as conn:
        await patterns_with_stubs(conn)
        stubs = {
            r["test_name"].split("_")[1]: r["test_name"]
            for r in await conn.fetch("SELECT test_name FROM regression_tests")
        }
        names = list(stubs.values())

        async def run(run_id: str, failing: str = ""):
            outcomes = {n: "failed" if failing and stubs[failing] == n else "passed" for n in names}
            return await store.record_run(conn, run_id, "c1", "ci", parse(junit_of(outcomes)), 2, 0.0)

        async def status() -> dict[str, tuple[str, str, str | None]]:
            rows = await conn.fetch("SELECT error_type, status, severity, status_by FROM bug_patterns")
            return {r["error_type"].split("_")[0]: (r["status"], r["severity"], r["status_by"]) for r in rows}

        severity = {k: v[1] for k, v in (await status()).items()}
        assert (await run("r1")).resolved == []  # one pass is not yet two in a row
        second = await run("r2")
        assert len(second.resolved) == 3 and {s for s, _, _ in (await status()).values()} == {"resolved"}
        assert not (await run("r2")).recorded  # the same run again: nothing moves
        assert await conn.fetchval("SELECT count(*) FROM bug_pattern_transitions") == 3

        # occurrences come back: regressed by the flush that counts them, once, however often it is re-sent
        now = dt.datetime.now(dt.UTC).isoformat()
        again = [
            to_call(CallFailed.model_validate(samples.failed(
                event_id=f"00000000-0000-4000-8000-00000000000{i}", occurred_at=now, error_type="timeout",
                category="routing", error_message=FAILURES["timeout"][1],
            )))
            for i in range(2)
        ]  # fmt: skip
        outcomes = []
        for offset in (3, 5):
            outcomes.append(
                await write_flush(
                    conn,
                    flush_plan.plan(again, now=0.0),
                    group="g",
                    expected={("calls", 0): offset},
                    next_offsets={("calls", 0): offset + 2},
                    dead_letters=0,
                )  # fmt: skip
            )
        assert [o.regressed_patterns for o in outcomes] == [1, 0]
        timeout = (await status())["timeout"]
        assert timeout[0] == "regressed" and timeout[2] == "worker"
        raised = {"low": "medium", "medium": "high", "high": "critical", "critical": "critical"}
        assert timeout[1] == raised[severity["timeout"]]

        # its stub fails in CI after it was resolved: regressed by CI
        third = await run("r3", failing="rate")
        assert len(third.regressed) == 1 and third.regressions == [stubs["rate"]]
        assert (await status())["rate"][0::2] == ("regressed", "ci")

    service = await ToolService.connect(settings)
    try:
        (fingerprint,) = third.regressed
        body = {"fingerprint": fingerprint, "by": "alice", "reason": "retry budget fixed in #123"}
        first = await invoke(service, "resolve_bug_pattern", orjson.dumps(body))
        repeat = await invoke(service, "resolve_bug_pattern", orjson.dumps(body))
        missing = await invoke(service, "resolve_bug_pattern", orjson.dumps({**body, "fingerprint": "0" * 16}))
        page = await invoke(service, "get_bug_patterns", {})
    finally:
        await service.close()
    assert (first.status, first.body["status"], first.body["changed"]) == (200, "resolved", True)
    assert (repeat.status, repeat.body["changed"]) == (200, False)
    assert missing.status == 422 and "no bug pattern has the fingerprint" in missing.body["message"]
    rows = {r["fingerprint"]: r for r in page.body["items"]}
    assert rows[fingerprint]["status"] == "resolved" and rows[fingerprint]["status_by"] == "operator:alice"
    assert rows[fingerprint]["last_result"] == "failed"
    transitions = await migrated.fetch(
        "SELECT from_status, to_status, changed_by FROM bug_pattern_transitions t JOIN bug_patterns p "
        "ON p.id = t.pattern_id WHERE p.fingerprint = $1 ORDER BY t.id",
        fingerprint,
    )
    assert [tuple(t) for t in transitions] == [
        ("open", "resolved", "ci"), ("resolved", "regressed", "ci"), ("regressed", "resolved", "operator:alice")
    ]  # fmt: skip


def run_node_stubs(suite: Path, run_dir: Path, gateway_url: str | None) -> Path:
    """The exported Vitest stubs, each file as it is, under Node's test runner with a two-line stand-in
    for the `vitest` module (Vitest itself needs native binaries this machine cannot install)."""
    shim = run_dir / "node_modules" / "vitest"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "package.json").write_text('{"name": "vitest", "type": "module", "exports": "./index.mjs"}')
    (shim / "index.mjs").write_text('export { describe, it } from "node:test";\n')
    files = []
    for stub in sorted(suite.glob("*.test.ts")):  # the stubs are plain JavaScript in a .ts file
        files.append(run_dir / stub.name.replace(".test.ts", ".test.mjs"))
        files[-1].write_text(stub.read_text())
    junit = run_dir / "results.xml"
    env = {"PATH": os.environ["PATH"], **({"GATEWAY_URL": gateway_url} if gateway_url else {})}
    done = subprocess.run(
        ["node", "--test", "--test-reporter=junit", f"--test-reporter-destination={junit}", *map(str, files)],
        env=env, cwd=run_dir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode in (0, 1) and junit.exists(), done.stdout + done.stderr
    return junit


async def test_the_exported_vitest_stubs_check_a_gateway_and_say_so_when_they_cannot(migrated, tmp_path):
    from worker.failures.junit import parse
    from worker.store import tools as store

    async with migrated.acquire() as conn:
        await patterns_with_stubs(conn)
        suite = tmp_path / "suite"
        written = await export_tests(conn, "vitest", suite)
    assert len(written) == 3
    gateway = FakeGateway()
    await gateway.start()
    try:
        gateway.broken = {"timeout"}
        url = f"http://127.0.0.1:{gateway.port}/v1"
        checked = await asyncio.to_thread(run_node_stubs, suite, tmp_path / "run", url)
        unset = await asyncio.to_thread(run_node_stubs, suite, tmp_path / "unset", None)
    finally:
        await gateway.stop()
    report = parse(checked.read_bytes())
    outcomes = {name.split("_")[1]: r for name, r in report.results.items()}
    assert {k: r.outcome for k, r in outcomes.items()} == {"timeout": "failed", "rate": "passed", "context": "passed"}
    assert "the gateway answered 504 (an unhandled error)" in outcomes["timeout"].message
    assert {r.outcome for r in parse(unset.read_bytes()).results.values()} == {"skipped"}  # never a silent pass
    async with migrated.acquire() as conn:
        run = await store.record_run(conn, "node-1", "c1", "ci", report)
    assert run.recorded and run.unknown == []
