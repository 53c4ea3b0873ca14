"""Secrets and personal data out of everything the worker keeps or forwards.

Applied to failure messages, captured requests (keys and values) and identifiers (model, task
type, error type, category) before they reach a table, a topic or a log, and to dead-letter
values after decoding where they decode (a JSON-escaped secret is only visible decoded). Patterns run on RE2 (linear time), so hostile input cannot make
redaction slow. Order matters: whole private-key blocks and URL credentials go before the shorter
token shapes that could match inside them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from worker.calls.substitutions import AnyOf, Substitutions

REDACTED = "[REDACTED]"

_TEXT_RULES: tuple[tuple[str, str], ...] = (
    # PEM private keys, whole block (or to the end of the text when the END line is missing)
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY-----|\z)", "[REDACTED PRIVATE KEY]"),
    # credentials in URLs: scheme://user:password@host
    (r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s/@]+@", r"\1:" + REDACTED + "@"),
    # JSON Web Tokens
    (r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", REDACTED),
    # Authorization: Bearer / Basic <token>
    (r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", r"\1 " + REDACTED),
    # OpenAI / Anthropic style keys: sk-..., sk-proj-..., sk-ant-...
    (r"\bsk-[A-Za-z0-9_*-]{8,}", REDACTED),
    # AWS access key ids
    (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", REDACTED),
    # Stripe-style secret, restricted and publishable keys: sk_live_..., rk_test_..., pk_live_...
    (r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}", REDACTED),
    # other common vendor tokens (GitHub, Slack, Google API keys)
    (r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}\b", REDACTED),
    (r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b", REDACTED),
    (r"\bAIza[0-9A-Za-z_-]{35}\b", REDACTED),
    # key=value secrets in free text: password=..., api_key: ..., token=...
    (
        r"(?i)\b((?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|refresh[_-]?token|client[_-]?secret|"
        r"aws_secret_access_key|aws_session_token|secret[_-]?access[_-]?key|session[_-]?token)[\"']?)"
        r"(\s*[=:]\s*[\"']?)[^\s,;&\"']+",
        r"\1\2" + REDACTED,
    ),
    # e-mail addresses
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "[REDACTED EMAIL]"),
)

_REDACTIONS = Substitutions([(pattern, replacement, ()) for pattern, replacement in _TEXT_RULES])

SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "password",
        "passwd",
        "secret",
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "client_secret",
        "private_key",
        "aws_secret_access_key",
        "aws_session_token",
        "session_token",
    }
)


_ANY = AnyOf([pattern for pattern, _ in _TEXT_RULES])


def _utf8(text: str) -> str:
    """RE2 reads UTF-8: a lone surrogate (legal in a Python str, not in UTF-8) becomes U+FFFD first."""
    return text if text.isascii() else text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def redact_text(text: str) -> str:
    text = _utf8(text)
    if not _ANY.search(text):  # one pass finds nothing: then no rule can (each is one of _ANY's alternatives)
        return text
    return _REDACTIONS.apply(text)


@lru_cache(maxsize=8192)
def redact_identifier(text: str) -> str:
    """For identifiers (model, task type, error type, category): few distinct values, each checked
    once in one linear pass, so the hot path pays a cache lookup per field."""
    return redact_text(text)


def redact_json_bytes(value: bytes) -> bytes:
    """A message value redacted after decoding where it decodes: a JSON-escaped secret (\\u0073k-...)
    is only visible once decoded. What does not decode is redacted as raw bytes."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return redact_bytes(value)
    try:
        return orjson.dumps(redact_payload(parsed))
    except TypeError:  # e.g. an integer beyond 64 bits
        return redact_bytes(value)


def redact_bytes(value: bytes) -> bytes:
    """For raw message values: latin-1 maps each byte to one character, so undecodable bytes survive."""
    return redact_text(value.decode("latin-1")).encode("latin-1")


def redact_payload(value: Any) -> Any:
    """A copy of a JSON-like value with sensitive keys blanked and every string redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            (redact_text(key) if isinstance(key, str) else key): REDACTED
            if isinstance(key, str) and key.lower() in SENSITIVE_KEYS
            else redact_payload(v)
            for key, v in value.items()
        }
    if isinstance(value, list):
        return [redact_payload(v) for v in value]
    return value
