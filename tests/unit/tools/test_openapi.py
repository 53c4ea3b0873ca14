"""/openapi.json is a valid document whose schemas are the models that validate and answer."""

import pytest
from jsonschema import Draft202012Validator

from worker.tools.openapi import document
from worker.tools.registry import READS, TOOLS, WRITES


def test_every_tool_has_one_operation_with_its_answers():
    spec = document()
    assert spec["openapi"].startswith("3.1")
    for name in {**READS, **WRITES}:
        ((method, operation),) = spec["paths"][f"/tools/{name}"].items()
        assert method == ("get" if name.startswith(("get_", "list_")) else "post") and operation["operationId"] == name
        success = "202" if TOOLS[name].through_kafka else "200"
        assert set(operation["responses"]) == {success, "401", "422", "503"} | ({"403"} if name in WRITES else set())


@pytest.mark.parametrize("name", sorted(document()["components"]["schemas"]))
def test_every_component_is_a_valid_json_schema(name):
    Draft202012Validator.check_schema(document()["components"]["schemas"][name])


def test_every_reference_resolves():
    spec = document()

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    names = set(spec["components"]["schemas"])
    assert {r.removeprefix("#/components/schemas/") for r in refs(spec)} <= names


def test_query_parameters_carry_the_gateway_names():
    operation = document()["paths"]["/tools/get_routing_heuristics"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["limit", "offset", "activeOnly"]
