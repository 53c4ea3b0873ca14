"""conftest.py of the exported pytest stubs: the `gateway` fixture and what each error type's stub checks.

`telemetry-worker export-tests --framework pytest` copies this file's source into the suite as
conftest.py, so it imports nothing but the standard library and pytest. The gateway is reached:
- over HTTP: GATEWAY_URL, an OpenAI-compatible base URL (the request goes to {GATEWAY_URL}/chat/completions),
  with GATEWAY_API_KEY as a bearer token if set;
- or in-process: GATEWAY_HANDLER="package.module:function", called with the captured request (a dict);
  it returns the answer's body (status 200) or a (status, body) pair, and may raise.
GATEWAY_BUDGET_S (default 60) is how long an answer may take, retries and failover included.

What a stub asserts, by the error type its pattern was captured with (worker/failures/remedies.py says
the same in words): no 5xx ever (an unhandled error); timeout, rate_limit, api and auth: an answer (2xx)
within the budget, since the gateway must retry, back off or fail over; context_length: an answer
(truncated or routed to a larger window) or a clear 4xx refusal with an error message; parse: an answer
whose content parses as JSON when the request asked for JSON. A stub whose expectation cannot be checked
(no gateway configured, no captured request) is skipped with the reason: it never passes by default.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pytest

NEEDS_AN_ANSWER = {"timeout", "rate_limit", "api", "auth"}


@dataclass
class Answer:
    status: int
    body: Any
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)


class Gateway:
    def __init__(self, url: str | None, api_key: str | None, handler: str | None, budget_s: float) -> None:
        self.url, self.api_key, self.budget_s = url, api_key, budget_s
        self.handler = None
        if handler:
            module, _, name = handler.partition(":")
            self.handler = getattr(importlib.import_module(module), name)

    def handle_request(self, request: dict) -> Answer:
        began = time.monotonic()
        if self.handler is not None:
            try:
                out = self.handler(request)
            except Exception as error:  # noqa: BLE001 - an exception out of the gateway is an unhandled error
                return Answer(599, {"error": f"{type(error).__name__}: {error}"}, time.monotonic() - began)
            status, body = out if isinstance(out, tuple) else (200, out)
            return Answer(status, body, time.monotonic() - began)
        assert self.url, "GATEWAY_URL or GATEWAY_HANDLER is needed"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        call = urllib.request.Request(
            self.url.rstrip("/") + "/chat/completions", json.dumps(request).encode(), headers, method="POST"
        )
        try:
            with urllib.request.urlopen(call, timeout=self.budget_s) as response:
                return Answer(response.status, _body(response.read()), time.monotonic() - began, dict(response.headers))
        except urllib.error.HTTPError as error:
            return Answer(error.code, _body(error.read()), time.monotonic() - began, dict(error.headers))
        except (TimeoutError, urllib.error.URLError) as error:
            return Answer(599, {"error": f"no answer: {error}"}, time.monotonic() - began)

    def check(self, pattern: dict, request: Any, expected_behavior: str) -> None:
        if request is None:
            pytest.skip("no request was captured for this pattern: write the reproduction by hand")
        answer = self.handle_request(request)
        verdict = judge(pattern.get("errorType", ""), request, answer, self.budget_s)
        assert verdict is None, f"{verdict}. Expected: {expected_behavior}"


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def judge(error_type: str, request: dict, answer: Answer, budget_s: float) -> str | None:
    """None when the answer is what a fixed gateway gives for this error type, else what is wrong."""
    if answer.status >= 500:
        return f"the gateway answered {answer.status} (an unhandled error): {str(answer.body)[:300]}"
    if answer.seconds > budget_s:
        return f"the answer took {answer.seconds:.1f} s, over the {budget_s:g} s budget"
    ok = 200 <= answer.status < 300
    if error_type in NEEDS_AN_ANSWER and not ok:
        return f"the gateway surfaced {answer.status} instead of retrying, backing off or failing over"
    if error_type == "context_length" and not ok:
        message = answer.body.get("error") if isinstance(answer.body, dict) else answer.body
        if answer.status not in (400, 413, 422) or not message:
            return f"an oversized request needs an answer or a clear 4xx refusal with a message, got {answer.status}"
    if error_type == "parse" and ok and _asks_for_json(request):
        try:
            json.loads(answer.body["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError, ValueError):
            return "the request asked for JSON and the answer's content does not parse"
    return None


def _asks_for_json(request: dict) -> bool:
    kind = (request.get("response_format") or {}).get("type") if isinstance(request, dict) else None
    return kind in ("json_object", "json_schema")


@pytest.fixture(scope="session")
def gateway() -> Gateway:
    url, handler = os.environ.get("GATEWAY_URL"), os.environ.get("GATEWAY_HANDLER")
    if not url and not handler:
        pytest.skip("set GATEWAY_URL (an OpenAI-compatible base URL) or GATEWAY_HANDLER (module:function)")
    return Gateway(url, os.environ.get("GATEWAY_API_KEY"), handler, float(os.environ.get("GATEWAY_BUDGET_S", "60")))
