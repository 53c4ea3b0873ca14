"""Who may call a tool: a bearer token from TOOLS_TOKEN, compared in constant time.

With no token configured, reads stay open (a local demo needs nothing) and writes are refused
with a message saying how to enable them: a worker must never accept anonymous writes.
"""

from __future__ import annotations

import hmac
from typing import NamedTuple


class Denied(NamedTuple):
    status: int
    error: str
    message: str


def check(authorization: str | None, token: str | None, write: bool) -> Denied | None:
    if token is None:
        if write:
            return Denied(
                403,
                "forbidden",
                "write tools are disabled: set TOOLS_TOKEN on the worker and send 'Authorization: Bearer <token>'",
            )
        return None
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return Denied(401, "unauthorized", "send 'Authorization: Bearer <token>' (the worker's TOOLS_TOKEN)")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return Denied(401, "unauthorized", "the bearer token does not match TOOLS_TOKEN")
    return None
