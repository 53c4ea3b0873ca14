"""Webhook notifications, pure: one key per incident, the two body formats, a signature a receiver can
check, and the back-off that spares a receiver that is down."""

import hashlib
import hmac
import json

from worker.notifications.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Notification,
    backoff_s,
    body,
    bug_pattern,
    experiment,
    headers,
    model_breaker,
)


def test_one_key_per_incident_whatever_re_runs_its_cause():
    first = model_breaker("model_degraded", "gpt-4o", "coding", "failure rate 0.62 > 0.2", 1000.4, 1003.0)
    again = model_breaker("model_degraded", "gpt-4o", "coding", "failure rate 0.70 > 0.2", 1000.9, 1010.0)
    later = model_breaker("model_degraded", "gpt-4o", "coding", "failure rate 0.5 > 0.2", 5000.0, 5002.0)
    restored = model_breaker("model_recovered", "gpt-4o", "coding", "probes healthy", 1000.4, 1100.0)
    assert first.key == again.key != later.key and restored.key != first.key
    assert (
        bug_pattern("bug_pattern_critical", "ab" * 8, "t", "critical", "r", 1.0, 0).key
        == "bug_pattern_critical:" + "ab" * 8
    )
    assert bug_pattern("bug_pattern_regressed", "ab" * 8, "t", "high", "r", 1.0, 7).key.endswith(":7")
    assert experiment("experiment_arm_stopped", "exp-1", "x", 1.0, "b").key == "experiment_arm_stopped:exp-1:b"


def test_json_and_slack_bodies_say_what_happened():
    n = model_breaker("model_degraded", "gpt-4o", None, "failure rate 0.62 > 0.2", 1000.0, 1003.0)
    plain = json.loads(body(n, "json"))
    assert plain["id"] == n.key and plain["kind"] == "model_degraded" and plain["severity"] == "warning"
    assert plain["summary"] == "Model gpt-4o excluded from routing for every task type"
    assert Notification.from_json(n.as_json()) == n
    slack = json.loads(body(n, "slack"))
    assert set(slack) == {"text"} and slack["text"].startswith(":warning: *Model gpt-4o excluded")
    assert "reason: failure rate 0.62 > 0.2" in slack["text"] and "task_type" not in slack["text"]  # None left out


def test_a_receiver_can_check_the_signature_and_the_timestamp_it_covers():
    n = experiment("experiment_completed", "exp-1", "completed, winner b", 1.0)
    payload = body(n, "json")
    sent = headers(n, payload, "s3cret", now=1_790_000_000.5)
    assert sent[IDEMPOTENCY_HEADER] == n.key and sent[TIMESTAMP_HEADER] == "1790000000"
    expected = hmac.new(b"s3cret", b"1790000000." + payload, hashlib.sha256).hexdigest()
    assert sent[SIGNATURE_HEADER] == f"sha256={expected}"
    assert SIGNATURE_HEADER not in headers(n, payload, None, now=1.0)  # no secret, no signature


def test_the_back_off_grows_to_five_minutes():
    assert [backoff_s(n) for n in (1, 2, 3, 8, 9, 50)] == [2.0, 4.0, 8.0, 256.0, 300.0, 300.0]


def test_the_readme_signature_check_accepts_what_the_worker_signs_and_refuses_the_rest():
    import re
    import time
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    code = re.search(r"<!-- snippet: webhook-signature -->\n```python\n(.*?)```", readme, re.S)
    assert code, "README.md has no webhook-signature snippet"
    namespace: dict = {}
    exec(code.group(1), namespace)  # the README's own snippet, run as a reader would
    verified = namespace["verified"]
    n = experiment("experiment_completed", "exp-1", "completed", 1.0)
    payload = body(n, "json")
    sent = headers(n, payload, "s3cret", now=time.time())
    assert verified("s3cret", sent, payload)
    assert not verified("s3cret", sent, payload + b" ")  # the body changed
    assert not verified("other", sent, payload)  # another secret
    old = headers(n, payload, "s3cret", now=time.time() - 3600)
    assert not verified("s3cret", old, payload)  # replayed an hour later
