"""Every tool, once: its name, what it accepts, what it answers, how it is called. HTTP (worker/tools/http.py),
MCP (mcp_server.py), the OpenAPI document (openapi.py) and the dispatch (invoke.py, to the ToolService
method of the same name) are all derived from this table, so adding a tool is one entry here, its
request and response models, and its ToolService method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from worker.routing.contract import RoutingHeuristic
from worker.tools import requests as rq
from worker.tools import responses as rs


@dataclass(frozen=True)
class Tool:
    name: str  # the gateway's tool name, the HTTP path /tools/<name> and the ToolService method
    request: type[BaseModel]
    response: type[BaseModel]
    verb: Literal["get", "post"] = "post"  # get: parameters in the query string
    writes: bool = False  # needs TOOLS_TOKEN (refused when none is set)
    through_kafka: bool = False  # a write that changes aggregates: answered 202, applied by the next flush


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("analyze_metrics", rq.AnalyzeMetrics, rs.Analysis),
        Tool("get_routing_heuristics", rq.GetRoutingHeuristics, rs.RoutingHeuristicsPage, "get"),
        Tool("get_bug_patterns", rq.GetBugPatterns, rs.BugPatternsPage, "get"),
        Tool("get_regression_tests", rq.GetRegressionTests, rs.RegressionTestsPage, "get"),
        Tool("get_experiment", rq.GetExperiment, rs.ExperimentView, "get"),
        Tool("list_experiments", rq.ListExperiments, rs.ExperimentsPage, "get"),
        Tool("record_metric", rq.RecordMetric, rs.Accepted, writes=True, through_kafka=True),
        Tool("record_bug_pattern", rq.RecordBugPattern, rs.Accepted, writes=True, through_kafka=True),
        Tool("update_model_performance", rq.UpdateModelPerformance, rs.Accepted, writes=True, through_kafka=True),
        Tool("update_routing_heuristic", rq.UpdateRoutingHeuristic, RoutingHeuristic, writes=True),
        Tool("generate_regression_test", rq.GenerateRegressionTest, rs.TestSaved, writes=True),
        Tool("declare_model", rq.DeclareModel, rs.ModelDeclared, writes=True),
        Tool("create_experiment", rq.CreateExperiment, rs.ExperimentCreated, writes=True),
        Tool("stop_experiment", rq.StopExperiment, rs.ExperimentView, writes=True),
        Tool("promote_experiment", rq.PromoteExperiment, rs.ExperimentPromoted, writes=True),
        Tool("record_test_results", rq.RecordTestResults, rs.TestResultsRecorded, writes=True),
        Tool("resolve_bug_pattern", rq.ResolveBugPattern, rs.BugPatternStatus, writes=True),
    )
}
READS = {name: t.request for name, t in TOOLS.items() if not t.writes}
WRITES = {name: t.request for name, t in TOOLS.items() if t.writes}
