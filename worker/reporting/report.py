"""The gateway's `analyze_metrics` summary: per task type, models ranked by success rate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, cast

from rich.console import Console, JustifyMethod
from rich.table import Table

from worker.store import reports as reads
from worker.store.reports import MAX_MODEL_ROWS, MAX_MODELS_PER_TASK

if TYPE_CHECKING:
    import asyncpg


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


async def build_report(
    conn: asyncpg.Connection,
    task_type: str | None = None,
    *,
    max_models_per_task: int = MAX_MODELS_PER_TASK,
    max_rows: int = MAX_MODEL_ROWS,
) -> Report:
    rows = await reads.model_rows(conn, task_type, max_models_per_task, max_rows)
    left_out = await reads.model_row_count(conn, task_type) - len(rows)
    models = [
        ModelRow(**{k: (v.isoformat() if k in ("first_seen", "last_seen") and v else v) for k, v in r.items()})
        for r in rows
    ]
    summary = await reads.summary(conn)
    bugs = [
        RecentBug(
            r["severity"],
            r["pattern"],
            r["occurrences"],
            r["error_type"],
            r["last_seen"].isoformat() if r["last_seen"] else None,
        )
        for r in await reads.recent_bugs(conn)
    ]
    return Report(models, **dict(summary), recent_bugs=bugs, models_left_out=left_out)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def render(report: Report, console: Console) -> None:
    if not report.models:
        console.print("No calls recorded yet.")
    task_types = sorted({m.task_type for m in report.models})
    for task_type in task_types:
        table = Table(title=f"Model performance: {task_type}", title_justify="left")
        for name, justify in (
            ("model", "left"),
            ("calls", "right"),
            ("success", "right"),
            ("avg latency ms", "right"),
            ("p50", "right"),
            ("p95", "right"),
            ("p99", "right"),
            ("avg cost $", "right"),
        ):
            table.add_column(name, justify=cast("JustifyMethod", justify))
        for m in (m for m in report.models if m.task_type == task_type):
            table.add_row(
                m.model_id,
                f"{m.total_calls:,}",
                f"{m.success_rate:.2f}%",
                _ms(m.avg_latency_ms),
                _ms(m.latency_p50_ms),
                _ms(m.latency_p95_ms),
                _ms(m.latency_p99_ms),
                f"{m.avg_cost:.6f}",
            )
        console.print(table)
    if report.models_left_out:
        console.print(
            f"{report.models_left_out:,} less called models not shown (at most {MAX_MODELS_PER_TASK} per "
            f"task type, {MAX_MODEL_ROWS:,} in all)"
        )
    console.print(
        f"Self-improvement summary: regression tests {report.regression_tests}, "
        f"bug patterns {report.bug_patterns}, routing heuristics {report.routing_heuristics}"
    )
    if report.recent_bugs:
        console.print("Recent bugs:")
        for bug in report.recent_bugs:
            console.print(f"  [{bug.severity}] {bug.pattern} ({bug.occurrences:,}x)", markup=False, highlight=False)
