"""The TypeScript client (clients/ts) chooses exactly what the Python client chooses: the same
rules and the same request ids give the same model, manual patterns and exploration included."""

import json
import random
import shutil
import subprocess
from pathlib import Path

import orjson

from tests.unit.test_routing_table import learned
from worker.routing.table import RoutingTable

CHOOSE = Path(__file__).resolve().parents[2] / "clients" / "ts" / "test" / "fixtures" / "choose.mjs"


def ts_choices(rules: list, cases: list) -> list:
    node = shutil.which("node")
    assert node, "node is needed for the TypeScript client's tests: apt-get install nodejs npm"
    assert (CHOOSE.parents[2] / "dist" / "src" / "index.js").exists(), "build it first: make install"
    done = subprocess.run(
        [node, str(CHOOSE)],
        input=json.dumps({"rules": rules, "cases": cases}),
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_same_rules_and_request_ids_give_the_same_model_in_both_languages():
    rng = random.Random(4)
    models = ["gpt-4o", "claude-sonnet-4", "llama-3.1-8b-instant", "o3", "mistral-large", "ünïcode-model"]
    rules = []
    for task in ("coding", "chat", "analysis"):
        chosen = rng.sample(models, 4)
        weights = {m: round(rng.random(), 4) for m in chosen[:3]}
        total = sum(weights.values())
        weights = {m: round(w / total, 4) for m, w in weights.items()}
        record = learned(
            task=task,
            weights=weights,
            excluded={chosen[3]: "down"},
            fallback_models=[chosen[3], chosen[0]],
            version=rng.randrange(1, 9),
            probes={chosen[0]: 0.05},
        )
        rules.append([task, record.model_dump(mode="json")])
    manual = learned(task="coding", weights={"o3": 1.0}).model_dump(mode="json") | {
        "heuristic_id": "manual:7",
        "task_type": None,
        "pattern": "(?i)prove.*theorem",
        "priority": 100,
        "window_s": None,
    }
    rules.append(["rule:7", manual])
    rules.append(["chat", None])  # a tombstone: chat has no rule any more
    cases = [
        {
            "task": rng.choice(["coding", "chat", "analysis", "summarization"]),
            "text": rng.choice(["", "please prove this theorem", "hello"]),
            "key": f"req_{rng.getrandbits(64):016x}",
            "candidates": rng.choice([None, models, models[:3], ["brand-new", *models[2:]]]),
        }
        for _ in range(3000)
    ]
    table = RoutingTable()
    for key, record in rules:
        table.apply(key, None if record is None else orjson.dumps(record))
    python = [table.route(c["task"], c["text"], key=c["key"], candidates=c["candidates"]) for c in cases]
    assert len(set(python)) >= 5 and None in python and "o3" in python and "brand-new" in python
    assert ts_choices(rules, cases) == python


REDACT = CHOOSE.parent / "redact.mjs"
SECRETS = [
    "sk-proj-Abcdefghij0123456789",
    "sk-ant-api03-abcdefghijklmnop",
    "AKIAIOSFODNN7EXAMPLE",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "rk_test_51HxYzAbCdEfGhIjKl",
    "ghp_abcdefghijklmnopqrstuvwxyz0123",
    "xoxb-1234567890-abcdefghij",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]
KEYED = ["aws_secret_access_key", "password", "api_key", "client_secret", "refresh_token", "session_token"]


def test_a_secret_redacted_in_python_is_redacted_in_typescript_too():
    from worker.calls.redaction import redact_text

    texts = [f"upstream said: {s} (retry later)" for s in SECRETS]
    texts += [f"config {k}=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY done" for k in KEYED]
    texts += [f'{{"{k}": "hunter2-very-secret"}}' for k in KEYED]
    texts += ["postgres://svc:pa55word@db:5432/app refused", "Authorization: Bearer abcdefghijklmnop1234"]
    node = shutil.which("node")
    assert node, "node is needed for the TypeScript client's tests: apt-get install nodejs npm"
    done = subprocess.run([node, str(REDACT)], input=json.dumps(texts), text=True, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for text, ts in zip(texts, json.loads(done.stdout)):
        py = redact_text(text)
        for secret in [*SECRETS, "wJalrXUtnFEMI", "hunter2", "pa55word", "abcdefghijklmnop1234"]:
            assert secret not in py and secret not in ts, (text, py, ts)
