"""The gateway's `analyze_metrics` summary: per task type, models ranked by success rate."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError
from rich.console import Console, JustifyMethod
from rich.table import Table

from worker.costs.projection import HISTORY_HOURS, CostProjection, hourly, project
from worker.experiments.contract import Experiment
from worker.experiments.evaluate import Evaluation, evaluate_or_explain
from worker.feedback.quality import QualityScore, estimate
from worker.gateway.table import split
from worker.routing import counterfactual
from worker.routing.contract import RoutingHeuristic
from worker.routing.engine import Engine
from worker.routing.evidence import FUTURE_TOLERANCE_S
from worker.routing.heuristics import Policy
from worker.routing.scoring import Weights, weights_for
from worker.store import db
from worker.store import evidence as evidence_store
from worker.store import experiments as experiment_reads
from worker.store import reports as reads
from worker.store.reports import MAX_MODEL_ROWS, MAX_MODELS_PER_TASK

if TYPE_CHECKING:
    import asyncpg

    from worker.settings import Settings

log = logging.getLogger(__name__)


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
    quality: tuple[QualityScore, ...] = ()  # feedback on the answers, per name, the most given first


@dataclass(frozen=True)
class RecentBug:
    severity: str
    pattern: str
    occurrences: int
    error_type: str | None
    last_seen: str | None
    status: str = "open"  # open, resolved or regressed (the pattern's lifecycle)


@dataclass(frozen=True)
class Report:
    models: list[ModelRow]
    regression_tests: int
    bug_patterns: int
    routing_heuristics: int
    recent_bugs: list[RecentBug]
    models_left_out: int = 0  # past the per-task or total bound: the least called
    forecasts: list[CostProjection] = field(default_factory=list)
    counterfactuals: list[counterfactual.TaskCounterfactual] = field(default_factory=list)
    counterfactual_assumptions: str = counterfactual.ASSUMPTIONS
    experiments: list[Evaluation] = field(default_factory=list)  # the latest few (the printed report only)
    rules: list[dict] = field(default_factory=list)  # the learned rules as published (the printed report only)

    def as_dict(self) -> dict:
        plain = asdict(replace(self, experiments=[], rules=[]))
        plain["experiments"] = [
            {
                "experiment": ev.experiment.model_dump(mode="json"),
                "arms": [asdict(a) for a in ev.arms],
                "comparisons": [asdict(c) for c in ev.comparisons],
                "evaluation_error": ev.error,
            }
            for ev in self.experiments
        ]
        return plain


@dataclass(frozen=True)
class CandidateSetting:
    """Scoring weights to weigh against the published rules: for each task type, the weights its rule
    was scored with, these fields replaced. The candidate rule is learned as the worker would have at
    the rule's publication, from the calls before it, and estimated on the calls after it."""

    overrides: dict[str, float]
    weights_for: Callable[[str], Weights]  # what the worker scores each task type with
    policy: Policy
    max_models: int
    max_task_types: int

    @property
    def label(self) -> str:
        return "weights " + " ".join(f"{k}={v:g}" for k, v in sorted(self.overrides.items()))

    @classmethod
    async def of(cls, conn: asyncpg.Connection, overrides: dict[str, float], settings: Settings) -> CandidateSetting:
        """With the weights and policy the worker's leader uses now (experiments' promoted weights included)."""
        promoted = await experiment_reads.weights(conn)
        s = settings
        return cls(
            dict(overrides),
            lambda task: weights_for(task, s.routing_value_usd, s.routing_weights, promoted),
            s.routing_policy,
            s.routing_max_models,
            s.routing_max_task_types,
        )


async def build_report(
    conn: asyncpg.Connection,
    task_type: str | None = None,
    *,
    max_models_per_task: int = MAX_MODELS_PER_TASK,
    max_rows: int = MAX_MODEL_ROWS,
    candidate: CandidateSetting | None = None,
) -> Report:
    rows = await reads.model_rows(conn, task_type, max_models_per_task, max_rows)
    left_out = await reads.model_row_count(conn, task_type) - len(rows)
    scores: dict[tuple[str, str], list[QualityScore]] = {}
    for q in await reads.quality(conn, [(r["model_id"], r["task_type"]) for r in rows]):
        scores.setdefault((q["model_id"], q["task_type"]), []).append(
            estimate(q["name"], q["feedback_count"], q["total"])
        )
    models = [
        ModelRow(
            **{k: (v.isoformat() if k in ("first_seen", "last_seen") and v else v) for k, v in r.items()},
            quality=tuple(scores.get((r["model_id"], r["task_type"]), ())),
        )
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
            r["status"],
        )
        for r in await reads.recent_bugs(conn)
    ]
    forecasts = await costs(conn, task_type)
    return Report(
        models,
        regression_tests=summary["regression_tests"],
        bug_patterns=summary["bug_patterns"],
        routing_heuristics=summary["routing_heuristics"],
        recent_bugs=bugs,
        models_left_out=left_out,
        forecasts=forecasts,
        counterfactuals=await counterfactuals(conn, task_type, candidate),
    )


