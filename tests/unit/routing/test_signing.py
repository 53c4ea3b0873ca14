"""Signed routing records: a router given the worker's public key follows only what the worker signed."""

import orjson
import pytest
from pydantic import ValidationError

from tests.unit.gateway.test_router_client import record
from worker.gateway.table import RoutingTable
from worker.routing.signing import InvalidKey, Signer, Verifier, generate
from worker.settings import Settings


def test_only_records_the_worker_signed_reach_a_router_that_has_its_key():
    private, public = generate()
    signer, stranger = Signer(private), Signer(generate()[0])
    table = RoutingTable(public_keys=[public])
    genuine = record("learned:coding", 3, task_type="coding", model="gpt-4o")
    forged = record("learned:coding", 4, task_type="coding", model="attacker")
    assert table.apply("coding", forged) is None  # unsigned
    assert table.apply("coding", forged, stranger.headers("coding", forged)) is None  # another key
    tampered = signer.headers("coding", genuine)
    assert table.apply("coding", forged, tampered) is None  # a genuine signature on other bytes
    assert table.apply("chat", genuine, signer.headers("coding", genuine)) is None  # replayed under another key
    assert table.refused == 4
    assert table.apply("coding", genuine, signer.headers("coding", genuine)) is not None
    assert table.route("coding", key="r") == "gpt-4o"
    assert table.apply("coding", None, signer.headers("coding", None)) is None and not table.rules  # a signed tombstone


def test_a_rotation_trusts_both_keys_and_a_table_without_keys_follows_everything():
    (old_private, old_public), (new_private, new_public) = generate(), generate()
    table = RoutingTable(public_keys=[old_public, new_public])
    for version, private in ((1, old_private), (2, new_private)):
        value = record("learned:coding", version, task_type="coding")
        assert table.apply("coding", value, Signer(private).headers("coding", value)) is not None
    open_table = RoutingTable()
    assert open_table.apply("coding", record("learned:coding", 1, task_type="coding")) is not None


def test_a_bad_key_stops_the_start_with_the_reason():
    with pytest.raises(InvalidKey, match="32 bytes"):
        Verifier(["c2hvcnQ="])
    with pytest.raises(InvalidKey, match="no public key"):
        Verifier([])
    with pytest.raises(ValidationError, match="ROUTING_SIGNING_KEY is not base64"):
        Settings(routing_signing_key="not base64!")
    assert Settings(routing_signing_key="").routing_signing_key is None
    private, public = generate()
    assert Signer(private).public_key_b64 == public
    assert orjson.loads(record("learned:x", 1))["version"] == 1


def test_the_typescript_client_verifies_what_the_worker_signed_and_nothing_else():
    import base64
    import json
    import shutil
    import subprocess
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[3] / "clients" / "ts" / "test" / "fixtures" / "verify.mjs"
    node = shutil.which("node")
    assert node, "node is needed for the TypeScript client's tests: apt-get install nodejs npm"
    private, public = generate()
    signer = Signer(private)
    b64 = lambda data: base64.b64encode(data).decode()
    records = []
    for version, (key, model, sign_as) in enumerate(
        [
            ("coding", "gpt-4o", "coding"),
            ("coding", "attacker", None),
            ("chat", "x", "coding"),
            ("ünï:coding", "m", "ünï:coding"),
        ],
        start=1,
    ):
        value = record(f"learned:{key}", version, task_type=key, model=model)
        headers = {name: b64(data) for name, data in signer.headers(sign_as, value)} if sign_as else {}
        records.append([key, b64(value), headers])
    done = subprocess.run(
        [node, str(fixture)],
        input=json.dumps({"publicKeys": [public], "records": records}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["taken"] == [True, False, False, True] and out["refused"] == 2, out
