"""The gateway's `analyze_metrics` summary: per task type, models ranked by success rate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import asyncpg

MODELS = """
SELECT model_id, task_type, success_rate, avg_latency_ms, avg_cost, total_calls, success_count, failure_count,
       latency_p50_ms, latency_p95_ms, latency_p99_ms, input_tokens, output_tokens, first_seen, last_seen
FROM model_performance_latency WHERE ($1::text IS NULL OR task_type = $1)
ORDER BY task_type, success_rate DESC, avg_latency_ms ASC"""

RECENT_BUGS = """
SELECT severity, pattern, occurrences, error_type, last_seen FROM bug_patterns
ORDER BY last_seen DESC NULLS LAST, occurrences DESC LIMIT 5"""

SUMMARY = """
SELECT (SELECT count(*) FROM regression_tests) AS regression_tests,
       (SELECT count(*) FROM bug_patterns) AS bug_patterns,
       (SELECT count(*) FROM routing_rules WHERE active) AS routing_heuristics"""


@dataclass(frozen=True)
class ModelRow:
    model_id: str
    task_type: str
    success_rate: float
    avg_latency_ms: float
    avg_cost: float
    total_calls: int
    success_count: int
    failure_count: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    input_tokens: int
    output_tokens: int
    first_seen: str | None
    last_seen: str | None


@dataclass(frozen=True)
class RecentBug:
    severity: str
    pattern: str
    occurrences: int
    error_type: str | None
    last_seen: str | None


@dataclass(frozen=True)
class Report:
    models: list[ModelRow]
    regression_tests: int
    bug_patterns: int
    routing_heuristics: int
    recent_bugs: list[RecentBug]

    def as_dict(self) -> dict:
        return asdict(self)


async def build_report(conn: asyncpg.Connection, task_type: str | None = None) -> Report:
    rows = await conn.fetch(MODELS, task_type)
    models = [
        ModelRow(**{k: (v.isoformat() if k in ("first_seen", "last_seen") and v else v) for k, v in r.items()})
        for r in rows
    ]
    summary = await conn.fetchrow(SUMMARY)
    bugs = [RecentBug(r["severity"], r["pattern"], r["occurrences"], r["error_type"],
                      r["last_seen"].isoformat() if r["last_seen"] else None) for r in await conn.fetch(RECENT_BUGS)]
    return Report(models, **dict(summary), recent_bugs=bugs)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def render(report: Report, console: Console) -> None:
    if not report.models:
        console.print("No calls recorded yet.")
    task_types = sorted({m.task_type for m in report.models})
    for task_type in task_types:
        table = Table(title=f"Model performance: {task_type}", title_justify="left")
        for name, justify in (("model", "left"), ("calls", "right"), ("success", "right"), ("avg latency ms", "right"),
                              ("p50", "right"), ("p95", "right"), ("p99", "right"), ("avg cost $", "right")):
            table.add_column(name, justify=justify)
        for m in (m for m in report.models if m.task_type == task_type):
            table.add_row(m.model_id, f"{m.total_calls:,}", f"{m.success_rate:.2f}%", _ms(m.avg_latency_ms),
                          _ms(m.latency_p50_ms), _ms(m.latency_p95_ms), _ms(m.latency_p99_ms), f"{m.avg_cost:.6f}")
        console.print(table)
    console.print(
        f"Self-improvement summary: regression tests {report.regression_tests}, "
        f"bug patterns {report.bug_patterns}, routing heuristics {report.routing_heuristics}"
    )
    if report.recent_bugs:
        console.print("Recent bugs:")
        for bug in report.recent_bugs:
            console.print(f"  [{bug.severity}] {bug.pattern} ({bug.occurrences:,}x)", markup=False, highlight=False)
