"""Tool parameters: the gateway's names, strict JSON, unknown names refused, stored-text limits."""

import argparse

import pytest
from pydantic import ValidationError

from worker.cli import candidate_weights
from worker.tools.registry import READS, TOOLS, WRITES
from worker.tools.requests import (
    AnalyzeMetrics,
    GenerateRegressionTest,
    GetRoutingHeuristics,
    RecordMetric,
    UpdateModelPerformance,
    UpdateRoutingHeuristic,
)


def fields(error: ValidationError) -> list[str]:
    return [".".join(map(str, e["loc"])) for e in error.errors()]


def test_gateway_names_are_accepted_and_python_names_are_not():
    r = UpdateModelPerformance.model_validate_json(
        b'{"modelId": "claude-sonnet-4", "taskType": "coding", "success": true, "latencyMs": 2340, "cost": 0.0125}',
        strict=True,
    )
    assert (r.model_id, r.task_type, r.latency_ms, r.layer, r.command_id) == (
        "claude-sonnet-4",
        "coding",
        2340.0,
        None,
        None,
    )
    with pytest.raises(ValidationError) as error:
        UpdateModelPerformance.model_validate_json(
            b'{"model_id": "m", "taskType": "t", "success": true, "latencyMs": 1}', strict=True
        )
    assert set(fields(error.value)) == {"modelId", "model_id"}


@pytest.mark.parametrize(
    "body, field",
    [
        (b'{"name": "x", "value": "12", "unit": "ms"}', "value"),  # strict: a string is not a number
        (b'{"name": "x", "value": 1e400, "unit": "ms"}', "value"),  # infinite
        (b'{"name": "x\\u0000", "value": 1, "unit": "ms"}', "name"),
        (b'{"name": "x", "value": 1, "unit": "ms", "context": {"a": {"b": "\\u0000"}}}', "context"),
        (b'{"name": "", "value": 1, "unit": "ms"}', "name"),
        (b'{"name": "x", "value": 1, "unit": "ms", "contxt": {}}', "contxt"),
    ],
)
def test_record_metric_refuses_what_cannot_be_stored(body, field):
    with pytest.raises(ValidationError) as error:
        RecordMetric.model_validate_json(body, strict=True)
    assert field in fields(error.value)


def test_rule_patterns_must_run_in_linear_time():
    UpdateRoutingHeuristic.model_validate({"pattern": "(?i)implement.*algorithm", "preferredLayer": "deep"})
    with pytest.raises(ValidationError) as error:
        UpdateRoutingHeuristic.model_validate({"pattern": "(a)\\1", "preferredLayer": "deep"})
    assert "RE2" in str(error.value)


def test_test_names_are_identifiers_and_code_is_bounded():
    base = {
        "testName": "api_timeout_1",
        "category": "api",
        "description": "",
        "testCode": "it('x', () => {})",
        "expectedBehavior": "",
    }
    assert GenerateRegressionTest.model_validate(base).discovered_from == "user-feedback"
    for bad in ({"testName": "a b"}, {"testName": "x;rm"}, {"testCode": "x" * 70_000}):
        with pytest.raises(ValidationError):
            GenerateRegressionTest.model_validate({**base, **bad})


def test_query_strings_are_read_as_text_and_bounded():
    page = GetRoutingHeuristics.model_validate({"activeOnly": "false", "limit": "20", "offset": "40"})
    assert (page.active_only, page.limit, page.offset) == (False, 20, 40)
    for bad in ({"limit": "501"}, {"limit": "0"}, {"offset": "-1"}, {"activeonly": "true"}):
        with pytest.raises(ValidationError):
            GetRoutingHeuristics.model_validate(bad)


def test_the_gateway_tool_names_are_all_served_and_the_catalogue_experiment_and_ci_tools_beside_them():
    assert set(READS) | set(WRITES) == {
        "analyze_metrics",
        "get_routing_heuristics",
        "get_bug_patterns",
        "get_regression_tests",
        "record_metric",
        "record_bug_pattern",
        "update_routing_heuristic",
        "generate_regression_test",
        "update_model_performance",
        "declare_model",
        "create_experiment",
        "get_experiment",
        "list_experiments",
        "stop_experiment",
        "promote_experiment",
        "record_test_results",
        "resolve_bug_pattern",
    }


def test_candidate_weights_name_at_least_one_bounded_weight_on_the_wire_and_on_the_command_line():
    r = AnalyzeMetrics.model_validate_json(b'{"candidateWeights": {"costRefUsd": 0.001, "cost": 0.5}}', strict=True)
    assert r.candidate_weights is not None and r.candidate_weights.overrides() == {"cost": 0.5, "cost_ref_usd": 0.001}
    assert candidate_weights("cost=0.5, cost_ref_usd=0.001") == {"cost": 0.5, "cost_ref_usd": 0.001}
    for body, field in [
        (b'{"candidateWeights": {}}', "candidateWeights"),  # nothing to try
        (b'{"candidateWeights": {"cost": 2}}', "candidateWeights.cost"),  # past its bound
        (b'{"candidateWeights": {"speed": 0.1}}', "candidateWeights.speed"),  # unknown
    ]:
        with pytest.raises(ValidationError) as error:
            AnalyzeMetrics.model_validate_json(body, strict=True)
        assert field in fields(error.value), body
    for text, says in [("cost", "name=value pairs"), ("cost=2", "cost: Input should be less than or equal to 1")]:
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            candidate_weights(text)


def test_every_tool_is_one_registry_entry_with_its_handler():
    from worker.tools.service import ToolService

    for name, tool in TOOLS.items():
        assert callable(getattr(ToolService, name, None)), f"{name} has no ToolService method"
        assert tool.request.__doc__, f"{name}'s request needs a docstring (its description over HTTP and MCP)"
        assert tool.verb == "post" or not tool.writes, f"{name}: a write is a POST"
        assert not tool.through_kafka or tool.writes
