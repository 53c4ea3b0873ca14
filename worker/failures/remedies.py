"""The remedy catalogue: per error type, how to fix it and what the gateway must do once fixed.

`solution` fills bug_patterns.solution (an operator may override it; the override is kept);
`expected_behavior` fills the regression stub's expected_behavior and its assertion's intent.
"""

from __future__ import annotations

from typing import NamedTuple


class Remedy(NamedTuple):
    default_category: str
    solution: str
    expected_behavior: str


CATALOGUE: dict[str, Remedy] = {
    "timeout": Remedy(
        "routing",
        "Retry with exponential backoff and jitter (at most 2 retries); on a further timeout route the "
        "request to a faster layer, and lower the model's share in the routing heuristics while it persists.",
        "The gateway retries the call up to 2 times with backoff, then falls back to the next faster layer; "
        "the caller receives an answer, not the timeout.",
    ),
    "rate_limit": Remedy(
        "api",
        "Back off for the time the provider asks (Retry-After), spread load across models of the same layer, "
        "and cap concurrency per provider key.",
        "The gateway honours the provider's retry-after, retries once, and otherwise serves the request from "
        "another model of the same layer without surfacing the rate limit.",
    ),
    "context_length": Remedy(
        "context",
        "Count tokens before the call; chunk or compress the context (summarise older turns) to fit the "
        "model's window, or route to a model with a larger window.",
        "The gateway fits the request into the model's context window (compressing or chunking) or routes it "
        "to a larger-context model; it never sends a request that exceeds the window.",
    ),
    "parse": Remedy(
        "parsing",
        "Constrain the output format (JSON mode / a response schema), validate and repair the output, and "
        "re-ask once with the validation error when it still fails.",
        "The gateway returns output that parses in the requested format, re-asking the model once when the "
        "first answer does not parse.",
    ),
    "api": Remedy(
        "api",
        "Treat 5xx from the provider as transient: retry with backoff, open a circuit breaker for the model "
        "after repeated failures, and fail over to another provider.",
        "The gateway retries a provider 5xx with backoff and fails over to another model when it persists; "
        "the caller does not see the upstream error.",
    ),
    "auth": Remedy(
        "api",
        "Check the provider credentials the gateway uses (expired, revoked or wrong key); rotate the key and "
        "alert: retries cannot fix this.",
        "The gateway does not retry an authentication failure; it routes the request to a model whose "
        "credentials are valid and raises an operator alert.",
    ),
}

UNKNOWN = Remedy(
    "api",
    "No catalogued remedy for this error type yet: inspect the examples and add one.",
    "The gateway handles the request without surfacing this error to the caller.",
)


def remedy_for(error_type: str) -> Remedy:
    return CATALOGUE.get(error_type, UNKNOWN)
