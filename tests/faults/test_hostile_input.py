"""Hostile and broken input on real services: every invalid item is dead-lettered with a reason, every
valid one is counted, nothing stalls, and injection strings stay inert data.

The expected verdict for each item comes from an oracle that shares no code with the worker's
decoder: Python's own json module with strict number handling, and the published JSON Schema.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from pathlib import Path

import jsonschema
import orjson
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests import samples
from tests.integration.harness import dead_letters, wait_drained
from tests.typescript_parser import TypeScriptParser
from worker.simulation.producer import ensure_topics

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
LIMIT_BYTES, LIMIT_ITEMS, LIMIT_DEPTH = 1_048_576, 10_000, 32


# The worker reads an integer field only from an integer literal: "1e-400" or "1.0" is a number
# with a fraction or an exponent, refused where JSON Schema's "integer" would accept a float that
# happens to round to a whole one (-1e-400 parses to -0.0).
_LITERAL_INTEGERS = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
)
_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_LITERAL_INTEGERS)


def _validator(name: str):
    return _Validator(json.loads((SCHEMAS / name).read_text()), format_checker=jsonschema.FormatChecker())


VALIDATORS = {
    "completed": _validator("call-completed.v1.schema.json"),
    "failed": _validator("call-failed.v1.schema.json"),
}


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def _depth(value, level=1) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return max((_depth(c, level + 1) for c in children if isinstance(c, (dict, list))), default=level)


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_has_nul(v) for v in value)


def _event_ok(event, kind: str) -> bool:
    if not isinstance(event, dict) or _depth(event) > LIMIT_DEPTH or _has_nul(event):
        return False
    if not VALIDATORS[kind].is_valid(event):
        return False
    when = event["occurred_at"]  # the schema's date-time format is lenient on some inputs; RFC 3339 wants a zone
    return isinstance(when, str) and (when.endswith(("Z", "z")) or when[-6] in "+-")


def oracle(value: bytes, kind: str) -> tuple[int, int]:
    """(valid events, invalid items) for one message value."""
    if not value or len(value) > LIMIT_BYTES:
        return 0, 1
    try:
        parsed = json.loads(value.decode("utf-8"), parse_float=_finite, parse_constant=_finite)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return 0, 1
    if isinstance(parsed, list):
        if not parsed or len(parsed) > LIMIT_ITEMS:
            return 0, 1
        good = sum(_event_ok(e, kind) for e in parsed)
        return good, len(parsed) - good
    return (1, 0) if _event_ok(parsed, kind) else (0, 1)


def _fresh(kind: str) -> dict:
    return (
        samples.completed(event_id=str(uuid.uuid4()))
        if kind == "completed"
        else samples.failed(event_id=str(uuid.uuid4()))
    )


@st.composite
def near_valid(draw, kind: str) -> bytes:
    event = _fresh(kind)
    mutation = draw(
        st.sampled_from(
            [
                "valid",
                "huge_number",
                "nan",
                "deep",
                "big_string",
                "bad_utf8",
                "duplicate_key",
                "mixed_envelope",
                "wrong_type",
                "missing",
                "bytes",
                "nul",
            ]
        )
    )
    if mutation == "valid":
        return orjson.dumps(event)
    if mutation == "huge_number":
        field = draw(st.sampled_from(["latency_ms", "input_tokens", "cost_usd"]))
        text = (
            orjson.dumps(event)
            .decode()
            .replace(
                f'"{field}":{orjson.dumps(event[field]).decode()}',
                f'"{field}":{draw(st.sampled_from(["1e400", "123456789012345678901234567890", "-1e-400"]))}',
            )
        )
        return text.encode()
    if mutation == "nan":
        return orjson.dumps(event).replace(b'"latency_ms":1850.5', b'"latency_ms":NaN')
    if mutation == "deep":
        nested: object = 1
        for _ in range(draw(st.integers(25, 200))):
            nested = [nested]
        return orjson.dumps({**event, "extra": nested})
    if mutation == "big_string":
        return orjson.dumps(
            {
                **event,
                draw(st.sampled_from(["request_id", "model_id", "note"])): "x"
                * draw(st.sampled_from([199, 201, 70_000, 1_048_600])),
            }
        )
    if mutation == "bad_utf8":
        return orjson.dumps(event).replace(b"claude", b"cl\xffude")
    if mutation == "duplicate_key":  # the last value wins, as in every common JSON parser
        return orjson.dumps(event)[:-1] + b',"layer":' + draw(st.sampled_from([b'"deep"', b'"turbo"'])) + b"}"
    if mutation == "mixed_envelope":
        items = draw(st.lists(st.sampled_from(["good", "bad", "junk"]), min_size=1, max_size=8))
        return orjson.dumps(
            [_fresh(kind) if i == "good" else {**_fresh(kind), "layer": 7} if i == "bad" else "junk" for i in items]
        )
    if mutation == "wrong_type":
        return orjson.dumps({**event, draw(st.sampled_from(["latency_ms", "input_tokens", "retryable"])): "12"})
    if mutation == "missing":
        del event[draw(st.sampled_from(["event_id", "model_id", "occurred_at"]))]
        return orjson.dumps(event)
    if mutation == "nul":
        return orjson.dumps({**event, "task_type": "cod\x00ing"})
    return draw(st.binary(max_size=64))


@hypothesis_settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(["completed", "failed"]), st.data()), min_size=60, max_size=90))
async def test_fuzzed_input_is_dead_lettered_or_counted_never_fatal(settings, workers, pool, items):
    # one fresh set of topics per example: the settings fixture is per test, so suffix them here
    run = uuid.uuid4().hex[:6]
    own = settings.model_copy(
        update={
            k: f"{getattr(settings, k)}.{run}"
            for k in ("topic_calls_completed", "topic_calls_failed", "topic_dlq", "consumer_group")
        }
    )
    await ensure_topics(own, partitions=2)
    worker = workers(
        **{k: getattr(own, k) for k in ("topic_calls_completed", "topic_calls_failed", "topic_dlq", "consumer_group")}
    )
    await worker.wait_ready()
    messages = [(kind, data.draw(near_valid(kind))) for kind, data in items]
    producer = AIOKafkaProducer(bootstrap_servers=own.kafka_bootstrap_servers, max_request_size=4_194_304)
    await producer.start()
    try:
        for kind, value in messages:
            topic = own.topic_calls_completed if kind == "completed" else own.topic_calls_failed
            await producer.send(topic, value)
        await producer.flush()
    finally:
        await producer.stop()
    await wait_drained(own, pool, workers=[worker])

    expected_good = sum(oracle(v, k)[0] for k, v in messages)
    expected_bad = sum(oracle(v, k)[1] for k, v in messages)
    counted = await pool.fetchval("SELECT coalesce(sum(total_calls), 0) FROM model_performance")
    letters = await dead_letters(own, timeout=5 if expected_bad else 2)
    print("fuzz example:", len(messages), "messages ->", expected_good, "counted,", expected_bad, "dead letters")
    assert (counted, len(letters)) == (expected_good, expected_bad)
    assert all(dict(r.headers).get("dlq.reason") for r in letters)
    assert worker.proc.poll() is None and "Traceback" not in worker.log_tail(100_000)
    await pool.execute("TRUNCATE model_performance, consumer_offsets, seen_events")
    worker.kill9()


INJECTIONS = [
    "x'); DROP TABLE model_performance;--",
    "${process.exit(1)}",
    "`rm -rf /`",
    "'''; import os #",
    '"""',
    "</script><script>alert(1)</script>",
    "{{7*7}}",
    "%s%s%n",
    "\\'; SELECT pg_sleep(10);--",
    "\u2028\u2029",
    "\ud7ff\ue000",
]


