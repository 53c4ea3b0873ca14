"""`telemetry-worker mcp`: the same tools over MCP (stdio), for an operator's AI assistant.

Built on the SDK's low-level server so that each tool's input schema IS the pydantic model that
validates it (gateway names, camelCase), exactly as HTTP serves it. Writes obey the same rule as
over HTTP: with no TOOLS_TOKEN in the environment they are refused.
"""

from __future__ import annotations

import contextlib
import logging

import anyio
import mcp_types as types
import orjson
from mcp.server import Server
from mcp.server.stdio import stdio_server

from worker import __version__
from worker.settings import Settings
from worker.tools.invoke import invoke
from worker.tools.registry import TOOLS
from worker.tools.service import ToolService

log = logging.getLogger(__name__)


def _tool(name: str) -> types.Tool:
    model = TOOLS[name].request
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return types.Tool(name=name, description=(model.__doc__ or name).strip(), input_schema=schema)


def build_server(settings: Settings) -> Server:
    @contextlib.asynccontextmanager
    async def lifespan(_server):
        service = await ToolService.connect(settings)
        log.info("MCP tools connected to PostgreSQL and Kafka")
        try:
            yield service
        finally:
            await service.close()

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(name) for name in TOOLS])

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name not in TOOLS:
            return _failure(f"no tool named {params.name!r}; tools: {', '.join(TOOLS)}")
        if TOOLS[params.name].writes and settings.tools_token is None:
            return _failure("write tools are disabled: set TOOLS_TOKEN in the MCP server's environment")
        outcome = await invoke(ctx.lifespan_context, params.name, orjson.dumps(params.arguments or {}))
        text = outcome.body.get("text") if params.name == "analyze_metrics" else None
        if outcome.status >= 400:
            return _failure(orjson.dumps(outcome.body).decode())
        return types.CallToolResult(
            content=[types.TextContent(text=text or orjson.dumps(outcome.body).decode())],
            structured_content=outcome.body,
        )

    return Server(
        "gateway-telemetry-worker",
        version=__version__,
        lifespan=lifespan,
        instructions="Tools of the LLM gateway's self-improvement loop: performance analysis, "
        "bug patterns, regression tests and routing heuristics.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _failure(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


async def serve(settings: Settings) -> None:
    server = build_server(settings)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def run(settings: Settings) -> None:
    anyio.run(serve, settings)
