"""/openapi.json, built from the same pydantic models that validate requests and shape answers."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel

from worker import __version__
from worker.routing.contract import RoutingHeuristic
from worker.tools.requests import READS, THROUGH_KAFKA, WRITES
from worker.tools.responses import (
    Accepted,
    Analysis,
    BugPatternsPage,
    BugPatternStatus,
    ExperimentCreated,
    ExperimentPromoted,
    ExperimentsPage,
    ExperimentView,
    ModelDeclared,
    RegressionTestsPage,
    RoutingHeuristicsPage,
    TestResultsRecorded,
    TestSaved,
    ToolError,
)

RESULTS: dict[str, type[BaseModel]] = {
    "analyze_metrics": Analysis,
    "get_routing_heuristics": RoutingHeuristicsPage,
    "get_bug_patterns": BugPatternsPage,
    "get_regression_tests": RegressionTestsPage,
    "record_metric": Accepted,
    "record_bug_pattern": Accepted,
    "update_model_performance": Accepted,
    "update_routing_heuristic": RoutingHeuristic,
    "generate_regression_test": TestSaved,
    "declare_model": ModelDeclared,
    "get_experiment": ExperimentView,
    "list_experiments": ExperimentsPage,
    "create_experiment": ExperimentCreated,
    "stop_experiment": ExperimentView,
    "promote_experiment": ExperimentPromoted,
    "record_test_results": TestResultsRecorded,
    "resolve_bug_pattern": BugPatternStatus,
}
GET_TOOLS = ("get_routing_heuristics", "get_bug_patterns", "get_regression_tests", "get_experiment", "list_experiments")
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


def _operation(name: str, model: type[BaseModel], components: dict) -> dict:
    write = name in WRITES
    status = "202" if name in THROUGH_KAFKA else "200"
    operation = {
        "operationId": name,
        "summary": (model.__doc__ or name).strip().splitlines()[0],
        "security": [{"bearer": []}],
        "responses": {
            status: {
                "description": "Applied by the next flush (exactly once)." if status == "202" else "OK",
                "content": {"application/json": {"schema": _component(components, RESULTS[name], "serialization")}},
            },
            **_errors(components, write),
        },
    }
    if name in GET_TOOLS:
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
    paths = {
        f"/tools/{name}": {"get" if name in GET_TOOLS else "post": _operation(name, model, components)}
        for name, model in {**READS, **WRITES}.items()
    }
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
