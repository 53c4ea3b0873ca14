"""Failure identity: error_type + category + the message with its variable parts replaced.

Parameterisation follows Sentry's order (email, url, hostname, ip, uuid, sha1, md5, date, duration,
hex, float, int), after secrets and the event's own model id, with a few gateway shapes (request
ids, quoted values after `=`). A run of 8 or more hex digits is an id or hash whatever its letters,
so a decimal number of 8+ digits reads as <hex> too (ids that happen to be all digits must not
split a pattern). It is a pure function of the text: every pod and every restart
gives the same fingerprint, with no learned state. RE2 keeps it linear-time on hostile input.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from worker.calls.redaction import redact_text
from worker.calls.substitutions import Rule, Substitutions

MAX_TEMPLATE_CHARS = 500

# (pattern, replacement, literals it cannot match without: see worker/calls/substitutions.py)
_RULES: tuple[Rule, ...] = (
    (r"\[REDACTED EMAIL\]", "<email>", ("[REDACTED EMAIL]",)),
    (r"\[REDACTED[A-Z ]*\]", "<secret>", ("[REDACTED",)),
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "<email>", ("@",)),
    (r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>()]+", "<url>", ("://",)),
    (
        r"\b(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+(?:com|net|org|io|ai|dev|app|cloud|internal|local|"
        r"co|us|eu|uk|de|fr|jp|cn|in|svc|cluster)\b",
        "<hostname>",
        (".",),
    ),
    (r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b", "<ip>", (".",)),
    (r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b", "<ip>", (":",)),
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<uuid>", ("-",)),
    (r"\b[0-9a-fA-F]{40}\b", "<sha1>", ()),
    (r"\b[0-9a-fA-F]{32}\b", "<md5>", ()),
    (r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b", "<date>", ("-",)),
    (r"\b\d+(?:\.\d+)?\s?(?:ms|milliseconds?|us|µs|ns|s|secs?|seconds?|m|mins?|minutes?|h|hours?)\b", "<duration>", ()),
    # request ids, long or short (req_8978 as much as req_8f2a09c1d3)
    (
        r"\b(?:req|request|trace|span|msg|chatcmpl|run|call)[_-](?:[A-Za-z0-9]{6,}|[A-Za-z]*[0-9][A-Za-z0-9]*)\b",
        "<request_id>",
        ("req", "trace", "span", "msg", "chatcmpl", "run", "call"),
    ),
    (r"(=\s*)(?:\"[^\"]*\"|'[^']*')", r"\1<quoted>", ("=",)),
    (r"\b0x[0-9a-fA-F]+\b", "<hex>", ("0x",)),
    (r"\b[0-9a-fA-F]{8,}\b", "<hex>", ()),  # ids and hashes of 8+ hex digits, whatever their letters
    (
        r"\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b",
        "<hex>",
        (),
    ),
    (r"-?\b\d+\.\d+\b", "<float>", ()),
    (r"-?\b\d+\b", "<int>", ()),
)
_PARAMETERS = Substitutions(_RULES)
_SPACES = Substitutions([(r"\s+", " ", ())])


class Fingerprint(NamedTuple):
    digest: str  # 16 hex characters
    error_type: str
    category: str
    template: str


def normalise(message: str, model_id: str | None = None) -> str:
    text = redact_text(message)
    if model_id and len(model_id) >= 2:  # the reporting model's own name, as a whole word only
        text = re.sub(rf"(?<![\w.-]){re.escape(model_id)}(?![\w-])", "<model>", text)
    text = _PARAMETERS.apply(text)
    text = _SPACES.apply(text).strip()
    return text[:MAX_TEMPLATE_CHARS]


def fingerprint(error_type: str, category: str, message: str, model_id: str | None = None) -> Fingerprint:
    template = normalise(message, model_id)
    digest = hashlib.sha256("\x00".join((error_type, category, template)).encode("utf-8")).hexdigest()[:16]
    return Fingerprint(digest, error_type, category, template)
