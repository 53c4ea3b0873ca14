"""`telemetry-worker mcp` driven by the MCP SDK's own client over stdio, on real services."""

import os
import sys
import uuid

import orjson
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.integration.harness import settings_env, wait_drained
from worker.simulation.producer import ensure_topics, simulate
from worker.store.migrate import migrate
from worker.tools.registry import READS, WRITES


def server(settings, **env) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "worker.cli", "mcp"], env={**os.environ, **settings_env(settings), **env}
    )


async def test_the_mcp_client_lists_and_calls_every_kind_of_tool(settings, workers, pool):
    await ensure_topics(settings, partitions=1)
    worker = workers()
    await worker.wait_ready()
    await simulate(settings, count=1000, seed=5, progress=False)
    await wait_drained(settings, pool, workers=[worker])

    async with Client(server(settings, TOOLS_TOKEN="mcp-token")) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) == set(READS) | set(WRITES)
        assert {"taskType", "includeReport"} <= set(listed["analyze_metrics"].input_schema["properties"])
        assert {"modelId", "taskType", "success", "latencyMs", "cost"} <= set(
            listed["update_model_performance"].input_schema["properties"]
        )

        analysis = await client.call_tool("analyze_metrics", {"taskType": "coding"})
        assert not analysis.is_error
        assert analysis.content[0].text.startswith("Model Performance Analysis:")
        calls = await pool.fetchval("SELECT sum(total_calls) FROM model_performance WHERE task_type = 'coding'")
        assert sum(m["totalCalls"] for m in analysis.structured_content["rankings"]["coding"]) == calls

        patterns = await client.call_tool("get_bug_patterns", {"limit": 1})
        assert not patterns.is_error and len(patterns.structured_content["items"]) == 1

        command_id = str(uuid.uuid4())
        for _ in range(2):  # a retry with the same commandId is applied once
            written = await client.call_tool(
                "record_metric", {"name": "mcp_metric", "value": 3.25, "unit": "ms", "commandId": command_id}
            )
            assert not written.is_error and written.structured_content["commandId"] == command_id

        invalid = await client.call_tool("record_metric", {"name": "mcp_metric", "value": "3", "unit": "ms"})
        assert invalid.is_error and orjson.loads(invalid.content[0].text)["detail"][0]["field"] == "value"

        arms = [
            {"name": "a", "share": 0.5, "strategy": {"kind": "learned"}},
            {"name": "b", "share": 0.5, "strategy": {"kind": "model", "model": "m", "layer": "fast"}},
        ]
        created = await client.call_tool("create_experiment", {"experimentId": "mcp-exp", "name": "n", "arms": arms})
        assert not created.is_error and created.structured_content["experiment"]["status"] == "running"
        shown = await client.call_tool("get_experiment", {"experimentId": "mcp-exp"})
        assert not shown.is_error and [e["arm"] for e in shown.structured_content["estimates"]] == ["a", "b"]
        listed_experiments = await client.call_tool("list_experiments", {"status": "running"})
        assert [e["experiment_id"] for e in listed_experiments.structured_content["items"]] == ["mcp-exp"]

    await wait_drained(settings, pool, workers=[worker])
    rows = await pool.fetch("SELECT metric_value FROM performance_metrics WHERE metric_name = 'mcp_metric'")
    assert [r["metric_value"] for r in rows] == [3.25]


async def test_mcp_refuses_writes_without_a_token_and_explains_a_missing_schema(settings, pool):
    async with Client(server(settings)) as client:
        refused = await client.call_tool("record_metric", {"name": "m", "value": 1.0, "unit": "ms"})
        assert refused.is_error and "TOOLS_TOKEN" in refused.content[0].text
        unmigrated = await client.call_tool("get_regression_tests", {})
        assert unmigrated.is_error and "telemetry-worker migrate" in unmigrated.content[0].text
        async with pool.acquire() as conn:
            await migrate(conn)
        read = await client.call_tool("get_regression_tests", {})
        assert not read.is_error and read.structured_content["total"] == 0