REPORTED_EXPERIMENTS = 10
MAX_COUNTERFACTUAL_TASKS = 50


async def counterfactuals(
    conn: asyncpg.Connection, task_type: str | None, candidate: CandidateSetting | None = None
) -> list[counterfactual.TaskCounterfactual]:
    """Each learned rule as published, each model alone, and the `candidate` weights' rule, estimated
    on the calls logged since its publication (never on the calls it was learned from)."""
    rules = await reads.published_rules(conn, task_type, MAX_COUNTERFACTUAL_TASKS)
    if not rules:
        return []
    since = {r["task_type"]: r["published_at"] for r in rules}
    totals = await reads.calls_since(conn, since)
    cells = {
        (r["task_type"], r["model_id"]): counterfactual.LoggedTally(
            **{k: r[k] for k in counterfactual.LoggedTally.__slots__ if not k.startswith("quality")}
        )
        for r in await reads.logged_since(conn, since)
    }
    judged: dict[str, dict[tuple[str, str], counterfactual.LoggedTally]] = {}
    for r in await reads.judged_since(conn, since, counterfactual.MIN_PROPENSITY):
        judged.setdefault(r["name"], {})[(r["task_type"], r["model_id"])] = counterfactual.LoggedTally(
            calls=r["calls"],
            weight=r["weight"],
            weight_sq=r["weight_sq"],
            quality_w=r["quality_w"],
            quality_w_sq=r["quality_w_sq"],
            quality_sq_w_sq=r["quality_sq_w_sq"],
        )
    out = []
    for r in rules:
        try:
            heuristic = RoutingHeuristic.model_validate_json(r["heuristic"])
        except ValidationError as error:  # a stored row no router would follow either: nothing to estimate
            log.warning("counterfactual of %s left out: its stored rule is not valid (%s)", r["task_type"], error)
            continue
        drawable = sorted(model for task, model in cells if task == r["task_type"])  # what its routers drew
        other = None
        if candidate is not None and drawable:
            learned = await candidate_rule(conn, candidate, heuristic, r["published_at"])
            other = (candidate.label, split(learned, drawable) if learned is not None else {})
        out.append(
            counterfactual.against_current(
                r["task_type"],
                f"learned:{r['task_type']}@v{r['version']}",
                r["published_at"],
                split(heuristic, drawable or None),
                cells,
                total_calls=totals.get(r["task_type"], 0),
                judged=judged,
                candidate=other,
            )
        )
    return out


async def candidate_rule(
    conn: asyncpg.Connection, candidate: CandidateSetting, published: RoutingHeuristic, published_at: float
) -> RoutingHeuristic | None:
    """The rule the worker would have published at `published_at` with the candidate's weights: the same
    engine on the minute rows before it (none after), the published rule's exclusions kept (they are
    health, not weights); None when there is nothing to decide."""
    task = published.task_type or ""
    until = published_at - FUTURE_TOLERANCE_S - 0.001  # the reads allow that much skew: stop short of it
    window, models, tasks = candidate.policy.window_s, candidate.max_models, candidate.max_task_types
    minutes = [m for m in await evidence_store.minute_rows(conn, until, window, models, tasks) if m.task_type == task]
    quality = [q for q in await evidence_store.quality_rows(conn, until, window, models, tasks) if q.task_type == task]
    weights = replace(candidate.weights_for(task), **cast(dict[str, Any], candidate.overrides))
    engine = Engine(candidate.policy, weights=lambda _: weights)
    decisions = await asyncio.to_thread(engine.recompute, until, minutes, {}, {}, {task: None}, [task], quality)
    if task not in decisions:
        return None
    rule = RoutingHeuristic.learned(decisions[task], 1, window, dt.datetime.fromtimestamp(until, dt.UTC))
    return rule.model_copy(update={"excluded": {**rule.excluded, **published.excluded}})


async def costs(conn: asyncpg.Connection, task_type: str | None) -> list[CostProjection]:
    """Next day's and month's cost per model and task type."""
    until = await reads.hour_now(conn)
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in await reads.hourly_costs(conn, task_type, HISTORY_HOURS):
        series.setdefault((r["model_id"], r["task_type"]), []).append((r["hour"], r["cost"]))

    def fit() -> list[CostProjection]:  # 36 fits per series and horizon: off the event loop
        return [project(m, t, hourly(points, until)) for (m, t), points in sorted(series.items())]

    return await asyncio.to_thread(fit)


