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
