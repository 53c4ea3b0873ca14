"""The fast paths of the substitutions (ASCII as bytes, literal guards, constant replacements)
give exactly what the rules applied one by one on str give."""

import re2
from hypothesis import example, given, settings
from hypothesis import strategies as st

from worker.calls import redaction
from worker.calls.substitutions import AnyOf, Substitutions
from worker.failures import fingerprint

RULE_SETS = {"fingerprint": fingerprint._RULES, "redaction": [(p, r, ()) for p, r in redaction._TEXT_RULES]}
PIECES = st.sampled_from(
    [
        "req_8f2a09c1d3",
        "0x1F",
        "deadbeefcafe",
        "2026-12-01T10:00:00Z",
        "10.0.0.1:443",
        "12.5ms",
        "-42",
        "3.14",
        "user@example.com",
        "https://api.example.com/v1?x=1",
        "sk-abcdefghij12345",
        "password=hunter2",
        "[REDACTED]",
        "api.openai.com",
        "6f1c2f4e-3b7a-4d2e-9a51-0c1d2e3f4a5b",
        'a="q"',
        " ",
        "\t",
        "\n",
        "µs",
        "é",
        "é1",
        "Bearer abcdefgh123",
        "AKIAABCDEFGHIJKLMNOP",
        "trace-abc123",
        "call_1",
        "-----BEGIN RSA PRIVATE KEY-----",
    ]
)
TEXTS = st.one_of(st.lists(PIECES | st.text(max_size=6), max_size=12).map("".join), st.text(max_size=80))


def one_by_one(rules, text: str) -> str:
    for pattern, replacement, _ in rules:
        text = re2.compile(pattern).sub(replacement, text)
    return text


@settings(max_examples=400)
@given(TEXTS)
@example("Request to api.example.com timed out after 30000ms (request_id=req_8978)")
def test_the_fast_paths_change_nothing(text):
    for rules in RULE_SETS.values():
        substitutions = Substitutions(rules)
        expected = one_by_one(rules, text)
        assert substitutions.apply(text) == expected
        assert substitutions.apply_as_text(text) == expected


@settings(max_examples=200)
@given(TEXTS)
def test_any_of_finds_what_some_rule_would_change(text):
    any_of = AnyOf([p for p, _ in redaction._TEXT_RULES])
    changed = any(re2.compile(p).search(text) for p, _ in redaction._TEXT_RULES)
    assert any_of.search(text) == changed
