"""The tools on real services: every endpoint valid, invalid and unauthorised; answers checked
against /openapi.json; writes that change aggregates land in PostgreSQL through Kafka, once."""

import asyncio
import uuid

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from tests.integration.harness import wait_drained
from worker.simulation.producer import ensure_topics, simulate

TOKEN = "tools-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

VALID = {
    "analyze_metrics": {"taskType": "coding", "includeReport": True},
    "get_routing_heuristics": {"activeOnly": "true", "limit": "5"},
    "get_bug_patterns": {"limit": "2"},
    "get_regression_tests": {"category": "routing"},
    "record_metric": {"name": "api_latency", "value": 234.5, "unit": "ms", "context": {"endpoint": "/route"}},
    "record_bug_pattern": {
        "category": "timeout",
        "pattern": "LLM timeout on large context",
        "description": "Model times out when context > 100K tokens",
        "solution": "Split context into chunks, use compression",
        "severity": "high",
    },
    "update_model_performance": {
        "modelId": "claude-sonnet-4",
        "taskType": "coding",
        "success": True,
        "latencyMs": 2340,
        "cost": 0.0125,
    },
    "update_routing_heuristic": {
        "pattern": ".*implement.*algorithm.*",
        "preferredLayer": "deep",
        "preferredModel": "claude-sonnet-4",
        "reasoning": "needs deep reasoning",
        "successRate": 92.5,
        "usageCount": 45,
        "active": True,
    },
    "generate_regression_test": {
        "testName": "routing_timeout_recovery",
        "category": "routing",
        "description": "router handles model timeouts",
        "testCode": "it('retries', async () => { expect(1).toBe(1); });",
        "expectedBehavior": "retries up to 3 times",
        "discoveredFrom": "bug",
        "metadata": {"bugTicket": "ISSUE-123"},
    },
    "declare_model": {
        "modelId": "gpt-5-mini",
        "layer": "fast",
        "taskTypes": ["chat", "extraction"],
        "provider": "openai",
    },
    "create_experiment": {
        "experimentId": "tools-exp",
        "name": "fixed model against the learned rule",
        "taskTypes": ["coding"],
        "arms": [
            {"name": "control", "share": 0.5, "strategy": {"kind": "learned"}},
            {"name": "fixed", "share": 0.5, "strategy": {"kind": "model", "model": "gpt-5-mini", "layer": "fast"}},
        ],
        "primaryMetric": "success_rate",
        "guardrails": [{"metric": "failure_rate", "above": 0.5}],
    },
    "get_experiment": {"experimentId": "tools-exp"},
    "list_experiments": {"status": "running"},
    "stop_experiment": {"experimentId": "tools-exp", "reason": "enough"},
    "promote_experiment": {"experimentId": "tools-exp", "arm": "fixed", "force": True, "reason": "the answer's shape"},
    "record_test_results": {
        "junitXml": '<testsuites><testsuite name="s"><testcase name="test_health" /></testsuite></testsuites>',
        "commit": "c0ffee",
        "environment": "ci",
    },
    "resolve_bug_pattern": {"fingerprint": "0123456789abcdef", "by": "alice", "reason": "fixed in #12"},
}
INVALID = {  # one wrong field each, and the field the answer must name
    "analyze_metrics": ({"taskType": 7}, "taskType"),
    "get_routing_heuristics": ({"activeOnly": "perhaps"}, "activeOnly"),
    "get_bug_patterns": ({"limit": "0"}, "limit"),
    "get_regression_tests": ({"offset": "-1"}, "offset"),
    "record_metric": ({"name": "x", "value": "12", "unit": "ms"}, "value"),
    "record_bug_pattern": ({"category": "timeout", "pattern": "p", "severity": "apocalyptic"}, "severity"),
    "update_model_performance": ({"modelId": "m", "taskType": "t", "success": "yes", "latencyMs": 1}, "success"),
    "update_routing_heuristic": ({"pattern": "(a)\\1", "preferredLayer": "deep"}, "pattern"),
    "generate_regression_test": ({**VALID["generate_regression_test"], "testName": "no spaces allowed"}, "testName"),
    "declare_model": ({"modelId": "m", "layer": "medium"}, "layer"),
    "create_experiment": ({**VALID["create_experiment"], "experimentId": "no spaces"}, "experimentId"),
    "get_experiment": ({"experimentId": ""}, "experimentId"),
    "list_experiments": ({"status": "paused"}, "status"),
    "stop_experiment": ({"experimentId": "x", "reason": "r" * 501}, "reason"),
    "promote_experiment": ({"experimentId": "x", "arm": "no spaces"}, "arm"),
    "record_test_results": ({**VALID["record_test_results"], "commit": "no spaces; rm -rf"}, "commit"),
    "resolve_bug_pattern": ({**VALID["resolve_bug_pattern"], "fingerprint": "XYZ"}, "fingerprint"),
}
GET_TOOLS = {"get_routing_heuristics", "get_bug_patterns", "get_regression_tests", "get_experiment", "list_experiments"}