async def experiments(conn: asyncpg.Connection) -> list[Evaluation]:
    """The latest experiments with their estimates, for the printed report (analyze_metrics has none)."""
    records, _ = await experiment_reads.page(conn, None, REPORTED_EXPERIMENTS, 0)
    if not records:
        return []
    exps = [Experiment.model_validate(r) for r in records]
    tallies = await experiment_reads.tallies(conn, [e.experiment_id for e in exps])
    now = dt.datetime.fromtimestamp(await db.db_now(conn), dt.UTC)
    return [evaluate_or_explain(e, tallies.get(e.experiment_id, {}), now) for e in exps]


def bug_line(severity: str, status: str, pattern: str, occurrences: int) -> str:
    """A recent bug as both views print it: `[critical regressed] <pattern> (3x)`."""
    return f"  [{severity}{'' if status == 'open' else ' ' + status}] {pattern} ({occurrences:,}x)"


def quality_text(scores: tuple[QualityScore, ...], named: bool = True) -> str:
    """The most given feedback name's mean with its interval and count, e.g. `correctness 0.83 (0.80-0.86) 412`."""
    if not scores:
        return "-"
    q = scores[0]
    return f"{q.name + ' ' if named else ''}{q.mean:.2f} ({q.low:.2f}-{q.high:.2f}) {q.feedback:,}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def render(report: Report, console: Console) -> None:
    if not report.models:
        console.print("No calls recorded yet.")
    task_types = sorted({m.task_type for m in report.models})
    for task_type in task_types:
        rows = [m for m in report.models if m.task_type == task_type]
        names = {m.quality[0].name for m in rows if m.quality}
        one_name = next(iter(names)) if len(names) == 1 else None
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
            (f"{one_name or 'quality'} (95 %) feedback", "right"),
        ):
            table.add_column(name, justify=cast("JustifyMethod", justify))
        for m in rows:
            table.add_row(
                m.model_id,
                f"{m.total_calls:,}",
                f"{m.success_rate:.2f}%",
                _ms(m.avg_latency_ms),
                _ms(m.latency_p50_ms),
                _ms(m.latency_p95_ms),
                _ms(m.latency_p99_ms),
                f"{m.avg_cost:.6f}",
                quality_text(m.quality, named=one_name is None),
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
            console.print(
                bug_line(bug.severity, bug.status, bug.pattern, bug.occurrences), markup=False, highlight=False
            )
    render_rules(report, console)
    render_costs(report, console)
    render_experiments(report, console)


def render_rules(report: Report, console: Console) -> None:
    """What each task type's learned rule chose, and on which objective (success, or value with feedback)."""
    if not report.rules:
        return
    table = Table(title="Learned routing rules (what the routers follow now)", title_justify="left")
    for name in (
        "task type",
        "split (largest shares)",
        "preferred",
        "objective",
        "its quality (95 %) feedback",
        "version",
    ):
        table.add_column(
            name,
            justify="left" if name in ("task type", "split (largest shares)", "preferred", "objective") else "right",
        )
    for rule in sorted(report.rules, key=lambda r: r.get("task_type") or ""):
        preferred = rule.get("preferred_model")
        quality = ((rule.get("evidence") or {}).get(preferred) or {}).get("quality")
        objective = f"value, V = ${quality['value_usd']:g}" if quality else "success"
        shares = sorted((rule.get("weights") or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:2]
        table.add_row(
            rule.get("task_type") or "-",
            ", ".join(f"{m} {w:.0%}" for m, w in shares) or "-",
            preferred or "(every model excluded)",
            objective,
            f"{quality['name']} {quality['mean']:.2f} ({quality['low']:.2f}-{quality['high']:.2f}) {quality['feedback']:,}"
            if quality
            else "-",
            str(rule.get("version")),
        )
    console.print(table)


def _usd(value: float) -> str:
    return f"${value:,.4f}"


def render_costs(report: Report, console: Console) -> None:
    if report.models and not report.forecasts:
        console.print("Cost forecast: no complete hour of costs yet (a forecast needs 12 hours of history)")
    if report.forecasts:
        table = Table(
            title="Cost forecast (damped Holt-Winters on log costs; 95 % interval checked on the last two weeks)",
            title_justify="left",
        )
        for name in ("model", "task type", "last 24 h", "next 24 h", "next 30 days", "history h"):
            table.add_column(name, justify="left" if name in ("model", "task type") else "right")
        for f in report.forecasts:
            day, month = f.next_day, f.next_month
            table.add_row(
                f.model_id,
                f.task_type,
                _usd(f.last_day_usd),
                f"{_usd(day.total)} ({_usd(day.low)}-{_usd(day.high)})" if day else "too little history",
                f"{_usd(month.total)} ({_usd(month.low)}-{_usd(month.high)})" if month else "-",
                f"{f.history_hours:,}",
            )
        console.print(table)
        for why in sorted({f.notes["next_month"] for f in report.forecasts if "next_month" in f.notes}):
            console.print(f"  next 30 days: no figure: {why}", markup=False, highlight=False)
    for line in counterfactual_lines(report.counterfactuals, report.counterfactual_assumptions):
        console.print(line, markup=False, highlight=False)


def counterfactual_lines(found: list[counterfactual.TaskCounterfactual], assumptions: str) -> list[str]:
    """The counterfactuals as text: the printed report and analyze_metrics' text say the same."""
    if not found:
        return []
    lines = [f"Counterfactuals ({assumptions}):"]
    for cf in found:
        since = dt.datetime.fromtimestamp(cf.since, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        if cf.calls == 0:
            why = (
                f"none of its {cf.unweighted:,} calls since then carries a route_probability (its routers do not log one)"
                if cf.unweighted
                else "no call logged since then yet (counted from the first full minute after the publication)"
            )
            lines.append(f"  {cf.task_type}, {cf.rule} since {since}: no figure: {why}")
            continue
        lines.append(
            f"  {cf.task_type}, {cf.rule} since {since} ({cf.calls:,} calls with a propensity, "
            f"{cf.unweighted:,} without): success {_figure(cf.success, 'rate')}, cost {_figure(cf.cost, 'usd')}"
            + "".join(f", {name} {_figure(e, 'score')}" for name, e in cf.quality.items())
        )
        for alt in cf.alternatives:
            if alt.success.value is None:
                lines.append(f"    all to {alt.model_id}: no figure: {alt.success.reason}")
                continue
            lines.append(
                f"    all to {alt.model_id} instead: success {_figure(alt.success, 'pp')}, "
                f"cost {_figure(alt.cost, 'usd_delta')}"
                + "".join(f", {name} {_figure(e, 'score_delta')}" for name, e in alt.quality.items())
            )
        if (c := cf.candidate) is not None:
            shares = ", ".join(f"{m} {share:.0%}" for m, share in sorted(c.split.items(), key=lambda kv: -kv[1]))
            lines.append(
                f"    {c.label} ({shares}; learned from the calls before the publication) instead: "
                + (
                    f"success {_figure(c.success, 'pp')}, cost {_figure(c.cost, 'usd_delta')}"
                    + "".join(f", {name} {_figure(e, 'score_delta')}" for name, e in c.quality.items())
                    if c.success.value is not None
                    else f"no figure: {c.success.reason}"
                )
            )
    return lines


def _figure(e: counterfactual.Estimate, unit: str) -> str:
    if e.value is None or e.low is None or e.high is None:
        return f"no figure ({e.reason})"
    if unit == "rate":
        return f"{e.value:.1%} (95% {e.low:.1%} to {e.high:.1%})"
    if unit == "pp":
        return f"{e.value * 100:+.1f} pp (95% {e.low * 100:+.1f} to {e.high * 100:+.1f})"
    if unit == "score":
        return f"{e.value:.3f} (95% {e.low:.3f} to {e.high:.3f}, {e.calls:,} judged calls)"
    if unit == "score_delta":
        return f"{e.value:+.3f} (95% {e.low:+.3f} to {e.high:+.3f})"
    if unit == "usd":
        return f"${e.value:.5f}/call (95% ${e.low:.5f} to ${e.high:.5f})"
    return f"{e.value:+.5f} $/call (95% {e.low:+.5f} to {e.high:+.5f})"


def render_experiments(report: Report, console: Console) -> None:
    for ev in report.experiments:
        e = ev.experiment
        outcome = f", winner {e.winner}" if e.winner else ""
        promoted = f", promoted {e.promoted}" if e.promoted else ""
        table = Table(
            title=f"Experiment {e.experiment_id} ({e.status}{outcome}{promoted}): {e.primary_metric}",
            title_justify="left",
        )
        for name in ("arm", "calls", e.primary_metric, "interval", "success", "p95 ms", "cost/call", "stopped"):
            table.add_column(name, justify="left" if name in ("arm", "stopped") else "right")
        for a in ev.arms:
            table.add_row(
                a.arm,
                f"{a.calls:,}",
                "-" if a.value is None else f"{a.value:.4g}",
                f"{a.low:.4g} .. {a.high:.4g}",
                "-" if a.success_rate is None else f"{a.success_rate:.2%}",
                _ms(a.p95_latency_ms),
                "-" if a.cost_per_call is None else f"{a.cost_per_call:.6f}",
                a.stopped or "",
            )
        console.print(table)
        if ev.error:
            console.print(f"  no estimates: {ev.error}", markup=False, highlight=False)
        if e.reason:
            console.print(f"  {e.reason}", markup=False, highlight=False)
