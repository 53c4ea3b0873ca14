"""Fingerprints: variable parts collapse, the error's identity stays, the digest is stable."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from worker.failures.fingerprint import fingerprint, normalise

ids = st.integers(min_value=0, max_value=2**64 - 1)


@given(
    st.integers(1, 10**7 - 1),
    st.integers(1, 10**7 - 1),
    ids,
    st.sampled_from(["api.openai.com", "eu.gw.internal"]),
    st.floats(0.01, 99, allow_nan=False),
)
def test_messages_that_differ_only_in_variable_parts_share_a_fingerprint(n1, n2, rid, host, secs):
    def message(a, b, r, h, s):
        return (
            f"Request to {h} timed out after {a}ms (request_id=req_{r:016x}); used {b} tokens; "
            f"trace {uuid.UUID(int=r)} at 2026-11-24T10:0{a % 10}:00Z retry in {s:.3f}s from 10.0.{a % 255}.7"
        )

    one = fingerprint("timeout", "routing", message(n1, n2, rid, host, secs))
    other = fingerprint("timeout", "routing", message(n2, n1, rid ^ 0xABC, "api.anthropic.com", secs + 1))
    assert one == other


def test_long_numbers_and_hex_ids_share_one_placeholder():
    # 8+ hex digits read as an id or hash whatever their letters: epoch-ms stamps and org ids collapse
    a = normalise("at 1795517456535 for org-12345678")
    assert a == normalise("at 1795517999999 for org-3ff50a4f") == "at <hex> for org-<hex>"


def test_the_models_own_name_does_not_split_a_pattern():
    a = fingerprint("rate_limit", "api", "Rate limit reached for gpt-4o-mini in org", "gpt-4o-mini")
    b = fingerprint("rate_limit", "api", "Rate limit reached for claude-3-5-haiku in org", "claude-3-5-haiku")
    assert a == b and a.template == "Rate limit reached for <model> in org"
    c = fingerprint("rate_limit", "api", "Rate limit reached for o3 in org", "o3")
    assert c == a  # short names too


def test_error_type_category_and_wording_keep_patterns_apart():
    base = fingerprint("timeout", "routing", "upstream timed out")
    assert base.digest != fingerprint("api", "routing", "upstream timed out").digest
    assert base.digest != fingerprint("timeout", "api", "upstream timed out").digest
    assert base.digest != fingerprint("timeout", "routing", "upstream refused the connection").digest


def test_secrets_become_a_placeholder_and_never_reach_the_template():
    t = normalise("Incorrect API key provided: sk-proj-Ab3dEf6hIj9kLm2nOp5q for jane@example.com")
    assert t == "Incorrect API key provided: <secret> for <email>"


def test_placeholders_in_sentry_order():
    text = (
        "mail a@b.io url https://x.io/p?q=1 host api.openai.com ip 192.168.1.20 "
        "uuid 123e4567-e89b-12d3-a456-426614174000 sha1 "
        + "a" * 40
        + " md5 "
        + "b" * 32
        + ' date 2026-11-24 dur 250ms hex 0xff id="quoted" float 3.14 int 42'
    )
    assert normalise(text) == (
        "mail <email> url <url> host <hostname> ip <ip> uuid <uuid> sha1 <sha1> md5 <md5> "
        "date <date> dur <duration> hex <hex> id=<quoted> float <float> int <int>"
    )


def test_digest_is_stable_across_processes_and_releases():
    # A golden value: changing normalisation splits every existing pattern; do it deliberately.
    fp = fingerprint(
        "timeout", "routing", "Request to api.openai.com timed out after 30000ms (request_id=req_1a2b3c4d5e6f7a8b)"
    )
    assert fp.template == "Request to <hostname> timed out after <duration> (request_id=<request_id>)"
    assert fp.digest == fingerprint("timeout", "routing", fp.template).digest
    assert len(fp.digest) == 16 and int(fp.digest, 16) >= 0


@given(st.text(max_size=2000))
def test_templates_are_bounded_and_normalisation_is_total(message):
    fp = fingerprint("x", "y", message)
    assert len(fp.template) <= 500 and len(fp.digest) == 16


def test_short_request_ids_are_normalised_like_long_ones():
    from worker.failures.fingerprint import normalise

    templates = {
        normalise(f"upstream failed for request_id={rid}") for rid in ("req_8978", "req_12", "req_8f2a09c1d3e4")
    }
    assert templates == {"upstream failed for request_id=<request_id>"}
    assert normalise("call_me maybe") == "call_me maybe"  # a word, not an id: no digit
