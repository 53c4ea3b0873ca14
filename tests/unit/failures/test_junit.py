"""JUnit XML from CI -> each regression stub's outcome: pytest's and Vitest's reports, the gateway's
other tests ignored, a stub reported twice keeping its worse outcome, hostile XML refused."""

import pytest

from worker.failures.junit import MAX_BYTES, JunitError, parse

A = "regression_timeout_0123456789abcdef"
B = "regression_rate_limit_fedcba9876543210"
C = "regression_context_length_00112233445566aa"

PYTEST = f"""<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="4">
  <testcase classname="test_{A}" name="test_{A}" time="0.010" />
  <testcase classname="test_{B}" name="test_{B}" time="0.020">
    <failure message="AssertionError: a 429 must back off; got 500 for key sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2">trace</failure>
  </testcase>
  <testcase classname="test_{C}" name="test_{C}" time="0.001">
    <skipped type="pytest.skip" message="cannot be checked: the gateway truncates silently">skip</skipped>
  </testcase>
  <testcase classname="tests.test_health" name="test_health_endpoint" time="0.001" />
</testsuite></testsuites>"""

VITEST = f"""<?xml version="1.0" encoding="UTF-8" ?>
<testsuites name="vitest tests" tests="3" failures="1" errors="0" time="0.5">
  <testsuite name="regressions/{A}.test.ts" timestamp="2026-12-03T01:00:00" hostname="ci" tests="2" failures="1">
    <testcase classname="regressions/{A}.test.ts" name="{A} &gt; a timeout is retried within budget" time="0.01">
      <failure message="expected 504 to be 200" type="AssertionError">AssertionError</failure>
    </testcase>
    <testcase classname="regressions/{A}.test.ts" name="{A} &gt; the fallback answers" time="0.01" />
  </testsuite>
  <testsuite name="regressions/{B}.test.ts" tests="1"><testcase classname="regressions/{B}.test.ts" name="{B} &gt; backs off" /></testsuite>
</testsuites>"""


def test_pytest_outcomes_per_stub_with_the_other_tests_ignored_and_messages_redacted():
    report = parse(PYTEST)
    assert (report.cases, report.not_stubs) == (4, 1)
    assert {name: r.outcome for name, r in report.results.items()} == {A: "passed", B: "failed", C: "skipped"}
    assert report.results[B].message.startswith("AssertionError: a 429 must back off")
    assert "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2" not in report.results[B].message
    assert "cannot be checked" in report.results[C].message


def test_vitest_outcomes_a_stub_with_one_failing_case_failed():
    report = parse(VITEST.encode())
    assert {name: r.outcome for name, r in report.results.items()} == {A: "failed", B: "passed"}
    assert report.results[A].message == "expected 504 to be 200"


@pytest.mark.parametrize(
    ("xml", "says"),
    [
        ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><testsuites>&b;</testsuites>',
         "forbidden XML feature"),
        ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><testsuites>&e;</testsuites>',
         "forbidden XML feature"),
        ("<testsuites><testcase", "not well-formed"),
        ("<html><body>502 Bad Gateway</body></html>", "root element is <html>"),
        ("<testsuites>" + " " * MAX_BYTES + "</testsuites>", "at most 1,000,000"),
    ],
    ids=["entity expansion", "external entity", "truncated", "not junit", "too large"],
)  # fmt: skip
def test_what_cannot_be_read_is_refused_with_the_reason(xml, says):
    with pytest.raises(JunitError, match=says):
        parse(xml)


NODE = f"""<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="{A}" tests="1" failures="1">
    <testcase name="The gateway retries the call up to 2 times" classname="test" failure="the gateway answered 504">
      <failure type="testCodeFailure" message="the gateway answered 504 (an unhandled error)">trace</failure>
    </testcase>
  </testsuite>
  <testsuite name="{B}" tests="1"><testcase name="The gateway honours retry-after" classname="test"/></testsuite>
  <testcase name="a top-level test" classname="test"/>
</testsuites>"""


def test_node_test_runner_outcomes_named_by_the_enclosing_suite():
    report = parse(NODE)
    assert {name: r.outcome for name, r in report.results.items()} == {A: "failed", B: "passed"}
    assert (report.cases, report.not_stubs) == (3, 1)
