"""analyze_metrics: model rankings per task type and the self-improvement summary, from the report's rows."""

from __future__ import annotations

from worker.reporting.report import Report, bug_line, counterfactual_lines
from worker.tools.responses import (
    Analysis,
    CostForecast,
    Counterfactual,
    ImprovementReport,
    ModelRanking,
    QualityEstimate,
    RecentBug,
    TopModel,
)

TOP_MODELS = 5


def analyse(report: Report, task_type: str | None, include_report: bool) -> Analysis:
    rankings: dict[str, list[ModelRanking]] = {}
    ordered = sorted(report.models, key=lambda m: (m.task_type, -m.success_rate, m.avg_latency_ms, m.model_id))
    for m in ordered:
        ranked = rankings.setdefault(m.task_type, [])
        ranked.append(
            ModelRanking(
                rank=len(ranked) + 1,
                model_id=m.model_id,
                task_type=m.task_type,
                success_rate=m.success_rate,
                avg_latency_ms=m.avg_latency_ms,
                p95_latency_ms=m.latency_p95_ms,
                avg_cost=m.avg_cost,
                total_calls=m.total_calls,
                quality=[QualityEstimate.model_validate(q, from_attributes=True) for q in m.quality],
            )
        )
    summary = None
    if include_report:
        best = sorted(report.models, key=lambda m: (-m.success_rate, -m.total_calls, m.model_id))[:TOP_MODELS]
        summary = ImprovementReport(
            regression_tests=report.regression_tests,
            bug_patterns=report.bug_patterns,
            routing_heuristics=report.routing_heuristics,
            top_models=[
                TopModel(
                    model=m.model_id, task_type=m.task_type, success_rate=m.success_rate, total_calls=m.total_calls
                )
                for m in best
            ],
            recent_bugs=[
                RecentBug(
                    severity=b.severity,
                    pattern=b.pattern,
                    occurrences=b.occurrences,
                    error_type=b.error_type,
                    status=b.status,
                )
                for b in report.recent_bugs
            ],
        )
    forecasts = [CostForecast.model_validate(f, from_attributes=True) for f in report.forecasts]
    return Analysis(
        task_type=task_type,
        rankings=rankings,
        report=summary,
        models_left_out=report.models_left_out,
        forecasts=forecasts,
        counterfactuals=[Counterfactual.model_validate(c, from_attributes=True) for c in report.counterfactuals],
        counterfactual_assumptions=report.counterfactual_assumptions,
        text=as_text(
            rankings,
            summary,
            forecasts,
            counterfactual_lines(report.counterfactuals, report.counterfactual_assumptions),
        ),
    )


def as_text(
    rankings: dict[str, list[ModelRanking]],
    summary: ImprovementReport | None,
    forecasts: list[CostForecast] | None = None,
    counterfactuals: list[str] | None = None,
) -> str:
    """The gateway's plain-text layout, for an assistant reading the MCP answer."""
    lines = ["Model Performance Analysis:", ""]
    if not rankings:
        lines += ["No calls recorded yet.", ""]
    for ranked in rankings.values():
        for m in ranked:
            lines += [
                f"{m.model_id} ({m.task_type}):",
                f"Success Rate: {m.success_rate:.2f}%",
                f"Avg Latency: {m.avg_latency_ms:.0f}ms",
                f"Avg Cost: ${m.avg_cost:.6f}",
                f"Total Calls: {m.total_calls}",
            ]
            lines += [
                f"Quality ({q.name}): {q.mean:.3f} (95% {q.low:.3f}-{q.high:.3f}, {q.feedback} feedback)"
                for q in m.quality
            ]
            lines.append("")
    if summary is not None:
        lines += [
            "Self-Improvement Summary:",
            f"Regression Tests: {summary.regression_tests}",
            f"Bug Patterns: {summary.bug_patterns}",
            f"Routing Heuristics: {summary.routing_heuristics}",
        ]
        if summary.top_models:
            lines += ["", "Top Performing Models:"]
            lines += [f"  {t.model} ({t.task_type}): {t.success_rate:.2f}%" for t in summary.top_models]
        if summary.recent_bugs:
            lines += ["", "Recent Bugs:"]
            lines += [bug_line(b.severity, b.status, b.pattern, b.occurrences) for b in summary.recent_bugs]
    if forecasts:
        lines += ["", "Cost Forecast (95% interval):"]
        for f in forecasts:
            day = f"${f.next_day.total:.4f} (${f.next_day.low:.4f}-${f.next_day.high:.4f})" if f.next_day else "n/a"
            month = f"${f.next_month.total:.2f}" if f.next_month else "n/a"
            lines.append(f"  {f.model_id} ({f.task_type}): next 24h {day}, next 30d {month}")
    if counterfactuals:
        lines += ["", *counterfactuals]
    return "\n".join(lines).rstrip() + "\n"
