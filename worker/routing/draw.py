"""The routers' one deterministic draw: every router instance and language gets the same number for a key."""

from __future__ import annotations

import hashlib


def hash_unit(key: str) -> float:
    """A number in [0, 1) from the first 8 bytes of SHA-256(key), big-endian."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64
