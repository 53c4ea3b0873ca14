"""The README's router snippet, run as written against the real Kafka broker (only the topic name
is replaced by this test's own)."""

import ast
import re
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from tests.unit.test_routing_table import learned

README = Path(__file__).resolve().parents[2] / "README.md"


def snippet(name: str) -> str:
    found = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert found, f"README.md has no snippet {name}"
    return found.group(1)


async def test_the_python_router_snippet_routes_by_the_published_rules(settings):
    rule = learned(weights={"gpt-4o": 0.6, "claude-sonnet-4": 0.4}, excluded={"llama-3.1-8b-instant": "down"})
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_heuristics, orjson.dumps(rule.model_dump(mode="json")),
                                     key=b"coding")
    finally:
        await producer.stop()
    code = snippet("python-router").replace('"gateway.routing.heuristics"', repr(settings.topic_heuristics))
    code = code.replace('"127.0.0.1:9092"', repr(settings.kafka_bootstrap_servers))
    namespace: dict = {}
    await eval(compile(code, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace)
    try:
        pick = namespace["pick_model"]
        picks = [pick("coding", "write a parser", f"req-{i}") for i in range(2000)]
        assert set(picks) == {"gpt-4o", "claude-sonnet-4"}  # the split; the excluded model never
        assert 0.55 < picks.count("gpt-4o") / len(picks) < 0.65
        assert pick("coding", "x", "req-7") == pick("coding", "x", "req-7")  # deterministic per request id
        assert pick("chat", "hello", "req-1") == "gpt-4o"  # no rule: the router's own default
    finally:
        await namespace["subscriber"].stop()
