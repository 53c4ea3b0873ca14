"""/tools/* on the worker's Faust web server (aiohttp), at the gateway's paths, plus /openapi.json."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import faust
import orjson

from worker.settings import Settings
from worker.tools import auth
from worker.tools.invoke import Outcome, error, invoke
from worker.tools.openapi import document
from worker.tools.registry import TOOLS
from worker.tools.service import ToolService


def _respond(view: faust.web.View, outcome: Outcome, headers: dict | None = None):
    response = view.bytes(orjson.dumps(outcome.body), content_type="application/json", status=outcome.status)
    response.headers.update(headers or {})
    return response


def tool_view(name: str, settings: Settings, service: Callable[[], ToolService | None]) -> type[faust.web.View]:
    token = settings.tools_token.get_secret_value() if settings.tools_token else None
    tool = TOOLS[name]
    write = tool.writes

    async def handle(self, request):
        denied = auth.check(request.headers.get("Authorization"), token, write)
        if denied:
            challenge = {"WWW-Authenticate": 'Bearer realm="tools"'} if denied.status == 401 else None
            return _respond(self, error(denied.status, denied.error, denied.message), challenge)
        if tool.verb == "get":
            arguments = dict(request.query)
        else:
            try:  # a body that trickles in holds a connection: it gets TOOLS_BODY_TIMEOUT_S, then 408
                arguments = await asyncio.wait_for(request.read(), settings.tools_body_timeout_s)
            except TimeoutError:
                response = _respond(
                    self,
                    error(
                        408,
                        "request_timeout",
                        f"the request body did not arrive within "
                        f"{settings.tools_body_timeout_s:g} s (TOOLS_BODY_TIMEOUT_S)",
                    ),
                )
                response.force_close()
                return response
        return _respond(self, await invoke(service(), name, arguments))

    return type(f"Tool_{name}", (faust.web.View,), {tool.verb: handle, "__doc__": tool.request.__doc__})


def install(app: faust.App, settings: Settings, service: Callable[[], ToolService | None]) -> None:
    for name in TOOLS:
        app.page(f"/tools/{name}")(tool_view(name, settings, service))
    spec = orjson.dumps(document())

    @app.page("/openapi.json")
    async def openapi(web, request):
        return web.bytes(spec, content_type="application/json")