async def call(http, port, name, args, headers=AUTH):
    url = f"http://127.0.0.1:{port}/tools/{name}"
    if name in GET_TOOLS:
        async with http.get(url, params=args, headers=headers) as r:
            return r.status, await r.json()
    async with http.post(url, json=args, headers=headers) as r:
        return r.status, await r.json()


def check_against_openapi(spec: dict, name: str, status: int, body: dict) -> None:
    operation = next(iter(spec["paths"][f"/tools/{name}"].values()))
    declared = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "components": spec["components"], **declared}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    assert errors == [], f"{name} {status}: {[e.message for e in errors[:3]]}"


async def eventually(query, pool, expected, timeout=30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await pool.fetchval(query)
        if value == expected or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.2)


@pytest.fixture
async def served(settings, workers, pool):
    await ensure_topics(settings, partitions=2)
    worker = workers(tools_token=TOKEN)
    await worker.wait_ready()
    await simulate(settings, count=3000, seed=11, progress=False)
    await wait_drained(settings, pool, workers=[worker])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{worker.settings.web_port}/openapi.json") as r:
            spec = await r.json()
        yield http, worker.settings.web_port, spec


async def test_every_tool_answers_as_its_openapi_document_says(served, pool):
    http, port, spec = served
    assert set(VALID) == {p.removeprefix("/tools/") for p in spec["paths"] if p.startswith("/tools/")}
    for name, args in VALID.items():
        if name == "resolve_bug_pattern":  # one the simulated failures created
            found = "SELECT fingerprint FROM bug_patterns WHERE fingerprint IS NOT NULL ORDER BY id LIMIT 1"
            args = {**args, "fingerprint": await pool.fetchval(found)}
        status, body = await call(http, port, name, args)
        assert status == (
            202 if name in ("record_metric", "record_bug_pattern", "update_model_performance") else 200
        ), (name, body)
        check_against_openapi(spec, name, status, body)

        bad, field = INVALID[name]
        status, body = await call(http, port, name, bad)
        assert status == 422 and field in [d["field"] for d in body["detail"]], (name, body)
        check_against_openapi(spec, name, 422, body)

        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dG9vbHM="}):
            status, body = await call(http, port, name, args, headers)
            assert status == 401 and body["error"] == "unauthorized", (name, headers, body)
            check_against_openapi(spec, name, 401, body)


async def test_analysis_and_pages_reflect_the_database(served, pool):
    http, port, _ = served
    status, analysis = await call(http, port, "analyze_metrics", {"includeReport": True})
    assert status == 200
    rows = await pool.fetch("SELECT model_id, task_type, total_calls FROM model_performance")
    ranked = {(m["modelId"], m["taskType"]): m["totalCalls"] for ms in analysis["rankings"].values() for m in ms}
    assert ranked == {(r["model_id"], r["task_type"]): r["total_calls"] for r in rows}
    for models in analysis["rankings"].values():
        rates = [m["successRate"] for m in models]
        assert rates == sorted(rates, reverse=True) and [m["rank"] for m in models] == list(range(1, len(models) + 1))
    assert analysis["report"]["bugPatterns"] == await pool.fetchval("SELECT count(*) FROM bug_patterns")
    assert "Model Performance Analysis:" in analysis["text"] and "Self-Improvement Summary:" in analysis["text"]
    assert analysis["modelsLeftOut"] == 0

    status, capped = await call(http, port, "analyze_metrics", {"maxModels": 1, "includeReport": False})
    assert status == 200 and all(len(models) == 1 for models in capped["rankings"].values())
    busiest = {}
    for r in rows:
        if r["total_calls"] > busiest.get(r["task_type"], (None, -1))[1]:
            busiest[r["task_type"]] = (r["model_id"], r["total_calls"])
    assert {t: ms[0]["totalCalls"] for t, ms in capped["rankings"].items()} == {t: c for t, (_, c) in busiest.items()}
    assert capped["modelsLeftOut"] == len(rows) - len(busiest)

    total = await pool.fetchval("SELECT count(*) FROM bug_patterns")
    assert total >= 3
    seen, offset = [], 0
    while offset is not None:
        status, page = await call(http, port, "get_bug_patterns", {"limit": "2", "offset": str(offset)})
        assert status == 200 and page["total"] == total and len(page["items"]) <= 2
        seen += [p["id"] for p in page["items"]]
        offset = page["nextOffset"]
    assert sorted(seen) == sorted(r["id"] for r in await pool.fetch("SELECT id FROM bug_patterns"))
    status, page = await call(http, port, "get_bug_patterns", {"offset": str(total + 10)})
    assert status == 200 and page["items"] == [] and page["total"] == total and page["nextOffset"] is None


