from worker.reporting.report import ModelRow, RecentBug, Report
from worker.tools.analysis import analyse


def row(model, task, rate, latency=100.0, calls=100):
    return ModelRow(
        model,
        task,
        rate,
        latency,
        0.01,
        calls,
        int(calls * rate / 100),
        calls - int(calls * rate / 100),
        None,
        latency * 2,
        None,
        0,
        0,
        None,
        None,
    )


REPORT = Report(
    models=[
        row("a", "coding", 90.0),
        row("b", "coding", 99.0, calls=5),
        row("c", "coding", 99.0, latency=50.0),
        row("d", "chat", 80.0),
    ],
    regression_tests=4,
    bug_patterns=2,
    routing_heuristics=3,
    recent_bugs=[
        RecentBug("high", "Request to <hostname> timed out", 12, "timeout", None),
        RecentBug("critical", "Rate limit reached (<number>)", 3, "rate_limit", None, "regressed"),
    ],
)


def test_models_rank_by_success_then_latency_within_each_task_type():
    analysis = analyse(REPORT, None, include_report=True)
    assert [(m.rank, m.model_id) for m in analysis.rankings["coding"]] == [(1, "c"), (2, "b"), (3, "a")]
    assert [m.model_id for m in analysis.rankings["chat"]] == ["d"]
    assert analysis.rankings["coding"][0].p95_latency_ms == 100.0


def test_the_summary_counts_and_the_text_follow_the_gateway():
    analysis = analyse(REPORT, None, include_report=True)
    assert (analysis.report.regression_tests, analysis.report.bug_patterns, analysis.report.routing_heuristics) == (
        4,
        2,
        3,
    )
    assert [t.model for t in analysis.report.top_models][:2] == ["c", "b"]  # same rate: more calls first
    text = analysis.text
    assert text.startswith("Model Performance Analysis:\n\nd (chat):")
    assert "c (coding):\nSuccess Rate: 99.00%\nAvg Latency: 50ms\nAvg Cost: $0.010000\nTotal Calls: 100" in text
    assert "Self-Improvement Summary:\nRegression Tests: 4\nBug Patterns: 2\nRouting Heuristics: 3" in text
    assert "  [high] Request to <hostname> timed out (12x)" in text
    assert "  [critical regressed] Rate limit reached (<number>) (3x)" in text


def test_without_the_report_only_rankings():
    analysis = analyse(REPORT, "coding", include_report=False)
    assert analysis.report is None and "Self-Improvement Summary" not in analysis.text
    assert analyse(Report([], 0, 0, 0, []), None, True).text.startswith("Model Performance Analysis:\n\nNo calls")
