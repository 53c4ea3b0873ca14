"""/openapi.json, built from the same pydantic models that validate requests and shape answers."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel

from worker import __version__
from worker.tools.registry import TOOLS, Tool
from worker.tools.responses import (
    ToolError,
)

REF = "#/components/schemas/{model}"


def _component(components: dict, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict:
    schema = model.model_json_schema(by_alias=True, ref_template=REF, mode=mode)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _errors(components: dict, write: bool) -> dict:
    error = {"content": {"application/json": {"schema": _component(components, ToolError, "serialization")}}}
    return {
        "401": {"description": "Missing or wrong bearer token (when TOOLS_TOKEN is set).", **error},
        **({"403": {"description": "Write tools are disabled: TOOLS_TOKEN is not set.", **error}} if write else {}),
        "422": {"description": "The request does not validate; detail names each field and why.", **error},
        "503": {"description": "PostgreSQL or Kafka is unreachable; nothing was written. Retry.", **error},
    }


def _operation(tool: Tool, components: dict) -> dict:
    name, model, write = tool.name, tool.request, tool.writes
    status = "202" if tool.through_kafka else "200"
    operation = {
        "operationId": name,
        "summary": (model.__doc__ or name).strip().splitlines()[0],
        "security": [{"bearer": []}],
        "responses": {
            status: {
                "description": "Applied by the next flush (exactly once)." if status == "202" else "OK",
                "content": {"application/json": {"schema": _component(components, tool.response, "serialization")}},
            },
            **_errors(components, write),
        },
    }
    if tool.verb == "get":
        schema = model.model_json_schema(by_alias=True, ref_template=REF, mode="validation")
        required = set(schema.get("required", ()))
        operation["parameters"] = [
            {"name": field, "in": "query", "required": field in required, "schema": prop}
            for field, prop in schema["properties"].items()
        ]
    else:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _component(components, model, "validation")}},
        }
    return operation


@lru_cache(maxsize=1)
def document() -> dict:
    components: dict = {}
    paths = {f"/tools/{name}": {tool.verb: _operation(tool, components)} for name, tool in TOOLS.items()}
    for path, what in (
        ("/healthz", "The process is up."),
        ("/readyz", "Kafka and PostgreSQL reachable, partitions assigned and positioned (503 until then)."),
        ("/metrics", "Prometheus metrics."),
    ):
        paths[path] = {
            "get": {"operationId": path.strip("/"), "summary": what, "responses": {"200": {"description": "OK"}}}
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gateway-telemetry-worker tools",
            "version": __version__,
            "description": "The gateway's self-improvement tools, served by the telemetry worker.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "TOOLS_TOKEN of the worker."}
            },
        },
    }
