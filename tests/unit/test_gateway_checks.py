"""What an exported pytest stub asserts per error type (worker/failures/gateway_checks.py, shipped as
the suite's conftest.py): a fixed gateway passes, each way of still being broken fails with the reason."""

import pytest

from worker.failures.gateway_checks import Answer, judge

OK = {"choices": [{"message": {"content": "fine"}}]}
ASK = {"messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(
    ("error_type", "request_", "answer", "says"),
    [
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
    ],
)  # fmt: skip
def test_each_error_type_is_judged_by_what_its_fix_must_do(error_type, request_, answer, says):
    verdict = judge(error_type, request_, answer, budget_s=60.0)
    if says is None:
        assert verdict is None
    else:
        assert verdict is not None and says in verdict
