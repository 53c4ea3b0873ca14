"""Secrets and personal data are removed from text, payloads and raw bytes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.calls.redaction import REDACTED, redact_bytes, redact_payload, redact_text

SECRETS = {
    "openai key": "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
    "anthropic key": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx-yz0123456789",
    "aws key id": "AKIAIOSFODNN7EXAMPLE",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "github token": "ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "email": "jane.doe+llm@example.co.uk",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_kind_of_secret_is_removed_from_text(kind):
    secret = SECRETS[kind]
    text = redact_text(f"call failed for {secret} (retry later)")
    assert secret not in text and "call failed for" in text and "(retry later)" in text


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop1234"),
        ("Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("connect postgres://admin:hunter2secret@db.internal:5432/app", "hunter2secret"),
        ("password=swordfish&user=bob", "swordfish"),
        ('{"api_key": "k-123456789"}', "k-123456789"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----", "MIIEvQIBADAN"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA truncated", "MIIEpAIBAAKCAQEA"),
    ],
)
def test_tokens_passwords_and_keys_in_context_are_removed(text, leak):
    assert leak not in redact_text(text)


def test_payload_keys_that_name_secrets_are_blanked_and_strings_redacted():
    payload = {
        "headers": {"Authorization": "anything", "X-Api-Key": "k", "Accept": "json"},
        "messages": [{"role": "user", "content": f"mail {SECRETS['email']} key {SECRETS['openai key']}"}],
        "n": 3,
    }
    clean = redact_payload(payload)
    assert clean["headers"] == {"Authorization": REDACTED, "X-Api-Key": REDACTED, "Accept": "json"}
    text = clean["messages"][0]["content"]
    assert SECRETS["email"] not in text and SECRETS["openai key"] not in text
    assert clean["n"] == 3 and payload["headers"]["Authorization"] == "anything"  # the input is untouched


def test_raw_bytes_keep_their_undecodable_parts():
    raw = b"\xff\xfe " + SECRETS["aws key id"].encode() + b" \x80"
    out = redact_bytes(raw)
    assert SECRETS["aws key id"].encode() not in out and out.startswith(b"\xff\xfe ") and out.endswith(b" \x80")


@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    st.sampled_from(sorted(SECRETS)),
    st.text(alphabet=" .,;:()[]\n\t", min_size=1, max_size=3),
)
def test_a_secret_never_survives_whatever_surrounds_it(prefix, kind, separator):
    secret = SECRETS[kind]
    assert secret not in redact_text(prefix + separator + secret + separator + prefix)


@given(st.text(max_size=300))
def test_redaction_is_idempotent(text):
    once = redact_text(text)
    assert redact_text(once) == once


def test_more_secret_shapes_in_free_text():
    from worker.calls.redaction import redact_text

    text = "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc, aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ok"
    out = redact_text(text)
    assert "4eC39HqLyjWDarjtT1zdp7dc" not in out and "wJalrXUtnFEMI" not in out and out.endswith(" ok")


def test_request_keys_and_identifiers_are_redacted_and_plain_identifiers_untouched():
    from worker.calls.redaction import redact_identifier, redact_payload

    assert redact_payload({"sk-proj-abcdefghijklmnop": 1}) == {"[REDACTED]": 1}
    assert redact_identifier("gpt-4o") == "gpt-4o" and redact_identifier("coding") == "coding"
    assert "abcdefghijklmnop" not in redact_identifier("model-sk-proj-abcdefghijklmnop")


def test_dead_letters_are_redacted_after_decoding_so_escaped_secrets_do_not_pass():
    import orjson

    from worker.calls.redaction import redact_json_bytes

    escaped = b'{"model_id": 7, "error_message": "key \\u0073k-proj-abcdefghijklmnop leaked"}'
    assert b"sk-proj" not in escaped  # invisible to a byte-level pass
    assert "sk-proj" not in orjson.loads(redact_json_bytes(escaped))["error_message"]
    assert redact_json_bytes(b"not json sk-proj-abcdefghijklmnop") == b"not json [REDACTED]"


SECRET_SHAPES = st.sampled_from(
    [
        "sk-proj-Abcdefghij0123456789",
        "sk-ant-api03-abcdefghijklmnop",
        "AKIAIOSFODNN7EXAMPLE",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ]
)


@given(
    st.text(alphabet=st.characters(blacklist_categories=["L", "N"], blacklist_characters="_-/+=."), max_size=20),
    SECRET_SHAPES,
    st.text(alphabet=st.characters(blacklist_categories=["L", "N"], blacklist_characters="_-/+=."), max_size=20),
)
def test_a_secret_anywhere_in_a_field_never_survives(prefix, secret, suffix):
    from worker.calls.redaction import redact_identifier, redact_payload, redact_text

    text = prefix + secret + suffix
    assert secret not in redact_text(text) and secret not in redact_identifier(text)
    assert secret not in str(redact_payload({text: [text, {"k": text}]}))