async def test_injection_strings_in_every_field_stay_inert_data(settings, workers, pool):
    await ensure_topics(settings, partitions=1)
    worker = workers()
    await worker.wait_ready()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for i, text in enumerate(INJECTIONS):
            event = samples.failed(
                event_id=str(uuid.uuid4()),
                model_id=text,
                task_type=text[:100],
                provider=text,
                request_id=text,
                routing_rule_id=text,
                error_type=f"{text}-{i}",
                category=text,
                error_message=f"boom {text}",
                request={text: [text, {"k": text}]},
            )
            await producer.send_and_wait(settings.topic_calls_failed, orjson.dumps(event))
    finally:
        await producer.stop()
    await wait_drained(settings, pool, workers=[worker])

    models = {r[0] for r in await pool.fetch("SELECT model_id FROM model_performance")}
    assert models == set(INJECTIONS)  # stored as data, byte for byte
    assert await pool.fetchval("SELECT count(*) FROM bug_patterns") == len(INJECTIONS)
    parser = TypeScriptParser()
    try:
        for row in await pool.fetch("SELECT test_code FROM regression_tests"):
            assert parser.parse(row["test_code"])["diagnostics"] == []
    finally:
        parser.close()
    assert (
        await pool.fetchval("SELECT count(*) FROM information_schema.tables WHERE table_name = 'model_performance'")
        == 1
    )


async def test_a_slow_database_and_a_poison_event_stall_no_partition(settings, workers, pool):
    """Every flush waits 300 ms more than it should, and the database refuses one model's rows (a
    constraint stands in for any value it cannot take): the rest still flows, exactly counted."""
    from worker.store.migrate import migrate

    async with pool.acquire() as conn:
        await migrate(conn)
        await conn.execute("""
            CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$;
            CREATE TRIGGER slow_flushes AFTER INSERT ON model_performance FOR EACH STATEMENT EXECUTE FUNCTION slow_down();
            ALTER TABLE model_performance ADD CONSTRAINT refuse_poison CHECK (model_id <> 'poison-model');""")
    await ensure_topics(settings, partitions=4)
    worker = workers()
    await worker.wait_ready()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    good = 0
    try:
        for i in range(3000):
            poison = i % 500 == 0
            event = samples.completed(event_id=str(uuid.uuid4()), model_id="poison-model" if poison else f"m{i % 3}")
            await producer.send(settings.topic_calls_completed, orjson.dumps(event), partition=i % 4)
            good += not poison
        await producer.flush()
    finally:
        await producer.stop()
    await wait_drained(settings, pool, workers=[worker], timeout=120)
    assert await pool.fetchval("SELECT sum(total_calls) FROM model_performance") == good
    letters = await dead_letters(settings)
    reasons = [dict(r.headers)["dlq.reason"] for r in letters]
    assert reasons == [b"rejected_by_database"] * 6
    assert all(orjson.loads(r.value)["model_id"] == "poison-model" for r in letters)
    assert worker.proc.poll() is None
    await asyncio.sleep(0)
