"""`telemetry-worker export-tests`: regression stubs as files to drop into the gateway's test suite."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import orjson

from worker.failures import gateway_checks
from worker.failures.stubs import StubSpec, filename, render
from worker.store import reports as reads

HOW_TO_RUN = {
    "vitest": "Run `GATEWAY_URL=http://your-gateway/v1 GATEWAY_API_KEY=... npx vitest run` on these files (an "
    "OpenAI-compatible endpoint), or set GATEWAY_MODULE to a module whose handleRequest(request) calls the "
    "gateway in-process. Each file holds its checks; a stub that cannot be checked is skipped with the reason. "
    "Add --reporter=junit --outputFile=results.xml and send it with record_test_results.",
    "pytest": "Run `GATEWAY_URL=http://your-gateway/v1 GATEWAY_API_KEY=... pytest` here (an OpenAI-compatible "
    "endpoint), or set GATEWAY_HANDLER=package.module:function to call the gateway in-process. conftest.py "
    "holds the `gateway` fixture and what each error type's stub checks; a stub that cannot be checked is "
    "skipped with the reason. Add --junitxml=results.xml and send it with record_test_results.",
}


async def export_tests(conn: asyncpg.Connection, framework: str, out: Path, category: str | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: list[str] = []
    for row in await reads.stubs_to_export(conn, category):
        if row["fingerprint"] is None:  # recorded by hand: only its stored code exists
            if framework != "vitest":
                skipped.append(row["test_name"])
                continue
            path = out / f"{row['test_name']}.test.ts"
            path.write_text(row["test_code"], encoding="utf-8")
        else:
            request = None if row["example_request"] is None else orjson.loads(row["example_request"])
            spec = StubSpec(
                row["fingerprint"],
                row["error_type"],
                row["category"],
                row["pattern"],
                row["expected_behavior"],
                request,
            )
            path = out / filename(spec, framework)
            path.write_text(render(spec, framework), encoding="utf-8")
        written.append(path)
    if framework == "pytest":  # the fixture and the checks the stubs call, standard library and pytest only
        (out / "conftest.py").write_text(Path(gateway_checks.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    notes = (
        f"\n\nNot exported (hand-written tests have no {framework} rendering): {', '.join(skipped)}" if skipped else ""
    )
    (out / "README.md").write_text(
        f"# Regression tests from gateway-telemetry-worker ({framework})\n\n{HOW_TO_RUN[framework]}{notes}\n",
        encoding="utf-8",
    )
    return written
