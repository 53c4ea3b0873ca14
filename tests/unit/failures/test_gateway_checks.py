"""What an exported pytest stub asserts per error type (worker/failures/gateway_checks.py, shipped as
the suite's conftest.py): a fixed gateway passes, each way of still being broken fails with the reason."""

import json
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest

from worker.failures import gateway_checks
from worker.failures.gateway_checks import Answer, judge

OK = {"choices": [{"message": {"content": "fine"}}]}
ASK = {"messages": [{"role": "user", "content": "x"}]}


CASES = [
        ("timeout", ASK, Answer(200, OK, 2.0), None),
        ("timeout", ASK, Answer(504, {"error": "upstream timed out"}, 30.0), "unhandled error"),
        ("timeout", ASK, Answer(200, OK, 75.0), "over the 60 s budget"),
        ("rate_limit", ASK, Answer(429, {"error": "slow down"}, 0.1), "surfaced 429"),
        ("api", ASK, Answer(200, OK, 0.5), None),
        ("auth", ASK, Answer(401, {"error": "bad key"}, 0.1), "surfaced 401"),
        ("context_length", ASK, Answer(200, OK, 1.0), None),  # truncated or routed to a larger window
        ("context_length", ASK, Answer(400, {"error": {"message": "too long: 9000 > 8192 tokens"}}, 0.1), None),
        ("context_length", ASK, Answer(400, {}, 0.1), "clear 4xx refusal"),
        ("context_length", ASK, Answer(500, "Internal Server Error", 0.1), "unhandled error"),
        ("parse", {**ASK, "response_format": {"type": "json_object"}}, Answer(200, OK, 0.1), "does not parse"),
        ("parse", {**ASK, "response_format": {"type": "json_object"}},
         Answer(200, {"choices": [{"message": {"content": '{"a": 1}'}}]}, 0.1), None),
        ("parse", ASK, Answer(200, OK, 0.1), None),  # no JSON asked for: any answer
        ("something_new", ASK, Answer(404, {"error": "no such model"}, 0.1), None),  # no 5xx is all it asks
        ("something_new", ASK, Answer(502, "Bad Gateway", 0.1), "unhandled error"),
]  # fmt: skip


@pytest.mark.parametrize(("error_type", "request_", "answer", "says"), CASES)
def test_each_error_type_is_judged_by_what_its_fix_must_do(error_type, request_, answer, says):
    verdict = judge(error_type, request_, answer, budget_s=60.0)
    if says is None:
        assert verdict is None
    else:
        assert verdict is not None and says in verdict


def test_the_vitest_stubs_checks_judge_as_the_pytest_suites_do(tmp_path):
    """gateway_checks.js (embedded in every Vitest stub) against gateway_checks.py, case by case."""
    node = shutil.which("node")
    assert node, "node is needed (make install checks for npm and node)"
    module = tmp_path / "checks.mjs"
    shutil.copy(Path(gateway_checks.__file__).with_suffix(".js"), module)
    script = tmp_path / "run.mjs"
    script.write_text(
        'import { judge } from "./checks.mjs";\n'
        'import { readFileSync } from "node:fs";\n'
        "const cases = JSON.parse(readFileSync(0, 'utf8'));\n"
        "console.log(JSON.stringify(cases.map(([t, r, a]) => judge(t, r, a, 60))));\n"
    )
    cases = [[t, r, {k: v for k, v in asdict(a).items() if k != "headers"}] for t, r, a, _ in CASES]
    done = subprocess.run([node, str(script)], input=json.dumps(cases), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    from_js = json.loads(done.stdout)
    from_py = [judge(t, r, a, 60.0) for t, r, a, _ in CASES]
    assert [v is None for v in from_js] == [v is None for v in from_py]
    for js, py, (_, _, _, says) in zip(from_js, from_py, CASES, strict=True):
        if says is not None:
            assert says in js and says in py