async def test_writes_that_change_aggregates_go_through_kafka_exactly_once(served, settings, pool):
    http, port, _ = served
    before = await pool.fetchrow(
        "SELECT total_calls, success_count FROM model_performance WHERE model_id = 'gpt-4o' AND task_type = 'coding'"
    )
    report = {
        "modelId": "gpt-4o",
        "taskType": "coding",
        "success": False,
        "latencyMs": 900.0,
        "cost": 0.5,
        "commandId": str(uuid.uuid4()),
    }
    metric = {"name": "tool_metric", "value": 1.5, "unit": "ms", "commandId": str(uuid.uuid4())}
    bug = {"category": "parsing", "pattern": "JSON cut off mid-stream", "severity": "low"}
    answers = [await call(http, port, "update_model_performance", report) for _ in range(3)]  # a retried call
    answers += [await call(http, port, "record_metric", metric) for _ in range(2)]
    answers += [await call(http, port, "record_bug_pattern", bug) for _ in range(2)]  # two distinct reports
    answers += [await call(http, port, "record_bug_pattern", {**bug, "severity": "critical", "solution": "resume"})]
    assert all(status == 202 and body["topic"] == settings.topic_tool_commands for status, body in answers)
    assert len({body["commandId"] for _, body in answers}) == 5

    await wait_drained(settings, pool)
    after = await pool.fetchrow(
        "SELECT total_calls, success_count, cost_sum_usd FROM model_performance "
        "WHERE model_id = 'gpt-4o' AND task_type = 'coding'"
    )
    assert after["total_calls"] == before["total_calls"] + 1 and after["success_count"] == before["success_count"]
    assert await pool.fetchval("SELECT count(*) FROM performance_metrics WHERE metric_name = 'tool_metric'") == 1
    row = await pool.fetchrow(
        "SELECT occurrences, severity, solution, solution_source, fingerprint FROM bug_patterns "
        "WHERE category = 'parsing' AND pattern = 'JSON cut off mid-stream'"
    )
    assert dict(row) == {
        "occurrences": 3,
        "severity": "critical",
        "solution": "resume",
        "solution_source": "operator",
        "fingerprint": None,
    }


async def test_direct_writes_are_visible_at_once_and_idempotent(served, pool):
    http, port, _ = served
    status, rule = await call(http, port, "update_routing_heuristic", VALID["update_routing_heuristic"])
    assert status == 200 and rule["version"] == 1 and rule["preferred_layer"] == "deep"
    rule_id = int(rule["heuristic_id"].split(":")[1])
    status, changed = await call(
        http,
        port,
        "update_routing_heuristic",
        {**VALID["update_routing_heuristic"], "active": False, "ruleId": rule_id},
    )
    assert status == 200 and changed["version"] == 2 and changed["active"] is False
    status, body = await call(
        http, port, "update_routing_heuristic", {**VALID["update_routing_heuristic"], "ruleId": 999_999}
    )
    assert status == 422 and body["detail"][0]["field"] == "ruleId"
    status, active = await call(http, port, "get_routing_heuristics", {"activeOnly": "true"})
    status, every = await call(http, port, "get_routing_heuristics", {"activeOnly": "false"})
    assert f"manual:{rule_id}" not in [h["heuristic_id"] for h in active["items"]]
    assert f"manual:{rule_id}" in [h["heuristic_id"] for h in every["items"]]

    test = VALID["generate_regression_test"]
    first = await call(http, port, "generate_regression_test", test)
    again = await call(http, port, "generate_regression_test", {**test, "testCode": "it('v2', () => {});"})
    assert first[0] == again[0] == 200 and first[1]["created"] and not again[1]["created"]
    assert first[1]["id"] == again[1]["id"]
    status, page = await call(http, port, "get_regression_tests", {"category": "routing", "limit": "500"})
    mine = [t for t in page["items"] if t["test_name"] == test["testName"]]
    assert len(mine) == 1 and mine[0]["test_code"] == "it('v2', () => {});" and mine[0]["metadata"] == test["metadata"]


async def test_layer_is_inferred_or_asked_for(served, pool):
    http, port, _ = served
    status, body = await call(
        http,
        port,
        "update_model_performance",
        {"modelId": "brand-new-model", "taskType": "chat", "success": True, "latencyMs": 10},
    )
    assert status == 422 and body["detail"] == [{"field": "layer", "reason": body["detail"][0]["reason"]}]
    assert "pass layer" in body["detail"][0]["reason"]
    status, _ = await call(
        http,
        port,
        "update_model_performance",
        {"modelId": "brand-new-model", "taskType": "chat", "success": True, "latencyMs": 10, "layer": "fast"},
    )
    assert status == 202
    assert (
        await eventually("SELECT total_calls FROM model_performance WHERE model_id = 'brand-new-model'", pool, 1) == 1
    )


async def test_without_a_token_reads_are_open_and_writes_refused(settings, workers):
    worker = workers()
    await worker.wait_ready()
    async with aiohttp.ClientSession() as http:
        status, _ = await call(http, worker.settings.web_port, "analyze_metrics", {}, headers={})
        assert status == 200
        for name in (
            "record_metric",
            "record_bug_pattern",
            "update_model_performance",
            "update_routing_heuristic",
            "generate_regression_test",
        ):
            status, body = await call(http, worker.settings.web_port, name, VALID[name], headers={})
            assert status == 403 and "TOOLS_TOKEN" in body["message"], (name, body)
