"""The report's two views say the same thing: the printed report (`telemetry-worker report`, rich tables)
and analyze_metrics' text (the gateway's layout, for an assistant) show every model with its calls and
success rate, every recent bug with its state, the counterfactual lines and the summary counts."""

import io

from rich.console import Console

from tests.unit.tools.test_analysis import REPORT
from worker.reporting.report import bug_line, counterfactual_lines, render
from worker.routing.counterfactual import ASSUMPTIONS, against_current
from worker.tools.analysis import analyse


def printed(report) -> str:
    out = io.StringIO()
    render(report, Console(file=out, width=200, color_system=None))
    return out.getvalue()


def test_both_views_show_the_same_facts():
    found = against_current("coding", "learned:coding@v2", 1_790_000_000.0, {"a": 1.0}, {}, total_calls=40)
    report = REPORT.__class__(**{**REPORT.__dict__, "counterfactuals": [found]})
    table, text = printed(report), analyse(report, None, include_report=True).text
    for m in report.models:
        assert m.model_id in table and m.model_id in text
        assert f"{m.success_rate:.2f}%" in table and f"Success Rate: {m.success_rate:.2f}%" in text
        assert f"{m.total_calls:,}" in table and f"Total Calls: {m.total_calls}" in text
    for b in report.recent_bugs:
        line = bug_line(b.severity, b.status, b.pattern, b.occurrences)
        assert line in table and line in text
    flat_table = " ".join(table.split())  # a console wraps long lines
    for line in counterfactual_lines(report.counterfactuals, ASSUMPTIONS):
        assert " ".join(line.split()) in flat_table and line in text
    for count in (report.regression_tests, report.bug_patterns, report.routing_heuristics):
        assert str(count) in table and str(count) in text
