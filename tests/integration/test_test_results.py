"""The bug loop's way back: exported pytest stubs run by a real pytest, its JUnit XML sent with
`telemetry-worker record-test-results` and over HTTP, stored per stub once per run, a regression
(a stub failing after it passed) failing the CI step, and get_regression_tests showing each stub's
last result, passes, failures and flakiness."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests import samples
from tests.integration.harness import settings_env
from tests.integration.test_tools import call
from worker.calls import flush_plan
from worker.calls.decode import to_call
from worker.calls.events import CallFailed
from worker.reporting.export import export_tests
from worker.store.flush import write_flush
from worker.store.migrate import migrate
from worker.store.offsets import stored_offsets

FAILURES = {  # error type -> (category, message): one bug pattern, and one stub, each
    "timeout": ("routing", "Request to api.example.com timed out after 30000ms"),
    "rate_limit": ("routing", "Rate limit reached for requests (429), retry after 20s"),
    "context_length": ("validation", "This model's maximum context length is 8192 tokens"),
}

# The suite's `gateway` fixture, as a gateway team writes it: here a gateway that still times out
# (the bug is not fixed) for the error types in BROKEN, and answers the others.
CONFTEST = """
import os
import pytest

BROKEN = set(filter(None, os.environ.get("BROKEN", "").split(",")))


class Gateway:
    def handle_request(self, request):
        if request["messages"][0]["content"] in BROKEN:
            raise TimeoutError("the gateway still fails this request")
        return {"choices": [{"message": {"content": "ok"}}]}


@pytest.fixture
def gateway():
    return Gateway()
"""


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


def run_stubs(suite: Path, broken: str, junit: Path) -> None:
    """The exported suite with the team's conftest, as their CI runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", str(suite)],
        env={"PATH": "", "BROKEN": broken},
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


async def test_stub_results_come_back_once_per_run_and_a_regression_fails_the_step(
    settings, migrated, tmp_path, workers
):
    async with migrated.acquire() as conn:
        await patterns_with_stubs(conn)
        suite = tmp_path / "suite"
        written = await export_tests(conn, "pytest", suite)
    assert len(written) == 3
    (suite / "conftest.py").write_text(CONFTEST)

    # 1. the first run: the timeout is not fixed yet
    run_stubs(suite, "timeout", tmp_path / "run1.xml")
    first = record(settings, tmp_path / "run1.xml", "c0ffee1", "ci-1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "run ci-1 recorded: 2 passed, 1 failed, 0 skipped" in " ".join(first.stdout.split())
    again = record(settings, tmp_path / "run1.xml", "c0ffee1", "ci-1")  # CI retried the step
    assert again.returncode == 0 and "already recorded (nothing changed)" in again.stdout
    assert await migrated.fetchval("SELECT count(*) FROM regression_test_results") == 3

    # 2. the timeout is fixed, but the rate limit comes back: that stub passed before, so the step fails
    run_stubs(suite, "rate_limit", tmp_path / "run2.xml")
    second = record(settings, tmp_path / "run2.xml", "c0ffee2", "ci-2")
    assert second.returncode == 1
    assert "regressed (failed after passing): regression_rate_limit_" in " ".join(second.stderr.split())

    # 3. over HTTP (what the CI templates call): the same report on the same commit, now passing, makes the
    # rate-limit stub flaky on that commit; the answer names no regression
    worker = workers(tools_token="t")
    await worker.wait_ready()
    run_stubs(suite, "", tmp_path / "run3.xml")
    body = {"junitXml": (tmp_path / "run3.xml").read_text(), "commit": "c0ffee2", "runId": "ci-2-retry"}
    async with aiohttp.ClientSession() as http:
        status, answer = await call(
            http, worker.settings.web_port, "record_test_results", body, headers={"Authorization": "Bearer t"}
        )
        assert status == 200, answer
        assert (answer["recorded"], answer["passed"], answer["failed"], answer["regressions"]) == (True, 3, 0, [])
        status, refused = await call(
            http, worker.settings.web_port, "record_test_results", {**body, "junitXml": "<html>502</html>"},
            headers={"Authorization": "Bearer t"},
        )  # fmt: skip
        assert status == 422 and "root element is <html>" in refused["message"]
        status, page = await call(
            http, worker.settings.web_port, "get_regression_tests", {}, headers={"Authorization": "Bearer t"}
        )
    assert status == 200
    rows = {r["test_name"].split("_")[1]: r for r in page["items"]}  # the gateway's column names, as stored
    timeout, rate = rows["timeout"], rows["rate"]
    assert (timeout["last_result"], timeout["passes"], timeout["failures"], timeout["flaky"]) == ("passed", 2, 1, False)
    assert (rate["last_result"], rate["passes"], rate["failures"], rate["flaky"]) == ("passed", 2, 1, True)
    assert rate["last_commit"] == "c0ffee2"


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
