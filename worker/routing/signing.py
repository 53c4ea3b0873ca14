"""Signed routing records: the worker signs what it publishes, routers given its public key skip the rest.

Anyone who can write to the heuristics topic could otherwise steer every router. The worker signs
each record with Ed25519 (`ROUTING_SIGNING_KEY`, a secret) over its key and value, and sends the
signature and the key's id in headers; a router configured with the public key (or keys, during a
rotation) skips and counts a record that is unsigned, signed by another key, or altered. The
signature covers the key too, so a genuine record cannot be replayed under another key, and a
tombstone (no value) is signed as one. Keys travel as base64 of their 32 raw bytes;
`telemetry-worker keys generate` makes a pair.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_HEADER = "signature"  # base64 of the 64-byte Ed25519 signature
KEY_ID_HEADER = "key-id"  # the first 8 bytes of SHA-256 of the public key, in hex
DOMAIN = b"gateway-telemetry routing record v1\n"

Headers = Sequence[tuple[str, bytes]]


class InvalidKey(ValueError):
    """A configured key that is not a base64 Ed25519 key: the start stops with this reason."""


def signed_bytes(key: str, value: bytes | None) -> bytes:
    """What is signed: a domain tag, the record's key, and its value (or the mark of a tombstone)."""
    body = b"\x00" if value is None else b"\x01" + value
    return DOMAIN + key.encode("utf-8", "surrogatepass") + b"\n" + body


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def _decoded(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidKey(f"{what} is not base64 ({error})") from None
    if len(raw) != 32:
        raise InvalidKey(f"{what} must be 32 bytes (base64 of a raw Ed25519 key), got {len(raw)}")
    return raw


class Signer:
    def __init__(self, private_key_b64: str):
        self._key = Ed25519PrivateKey.from_private_bytes(_decoded(private_key_b64, "ROUTING_SIGNING_KEY"))
        self.key_id = key_id(self._key.public_key())
        self.public_key_b64 = base64.b64encode(_raw(self._key.public_key())).decode()

    def headers(self, key: str, value: bytes | None) -> list[tuple[str, bytes]]:
        signature = self._key.sign(signed_bytes(key, value))
        return [(SIGNATURE_HEADER, base64.b64encode(signature)), (KEY_ID_HEADER, self.key_id.encode())]


class Verifier:
    """The public keys a router trusts (more than one during a rotation)."""

    def __init__(self, public_keys_b64: Iterable[str]):
        keys = [Ed25519PublicKey.from_public_bytes(_decoded(k, "a routing public key")) for k in public_keys_b64]
        if not keys:
            raise InvalidKey("no public key given: pass at least one, or none at all to accept unsigned records")
        self.keys = {key_id(k): k for k in keys}

    def refusal(self, key: str, value: bytes | None, headers: Headers | None) -> str | None:
        """None when the record is signed by a trusted key; else why not."""
        found = {name: data for name, data in headers or () if name in (SIGNATURE_HEADER, KEY_ID_HEADER)}
        if SIGNATURE_HEADER not in found:
            return "unsigned record"
        public = self.keys.get(bytes(found.get(KEY_ID_HEADER, b"")).decode("ascii", "replace"))
        if public is None:
            return "signed by a key this router does not trust"
        try:
            public.verify(base64.b64decode(found[SIGNATURE_HEADER], validate=True), signed_bytes(key, value))
        except (InvalidSignature, binascii.Error, ValueError):
            return "the signature does not match the record"
        return None


def generate() -> tuple[str, str]:
    """A new (private, public) pair, base64 of the raw 32-byte keys."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw_private).decode(), base64.b64encode(_raw(private.public_key())).decode()
