"""The gateway's `analyze_metrics` summary: per task type, models ranked by success rate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import asyncpg

# Per task type the `$2` most called models, at most `$3` rows in all: a read's size never follows
# the number of distinct ids strangers sent. Percentiles are computed for the kept rows only.
MODELS = """
WITH kept AS (
    SELECT model_id, task_type FROM (
        SELECT model_id, task_type, total_calls,
               row_number() OVER (PARTITION BY task_type ORDER BY total_calls DESC, model_id) AS rank
        FROM model_performance WHERE ($1::text IS NULL OR task_type = $1)) ranked
    WHERE rank <= $2 ORDER BY total_calls DESC, task_type, model_id LIMIT $3)
SELECT model_id, task_type, success_rate, avg_latency_ms, avg_cost, total_calls, success_count, failure_count,
       latency_p50_ms, latency_p95_ms, latency_p99_ms, input_tokens, output_tokens, first_seen, last_seen
FROM model_performance_latency JOIN kept USING (model_id, task_type)
ORDER BY task_type, success_rate DESC, avg_latency_ms ASC"""

MODEL_ROWS = "SELECT count(*) FROM model_performance WHERE ($1::text IS NULL OR task_type = $1)"
MAX_MODELS_PER_TASK, MAX_MODEL_ROWS = 100, 2000

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
    models_left_out: int = 0  # past the per-task or total bound: the least called

    def as_dict(self) -> dict:
        return asdict(self)


async def build_report(conn: asyncpg.Connection, task_type: str | None = None, *,
                       max_models_per_task: int = MAX_MODELS_PER_TASK, max_rows: int = MAX_MODEL_ROWS) -> Report:
    rows = await conn.fetch(MODELS, task_type, max_models_per_task, max_rows)
    left_out = int(await conn.fetchval(MODEL_ROWS, task_type)) - len(rows)
    models = [
        ModelRow(**{k: (v.isoformat() if k in ("first_seen", "last_seen") and v else v) for k, v in r.items()})
        for r in rows
    ]
    summary = await conn.fetchrow(SUMMARY)
    bugs = [RecentBug(r["severity"], r["pattern"], r["occurrences"], r["error_type"],
                      r["last_seen"].isoformat() if r["last_seen"] else None) for r in await conn.fetch(RECENT_BUGS)]
    return Report(models, **dict(summary), recent_bugs=bugs, models_left_out=left_out)


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
    if report.models_left_out:
        console.print(f"{report.models_left_out:,} less called models not shown (at most {MAX_MODELS_PER_TASK} per "
                      f"task type, {MAX_MODEL_ROWS:,} in all)")
    console.print(
        f"Self-improvement summary: regression tests {report.regression_tests}, "
        f"bug patterns {report.bug_patterns}, routing heuristics {report.routing_heuristics}"
    )
    if report.recent_bugs:
        console.print("Recent bugs:")
        for bug in report.recent_bugs:
            console.print(f"  [{bug.severity}] {bug.pattern} ({bug.occurrences:,}x)", markup=False, highlight=False)
