"""The TypeScript client (clients/ts) chooses exactly what the Python client chooses: the same
rules and the same request ids give the same model, manual patterns and exploration included."""

import json
import random
import shutil
import subprocess
from pathlib import Path

import orjson

from tests.unit.gateway.test_table import learned
from worker.gateway.table import RoutingTable

CHOOSE = Path(__file__).resolve().parents[3] / "clients" / "ts" / "test" / "fixtures" / "choose.mjs"


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


PICK = CHOOSE.parent / "pick.mjs"


def test_same_experiment_records_and_request_ids_give_the_same_arm_model_and_tags_in_both_languages():
    """The experiment's assignment (hashUnit of experiment id and unit) and each arm's strategy."""
    from worker.experiments.contract import Experiment, ExperimentSpec

    spec = ExperimentSpec.model_validate(
        {
            "experimentId": "exp-ts",
            "name": "parity",
            "taskTypes": ["coding", "chat"],
            "arms": [
                {"name": "control", "share": 0.4, "strategy": {"kind": "learned"}},
                {"name": "fixed", "share": 0.2, "strategy": {"kind": "model", "model": "o3", "layer": "deep"}},
                {
                    "name": "sql",
                    "share": 0.2,
                    "strategy": {"kind": "manual", "model": "gpt-4o", "layer": "balanced", "pattern": "(?i)sql"},
                },
                {"name": "light", "share": 0.1, "strategy": {"kind": "weights", "weights": {"latency": 0.5}}},
                {"name": "gone", "share": 0.1, "strategy": {"kind": "model", "model": "x", "layer": "fast"}},
            ],
        }
    )
    exp = Experiment.start(spec, learned().computed_at)
    own = learned(weights={"mistral-large": 0.6, "o3": 0.4}).model_copy(
        update={"heuristic_id": "experiment:exp-ts:light:coding"}
    )
    arms = [*exp.arms[:3], exp.arms[3].model_copy(update={"routes": {"coding": own}})]
    arms.append(exp.arms[4].model_copy(update={"stopped": "guardrail: failure_rate"}))
    exp = exp.changed(arms=arms)
    records = [
        ["coding", learned(task="coding", weights={"gpt-4o": 0.5, "claude-sonnet-4": 0.5}).model_dump(mode="json")],
        ["chat", learned(task="chat", weights={"llama-3.1-8b-instant": 1.0}).model_dump(mode="json")],
        ["experiment:exp-ts", exp.model_dump(mode="json")],
    ]
    rng = random.Random(9)
    models = ["gpt-4o", "claude-sonnet-4", "o3", "mistral-large", "llama-3.1-8b-instant"]
    cases = [
        {
            "task": rng.choice(["coding", "chat", "analysis"]),
            "text": rng.choice(["", "write an SQL join", "hello"]),
            "key": f"req_{rng.getrandbits(64):016x}",
            "unit": rng.choice([None, None, f"session-{rng.randrange(50)}"]),
            "candidates": rng.choice([None, models, models[:2]]),
        }
        for _ in range(3000)
    ]
    table = RoutingTable()
    for key, record in records:
        table.apply(key, orjson.dumps(record))
    python = []
    for c in cases:
        route = table.pick(c["task"], c["text"], key=c["key"], unit=c["unit"], candidates=c["candidates"])
        python.append([route.model, route.event_fields()])
    arms_seen = {fields.get("arm") for _, fields in python}
    assert {"control", "fixed", "sql", "light", None} <= arms_seen and "gone" not in arms_seen
    node = shutil.which("node")
    assert node, "node is needed for the TypeScript client's tests: apt-get install nodejs npm"
    done = subprocess.run(
        [node, str(PICK)],
        input=json.dumps({"records": records, "cases": cases}),
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    typescript = json.loads(done.stdout)
    assert typescript == python
    # without a request id or a session key, a request stays out of the experiment (its draw is random)
    keyless = [{**c, "key": None, "unit": None} for c in cases[:200]]
    done = subprocess.run(
        [node, str(PICK)], input=json.dumps({"records": records, "cases": keyless}), text=True, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert all("arm" not in fields for _, fields in json.loads(done.stdout))
    assert all(table.pick(c["task"], c["text"]).arm is None for c in keyless)


def test_a_captured_request_is_redacted_the_same_way_in_both_languages():
    from worker.gateway.emitter import failed

    requests = [
        {"messages": [{"role": "user", "content": f"my key is {s}, please help"}], "api_key": s, "n": 1}
        for s in SECRETS
    ]
    requests += [
        {"headers": {"Authorization": "Bearer abcdefghijklmnop1234", "X-Api-Key": "k-123456"}, "password": ["a", 1]},
        {"url": "postgres://svc:pa55word@db:5432/app", "nested": [{"client_secret": {"deep": "hunter2-very-secret"}}]},
        {f"config {k}=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": True for k in KEYED[:2]},
    ]
    node = shutil.which("node")
    assert node, "node is needed for the TypeScript client's tests: apt-get install nodejs npm"
    fixture = REDACT.parent / "failed.mjs"
    done = subprocess.run([node, str(fixture)], input=json.dumps(requests), text=True, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    base = {"model_id": "gpt-4o", "layer": "balanced", "task_type": "chat", "latency_ms": 1.0, "error_type": "api"}
    for request, ts in zip(requests, json.loads(done.stdout)):
        py = failed(**base, error_message="x", request=request).request
        assert ts == py, (request, py, ts)
        text = json.dumps(py)
        for secret in [*SECRETS, "wJalrXUtnFEMI", "hunter2", "pa55word", "abcdefghijklmnop1234", "k-123456"]:
            assert secret not in text, (request, text)
