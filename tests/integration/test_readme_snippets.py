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
        await producer.send_and_wait(
            settings.topic_heuristics, orjson.dumps(rule.model_dump(mode="json")), key=b"coding"
        )
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


async def run_snippet(name: str, replacements: dict[str, str], namespace: dict | None = None) -> dict:
    code = snippet(name)
    for old, new in replacements.items():
        assert old in code, f"the {name} snippet no longer contains {old!r}"
        code = code.replace(old, new)
    namespace = {} if namespace is None else namespace
    await eval(compile(code, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace)
    return namespace


async def counted(pool, model_ids: tuple[str, ...], calls: int, timeout: float = 30.0) -> int:
    """Calls counted for these models, once at least `calls` are (or the timeout passed)."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = int(
            await pool.fetchval(
                "SELECT coalesce(sum(total_calls), 0) FROM model_performance WHERE model_id = ANY($1::text[])",
                list(model_ids),
            )
        )
        if found >= calls or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)


async def test_the_litellm_snippet_reports_and_routes_through_the_worker(settings, workers, pool, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import asyncio

    import litellm

    from worker.simulation.producer import ensure_topics

    await ensure_topics(settings, partitions=1)
    worker = workers()
    await worker.wait_ready()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setattr(litellm, "callbacks", [])
    brokers = repr(settings.kafka_bootstrap_servers)
    ns = await run_snippet(
        "litellm",
        {
            'CallEmitter("127.0.0.1:9092")': f"CallEmitter({brokers}, topic_completed={settings.topic_calls_completed!r}, "
            f"topic_failed={settings.topic_calls_failed!r})",
            'HeuristicsSubscriber("127.0.0.1:9092", table)': f"HeuristicsSubscriber({brokers}, table, "
            f"topic={settings.topic_heuristics!r})",
            'os.environ["OPENAI_API_KEY"]}': 'os.environ["OPENAI_API_KEY"], "mock_response": "It is about a refund."}',
        },
    )
    try:
        assert ns["response"].choices[0].message.content == "It is about a refund."
        for i in range(40):
            await ns["router"].acompletion(
                model="chat",
                messages=[{"role": "user", "content": "hi"}],
                metadata={"task_type": "summarization", "request_id": f"req-{i}"},
            )
        for _ in range(100):  # LiteLLM runs its success callbacks after the call returns
            if ns["emitter"].stats.enqueued >= 41:
                break
            await asyncio.sleep(0.1)
    finally:
        litellm.logging_callback_manager.drop_callbacks(list(litellm.callbacks))
        await ns["subscriber"].stop()
        await ns["emitter"].stop()
    assert ns["emitter"].stats.sent == 41 and ns["emitter"].stats.dropped == 0
    assert await counted(pool, ("openai/gpt-4o", "openai/gpt-4o-mini"), 41) == 41
    layers = {
        r["model_id"]: r["layer"]
        for r in await pool.fetch(
            "SELECT DISTINCT model_id, layer FROM model_performance_minutes WHERE task_type = 'summarization'"
        )
    }
    assert set(layers.items()) <= {("openai/gpt-4o", "balanced"), ("openai/gpt-4o-mini", "fast")} and layers


async def test_the_any_producer_snippet_is_counted(settings, workers, pool, monkeypatch):
    from worker.simulation.producer import ensure_topics

    await ensure_topics(settings, partitions=1)
    worker = workers()
    await worker.wait_ready()
    monkeypatch.chdir(README.parent)
    await run_snippet(
        "any-producer",
        {
            '"127.0.0.1:9092"': repr(settings.kafka_bootstrap_servers),
            '"gateway.calls.completed"': repr(settings.topic_calls_completed),
        },
    )
    assert await counted(pool, ("gpt-4o",), 1) == 1
