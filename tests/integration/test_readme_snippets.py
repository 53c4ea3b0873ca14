"""The README's router snippet, run as written against the real Kafka broker (only the topic name
is replaced by this test's own)."""

import ast
import re
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from tests.unit.gateway.test_table import learned

README = Path(__file__).resolve().parents[2] / "README.md"


def snippet(name: str) -> str:
    found = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert found, f"README.md has no snippet {name}"
    return found.group(1)


async def test_the_python_router_snippet_routes_by_the_published_rules(settings):
    rule = learned(weights={"gpt-4o": 0.6, "claude-sonnet-4": 0.4}, excluded={"llama-3.1-8b-instant": "down"})
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:  # a stranger's records first: the compacted topic keeps them for every router started later
        await producer.send_and_wait(settings.topic_heuristics, b'{"version": 1}', key=b"coding")
        await producer.send_and_wait(settings.topic_heuristics, b"\xff", key=b"experiment:x")
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
        assert namespace["table"].refused == 2  # skipped and counted, never fatal
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
            f"topic_failed={settings.topic_calls_failed!r}, topic_feedback={settings.topic_calls_feedback!r})",
            'HeuristicsSubscriber("127.0.0.1:9092", table)': f"HeuristicsSubscriber({brokers}, table, "
            f"topic={settings.topic_heuristics!r})",
            'os.environ["OPENAI_API_KEY"]}': 'os.environ["OPENAI_API_KEY"], "mock_response": "It is about a refund."}',
        },
    )
    try:
        assert ns["response"].choices[0].message.content == "It is about a refund."
        assert ns["subscriber"].caught_up.is_set() and ns["plugin"].router is ns["router"]
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
        # the README's way for a LiteLLM gateway to attach feedback: the request id it passed in metadata
        from worker.gateway.emitter import feedback

        ns["emitter"].emit(feedback(request_id="req-8f2a", name="thumbs", score=1.0, source="user"))
    finally:
        litellm.logging_callback_manager.drop_callbacks(list(litellm.callbacks))
        await ns["subscriber"].stop()
        await ns["emitter"].stop()
    assert ns["emitter"].stats.sent == 42 and ns["emitter"].stats.dropped == 0
    assert await counted(pool, ("openai/gpt-4o", "openai/gpt-4o-mini"), 41) == 41
    judged = await quality_rows(pool, 1)
    answered = await pool.fetchval(
        "SELECT model_id FROM call_index WHERE request_id = 'req-8f2a' AND ok ORDER BY occurred_at DESC LIMIT 1"
    )
    assert judged == [(answered, "summarization", "thumbs", 1, 1.0)]
    layers = {
        r["model_id"]: r["layer"]
        for r in await pool.fetch(
            "SELECT DISTINCT model_id, layer FROM model_performance_minutes WHERE task_type = 'summarization'"
        )
    }
    assert set(layers.items()) <= {("openai/gpt-4o", "balanced"), ("openai/gpt-4o-mini", "fast")} and layers


async def quality_rows(pool, feedback: int, timeout: float = 30.0) -> list[tuple]:
    """model_quality rows once at least `feedback` are counted (or the timeout passed)."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = await pool.fetch(
            "SELECT model_id, task_type, name, feedback_count, score_sum::float8 AS s FROM model_quality "
            "ORDER BY model_id, task_type, name"
        )
        if sum(r["feedback_count"] for r in rows) >= feedback or time.monotonic() > deadline:
            return [tuple(r) for r in rows]
        await asyncio.sleep(0.3)


async def test_the_feedback_snippet_scores_the_call_by_event_id_and_by_request_id(settings, workers, pool):
    from worker.simulation.producer import ensure_topics

    await ensure_topics(settings, partitions=1)
    worker = workers()
    await worker.wait_ready()
    brokers = repr(settings.kafka_bootstrap_servers)
    await run_snippet(
        "python-feedback",
        {
            'CallEmitter("127.0.0.1:9092")': f"CallEmitter({brokers}, topic_completed={settings.topic_calls_completed!r}, "
            f"topic_feedback={settings.topic_calls_feedback!r})"
        },
    )
    assert await quality_rows(pool, 2) == [
        ("gpt-4o", "support", "correctness", 1, 1.0),
        ("gpt-4o", "support", "thumbs", 1, 0.0),
    ]


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


async def test_the_experiment_snippet_starts_an_experiment_and_tags_the_calls(settings, workers, pool, monkeypatch):
    import asyncio

    from worker.gateway.emitter import CallEmitter, completed

    worker = workers(tools_token="readme-token", experiments_interval_s=1.0)
    await worker.wait_ready()
    monkeypatch.setenv("TOOLS_TOKEN", "readme-token")
    router = snippet("python-router").replace('"gateway.routing.heuristics"', repr(settings.topic_heuristics))
    router = router.replace('"127.0.0.1:9092"', repr(settings.kafka_bootstrap_servers))
    namespace: dict = {}
    await eval(compile(router, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace)
    try:
        await run_snippet(
            "python-experiment",
            {"http://127.0.0.1:6066": f"http://127.0.0.1:{worker.settings.web_port}"},
            namespace,
        )
        table = namespace["table"]
        for _ in range(300):  # the leader publishes it within EXPERIMENTS_INTERVAL_S
            if table.experiments:
                break
            await asyncio.sleep(0.1)
        picks = [namespace["pick_and_tag"]("coding", "write a parser", f"req-{i}") for i in range(400)]
    finally:
        await namespace["subscriber"].stop()
    arms = {fields["arm"] for _, fields in picks}
    assert arms == {"learned", "sonnet"}
    assert {model for model, fields in picks if fields["arm"] == "sonnet"} == {"claude-sonnet-4"}
    assert all(fields["experiment_id"] == "coding-sonnet-vs-learned" for _, fields in picks)
    # the fields go with the call's event, and the worker counts the call in its arm
    emitter = CallEmitter(settings.kafka_bootstrap_servers, topic_completed=settings.topic_calls_completed)
    await emitter.start()
    try:
        for model, fields in picks[:50]:
            emitter.emit(completed(model_id=model, layer="balanced", task_type="coding", latency_ms=800.0, **fields))
    finally:
        await emitter.stop()
    expected = sum(1 for _, fields in picks[:50] if fields["arm"] == "sonnet")
    for _ in range(300):
        found = await pool.fetchval("SELECT calls FROM experiment_arms WHERE arm = 'sonnet'")
        if found == expected:
            break
        await asyncio.sleep(0.1)
    assert found == expected
