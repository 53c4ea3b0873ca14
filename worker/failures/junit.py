"""A CI run's JUnit XML -> the outcome of each regression stub it ran.

pytest (`--junitxml`), Vitest (`--reporter=junit`) and Node's test runner (`--test-reporter=junit`)
write JUnit XML. A stub is recognised by its name (worker.failures.stubs: `regression_<error type>_<16
hex>`): pytest has it in the test case's name (`test_regression_...`), Vitest in its name
(`regression_... > it`) or its file, Node in the enclosing suite's name (the `describe`).
The report comes from a CI job, so it is parsed as untrusted text: defusedxml refuses entity expansion
and external DTDs, and sizes and counts are bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from worker.calls.redaction import redact_text

MAX_BYTES = 1_000_000  # the tools' HTTP bodies are bounded at 1 MiB: split a larger suite by category
MAX_CASES = 20_000
MAX_MESSAGE = 300  # characters of a failure's message kept (redacted), for the operator reading the row

STUB = re.compile(r"regression_[a-z0-9_]*?_[0-9a-f]{16}(?![0-9a-f])")

Outcome = Literal["passed", "failed", "skipped"]
_RANK = {"passed": 0, "skipped": 1, "failed": 2}  # a stub reported twice in one run: the worse outcome counts


class JunitError(ValueError):
    """The report cannot be read; the message says why, for the caller to fix."""


@dataclass(frozen=True)
class StubResult:
    test_name: str
    outcome: Outcome
    message: str = ""


@dataclass(frozen=True)
class Report:
    results: dict[str, StubResult]  # test name -> its outcome in this run
    cases: int  # test cases in the report
    not_stubs: int  # test cases whose names are not a stub's (the gateway's other tests)


def parse(xml: str | bytes) -> Report:
    data = xml.encode() if isinstance(xml, str) else xml
    if len(data) > MAX_BYTES:
        raise JunitError(f"the report is {len(data):,} bytes; at most {MAX_BYTES:,} are read (send one per category)")
    try:
        root = ElementTree.fromstring(data)
    except DefusedXmlException as error:
        raise JunitError(f"the report uses a forbidden XML feature ({type(error).__name__})") from None
    except ElementTree.ParseError as error:
        raise JunitError(f"the report is not well-formed XML ({error})") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise JunitError(f"the root element is <{root.tag}>; a JUnit report has <testsuites> or <testsuite>")
    results: dict[str, StubResult] = {}
    cases = not_stubs = 0
    for suite, case in _cases(root, ""):
        cases += 1
        if cases > MAX_CASES:
            raise JunitError(f"the report has more than {MAX_CASES:,} test cases (send one per category)")
        found = STUB.search(case.get("name", "")) or STUB.search(
            " ".join((case.get("classname", ""), case.get("file", ""), suite))
        )
        if found is None:
            not_stubs += 1
            continue
        result = _outcome(found.group(0), case)
        kept = results.get(result.test_name)
        if kept is None or _RANK[result.outcome] > _RANK[kept.outcome]:
            results[result.test_name] = result
    return Report(results, cases, not_stubs)


def _cases(element, suites: str):
    """(the names of its enclosing suites, test case), depth first: Node's test runner names the stub
    in the suite (its `describe`), not in the case."""
    for child in element:
        if child.tag == "testcase":
            yield suites, child
        elif child.tag in ("testsuite", "testsuites"):
            yield from _cases(child, f"{suites} {child.get('name', '')}")


def _outcome(name: str, case) -> StubResult:
    checks: tuple[tuple[str, Outcome], ...] = (("failure", "failed"), ("error", "failed"), ("skipped", "skipped"))
    for tag, outcome in checks:
        element = case.find(tag)
        if element is not None:
            text = element.get("message") or (element.text or "")
            return StubResult(name, outcome, redact_text(text.strip()[:MAX_MESSAGE]))
    return StubResult(name, "passed")
