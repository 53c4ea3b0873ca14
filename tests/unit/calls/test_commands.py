"""Tool commands on their topic: decoded like events, deduplicated by command_id, merged per pattern."""

import datetime as dt
import uuid

import orjson

from worker.calls.commands import BugReport, Metric, merged_reports
from worker.calls.decode import Call, decode
from worker.calls.events import EventKind


def command(tool: str, **fields) -> dict:
    return {"tool": tool, "command_id": str(uuid.uuid4()), "issued_at": "2026-11-24T10:00:00+00:00", **fields}


def test_each_command_becomes_what_the_flush_writes():
    values = [
        command(
            "update_model_performance",
            model_id="gpt-4o",
            task_type="chat",
            layer="balanced",
            success=False,
            latency_ms=120,
            cost_usd=0.25,
        ),
        command("record_metric", name="api_latency", value=234.5, unit="ms", context={"endpoint": "/route"}),
        command("record_bug_pattern", category="timeout", pattern="LLM timeout", severity="high"),
    ]
    items, rejections = decode(orjson.dumps(values), EventKind.command)
    assert rejections == []
    call, metric, report = items
    assert isinstance(call, Call) and call.ok is False and call.failure is None  # counted, but no bug pattern
    assert (call.model_id, call.layer, call.latency_ms, call.cost_usd) == ("gpt-4o", "balanced", 120.0, 0.25)
    assert call.event_id == values[0]["command_id"]
    assert metric == Metric(
        values[1]["command_id"],
        "api_latency",
        234.5,
        "ms",
        {"endpoint": "/route"},
        dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC).timestamp(),
    )
    assert isinstance(report, BugReport) and (report.severity, report.description) == ("high", "")


def test_a_bad_command_is_a_rejection_with_the_field():
    items, rejections = decode(
        orjson.dumps(command("record_metric", name="x", value="NaN?", unit="ms")), EventKind.command
    )
    assert items == [] and rejections[0].reason == "invalid_event" and "value" in rejections[0].detail
    items, rejections = decode(orjson.dumps(command("drop_tables")), EventKind.command)
    assert items == [] and rejections[0].reason == "invalid_event" and "tool" in rejections[0].detail


def test_reports_of_one_pattern_merge_into_one_row_latest_words_win():
    def report(at, category="timeout", pattern="p", description="", solution="", severity="low"):
        return BugReport(str(uuid.uuid4()), category, pattern, description, solution, severity, at)

    rows = merged_reports(
        [
            report(3.0, solution="split", severity="critical"),
            report(1.0, description="first"),
            report(2.0, description="second"),
            report(5.0, category="parsing"),
        ]
    )
    assert rows == [
        ("parsing", "p", "", "", 1, "low", 5.0, 5.0),
        ("timeout", "p", "second", "split", 3, "critical", 1.0, 3.0),
    ]
