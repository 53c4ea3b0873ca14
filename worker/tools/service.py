"""The tools themselves, shared by the HTTP routes and the MCP server.

Reads go to PostgreSQL. Writes that change aggregates (metrics, bug pattern occurrences, model
performance) become commands on the commands topic and are applied by the ingest pipeline's
flush, exactly once. Rows that are not aggregates (a manual routing rule, a regression test) are
written directly: their version or name makes the write idempotent, and the caller gets the id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections import Counter

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from worker import metrics
from worker.calls import commands
from worker.experiments.contract import Experiment
from worker.experiments.evaluate import evaluate_or_explain
from worker.experiments.sequential import ALPHA
from worker.failures import junit
from worker.kafka_client import client_options
from worker.reporting.report import CandidateSetting, build_report
from worker.routing.contract import RoutingHeuristic
from worker.settings import Settings
from worker.store import bug_patterns as bug_pattern_store
from worker.store import catalogue as catalogue_store
from worker.store import db
from worker.store import experiments as experiment_store
from worker.store import rules as rule_store
from worker.store import tools as store
from worker.store.db import create_pool
from worker.tools import requests as rq
from worker.tools.analysis import analyse
from worker.tools.responses import (
    Accepted,
    Analysis,
    ArmComparison,
    ArmEstimate,
    BugPatternStatus,
    ExperimentCreated,
    ExperimentPromoted,
    ExperimentView,
    ModelDeclared,
    PageOf,
    TestResultsRecorded,
    TestSaved,
)

METHOD = (
    "mSPRT confidence sequences (Johari et al., KDD 2017; quantiles: Howard and Ramdas, Bernoulli 2022), "
    f"valid at every look at alpha {ALPHA:g}, Bonferroni over the pairs of running arms"
)
PROMOTED_PRIORITY = 200  # above manual rules' default (100): the experiment's evidence is the newest word

SEND_TIMEOUT_S = 10.0
COMMAND_MAX_BYTES = 512 * 1024  # well under the broker's message limit: a command is refused, never retried in vain
MAX_NAMED = 100  # stub names listed in an answer; the counts are complete


class Unavailable(RuntimeError):
    """A service the tool needs (PostgreSQL or Kafka) is not reachable; the write was not accepted."""


class TooLarge(ValueError):
    """The request is valid but too large to be accepted; a retry cannot succeed."""


class FieldProblem(ValueError):
    """Valid JSON that cannot be honoured as asked, e.g. a layer that cannot be inferred."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


class ToolService:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer):
        self.settings, self.pool, self.producer = settings, pool, producer

    @classmethod
    async def start(cls, settings: Settings, pool: asyncpg.Pool) -> ToolService:
        """With an idempotent producer of its own, for the commands topic."""
        producer = AIOKafkaProducer(**client_options(settings), enable_idempotence=True)
        await producer.start()
        return cls(settings, pool, producer)

    @classmethod
    async def connect(cls, settings: Settings) -> ToolService:
        """With a pool of its own (`TOOLS_DB_CONNECTIONS`, `TOOLS_QUERY_TIMEOUT_S`): however heavy the
        reads, they never wait for, or hold, the connections ingestion flushes with."""
        pool = await create_pool(
            settings.database_url,
            max_size=settings.tools_db_connections,
            statement_timeout_s=settings.tools_query_timeout_s,
        )
        return await cls.start(settings, pool)

    async def stop(self) -> None:
        await self.producer.stop()

    async def close(self) -> None:
        """Stop, and close the pool that `connect` opened."""
        await self.stop()
        await self.pool.close()

    async def _page(self, fetch, argument, page: rq.Page) -> PageOf:
        limit = page.limit or self.settings.tools_page_size
        async with self.pool.acquire() as conn:
            items, total = await fetch(conn, argument, limit, page.offset)
        after = page.offset + len(items)
        return PageOf(
            items=items, total=total, limit=limit, offset=page.offset, next_offset=after if after < total else None
        )

    async def analyze_metrics(self, r: rq.AnalyzeMetrics) -> Analysis:
        async with self.pool.acquire() as conn:
            candidate = (
                await CandidateSetting.of(conn, r.candidate_weights.overrides(), self.settings)
                if r.candidate_weights is not None
                else None
            )
            report = await build_report(conn, r.task_type, max_models_per_task=r.max_models, candidate=candidate)
        return analyse(report, r.task_type, r.include_report)

    async def get_routing_heuristics(self, r: rq.GetRoutingHeuristics) -> PageOf:
        return await self._page(store.heuristics, r.active_only, r)

    async def get_bug_patterns(self, r: rq.GetBugPatterns) -> PageOf:
        return await self._page(store.bug_patterns, r.category, r)

    async def get_regression_tests(self, r: rq.GetRegressionTests) -> PageOf:
        return await self._page(store.regression_tests, r.category, r)

    async def _send(self, command: commands.Command, key: str) -> Accepted:
        topic = self.settings.topic_tool_commands
        value = orjson.dumps(command.model_dump(mode="json"))
        if len(value) > COMMAND_MAX_BYTES:
            raise TooLarge(
                f"the command is {len(value):,} bytes once encoded; at most {COMMAND_MAX_BYTES:,} are "
                "accepted (shorten context or the text fields)"
            )
        try:
            sent = await asyncio.wait_for(self.producer.send_and_wait(topic, value, key=key.encode()), SEND_TIMEOUT_S)
        except Exception as error:
            raise Unavailable(
                f"Kafka did not accept the command within {SEND_TIMEOUT_S:.0f} s "
                f"({type(error).__name__}); retry with the same commandId"
            ) from error
        return Accepted(command_id=str(command.command_id), topic=topic, partition=sent.partition, offset=sent.offset)

    async def record_metric(self, r: rq.RecordMetric) -> Accepted:
        return await self._send(
            commands.MetricRecorded(
                **commands.new_command_fields(r.command_id),
                name=r.name,
                value=r.value,
                unit=r.unit,
                context=r.context,
            ),
            r.name,
        )

    async def record_bug_pattern(self, r: rq.RecordBugPattern) -> Accepted:
        return await self._send(
            commands.BugPatternRecorded(
                **commands.new_command_fields(r.command_id),
                category=r.category,
                pattern=r.pattern,
                description=r.description,
                solution=r.solution,
                severity=r.severity,
            ),
            r.category,
        )

    async def update_model_performance(self, r: rq.UpdateModelPerformance) -> Accepted:
        layer = r.layer.value if r.layer else None
        if layer is None:
            async with self.pool.acquire() as conn:
                layer = await store.last_layer(conn, r.model_id)
            if layer is None:
                raise FieldProblem(
                    "layer",
                    f"model {r.model_id!r} has never been seen, so its layer cannot be "
                    "inferred; pass layer (fast, balanced or deep)",
                )
        return await self._send(
            commands.ModelPerformanceReported(
                **commands.new_command_fields(r.command_id),
                model_id=r.model_id,
                task_type=r.task_type,
                layer=layer,
                success=r.success,
                latency_ms=r.latency_ms,
                cost_usd=r.cost,
                input_tokens=r.input_tokens,
                output_tokens=r.output_tokens,
            ),
            r.model_id,
        )

    async def update_routing_heuristic(self, r: rq.UpdateRoutingHeuristic) -> dict:
        metadata = {
            k: v
            for k, v in (("successRate", r.success_rate), ("usageCount", r.usage_count), ("reasoning", r.reasoning))
            if v is not None
        }
        async with self.pool.acquire() as conn:
            try:
                return await rule_store.save_manual_rule(
                    conn,
                    pattern=r.pattern,
                    layer=r.preferred_layer.value,
                    model=r.preferred_model,
                    priority=r.priority,
                    active=r.active,
                    reasoning=r.reasoning or "manual rule",
                    metadata=metadata,
                    rule_id=r.rule_id,
                )
            except LookupError as error:
                raise FieldProblem("ruleId", str(error)) from None

    async def declare_model(self, r: rq.DeclareModel) -> ModelDeclared:
        async with self.pool.acquire() as conn:
            try:
                rows = await catalogue_store.declare_model(
                    conn, r.model_id, r.layer.value, r.task_types, r.provider, "tool", self.settings.routing_max_models
                )
            except catalogue_store.CatalogueFull as full:
                raise FieldProblem("taskTypes", str(full)) from None
        return ModelDeclared(
            model_id=r.model_id,
            layer=r.layer.value,
            task_types=r.task_types,
            provider=r.provider,
            declared_at=rows[0]["declared_at"],
        )

    async def generate_regression_test(self, r: rq.GenerateRegressionTest) -> TestSaved:
        async with self.pool.acquire() as conn:
            test_id, created = await store.save_test(
                conn,
                test_name=r.test_name,
                category=r.category,
                description=r.description,
                test_code=r.test_code,
                expected_behavior=r.expected_behavior,
                discovered_from=r.discovered_from,
                metadata=r.metadata,
            )
        return TestSaved(id=test_id, test_name=r.test_name, created=created)

    async def _experiment(self, conn: asyncpg.Connection, experiment_id: str) -> Experiment:
        exp = await experiment_store.get(conn, experiment_id)
        if exp is None:
            raise FieldProblem("experimentId", f"no experiment {experiment_id!r}")
        return exp

    async def _view(self, conn: asyncpg.Connection, exp: Experiment) -> ExperimentView:
        tallies = (await experiment_store.tallies(conn, [exp.experiment_id])).get(exp.experiment_id, {})
        now = dt.datetime.fromtimestamp(await db.db_now(conn), dt.UTC)
        ev = evaluate_or_explain(exp, tallies, now)  # the estimates as of now; the leader alone moves the state
        return ExperimentView(
            experiment=exp,
            estimates=[ArmEstimate.model_validate(a, from_attributes=True) for a in ev.arms],
            comparisons=[ArmComparison.model_validate(c, from_attributes=True) for c in ev.comparisons],
            method=METHOD,
            evaluation_error=ev.error,
        )

    async def record_test_results(self, r: rq.RecordTestResults) -> TestResultsRecorded:
        try:
            report = junit.parse(r.junit_xml)
        except junit.JunitError as error:
            raise FieldProblem("junitXml", str(error)) from None
        run_id = (
            r.run_id
            or hashlib.sha256(
                b"\x00".join((r.commit.encode(), r.environment.encode(), r.junit_xml.encode()))
            ).hexdigest()[:32]
        )
        s = self.settings
        async with self.pool.acquire() as conn:
            run = await store.record_run(
                conn, run_id, r.commit, r.environment, report, s.pattern_resolve_passes, s.pattern_resolve_quiet_s
            )
            rows = await store.run_results(conn, run_id)  # a run sent again answers what was stored the first time
        metrics.REGRESSED_BUG_PATTERNS.inc(len(run.regressed))
        outcomes = Counter(row["outcome"] for row in rows if row["outcome"] is not None)
        return TestResultsRecorded(
            run_id=run_id,
            recorded=run.recorded,
            passed=outcomes["passed"],
            failed=outcomes["failed"],
            skipped=outcomes["skipped"],
            regressions=run.regressions,
            resolved_patterns=run.resolved,
            regressed_patterns=run.regressed,
            unknown_stubs=run.unknown[:MAX_NAMED],
            not_stubs=rows[0]["not_stubs"],
            recorded_at=rows[0]["recorded_at"],
        )

    async def resolve_bug_pattern(self, r: rq.ResolveBugPattern) -> BugPatternStatus:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.bug_pattern(conn, r.id, r.fingerprint)
            if row is None:
                named = ("id", str(r.id)) if r.id is not None else ("fingerprint", r.fingerprint)
                raise FieldProblem(named[0], f"no bug pattern has the {named[0]} {named[1]}")
            moved = await bug_pattern_store.transition(conn, [row["id"]], "resolved", f"operator:{r.by}", r.reason)
        return BugPatternStatus(
            id=row["id"],
            fingerprint=row["fingerprint"],
            status="resolved" if moved else row["status"],
            changed=bool(moved),
        )

    async def create_experiment(self, r: rq.CreateExperiment) -> ExperimentCreated:
        async with self.pool.acquire() as conn:  # the request is the definition (CreateExperiment is an ExperimentSpec)
            now = dt.datetime.fromtimestamp(await db.db_now(conn), dt.UTC)
            try:
                stored, created = await experiment_store.create(conn, r, Experiment.start(r, now))
            except (ValueError, experiment_store.TooManyRunning) as error:
                raise FieldProblem("experimentId", str(error)) from None
        return ExperimentCreated(experiment=stored, created=created)

    async def get_experiment(self, r: rq.GetExperiment) -> ExperimentView:
        async with self.pool.acquire() as conn:
            return await self._view(conn, await self._experiment(conn, r.experiment_id))

    async def list_experiments(self, r: rq.ListExperiments) -> PageOf:
        return await self._page(experiment_store.page, r.status, r)

    async def stop_experiment(self, r: rq.StopExperiment) -> ExperimentView:
        async with self.pool.acquire() as conn:
            exp = await self._experiment(conn, r.experiment_id)
            if exp.status == "running":
                stopped = exp.changed(
                    status="stopped", reason=f"stopped by an operator: {r.reason or 'no reason given'}"
                )
                if not await experiment_store.save(conn, exp.version, stopped):
                    raise FieldProblem("experimentId", "the experiment changed meanwhile; read it and retry")
                exp = stopped
            return await self._view(conn, exp)

    async def promote_experiment(self, r: rq.PromoteExperiment) -> ExperimentPromoted:
        async with self.pool.acquire() as conn, conn.transaction():
            exp = await self._experiment(conn, r.experiment_id)
            name = r.arm or exp.winner
            if exp.status == "promoted":
                if name not in (None, exp.promoted):
                    raise FieldProblem("arm", f"the experiment already promoted {exp.promoted!r}")
                return ExperimentPromoted(
                    experiment=exp, arm=exp.promoted or "", rules=[], weights=None, note="already promoted"
                )
            if name is None:
                raise FieldProblem("arm", f"the experiment has no winner ({exp.reason}); name the arm to promote")
            arm = exp.arm(name)
            if arm is None:
                raise FieldProblem("arm", f"no arm {name!r}; arms: {', '.join(a.name for a in exp.arms)}")
            if not r.force and arm.stopped is not None:
                raise FieldProblem(
                    "arm", f"{name!r} was stopped ({arm.stopped}); promote it only with force and a reason"
                )
            if not r.force and name != exp.winner:
                raise FieldProblem(
                    "arm",
                    f"{name!r} is not the winner (winner: {exp.winner or 'none'}; {exp.reason}); "
                    "promote it only with force and a reason",
                )
            strategy = arm.strategy
            scope: list[str | None] = [*exp.task_types] if exp.task_types else [None]
            rules, weights, source = [], None, f"experiment {exp.experiment_id}, arm {name}"
            if r.force:
                source += f", forced: {r.reason}"
            if strategy.kind in ("model", "manual"):
                for task_type in scope:
                    rules.append(
                        await rule_store.save_manual_rule(
                            conn,
                            pattern=strategy.pattern or ".*",
                            layer=strategy.layer.value if strategy.layer else "balanced",
                            model=strategy.model,
                            priority=PROMOTED_PRIORITY,
                            active=True,
                            reasoning=f"promoted from {source}",
                            metadata={"experiment": exp.experiment_id, "arm": name},
                            task_type=task_type,
                        )
                    )
                note = f"{len(rules)} manual rule(s) now route {strategy.model} at priority {PROMOTED_PRIORITY}"
            elif strategy.kind == "weights" and strategy.weights is not None:
                weights = strategy.weights.model_dump()
                await experiment_store.save_weights(conn, exp.task_types or ["*"], weights, source)
                note = "the learned rules use these weights from the next recompute (HEURISTICS_INTERVAL_S)"
            else:
                note = "the learned rule already routes these task types: nothing to change"
            forced = f" (forced: {r.reason})" if r.force else ""
            promoted = exp.changed(status="promoted", promoted=name, reason=f"promoted {name}{forced}: {note}")
            if not await experiment_store.save(conn, exp.version, promoted):
                raise FieldProblem("experimentId", "the experiment changed meanwhile; retry")
        return ExperimentPromoted(
            experiment=promoted,
            arm=name,
            rules=[RoutingHeuristic.model_validate(x) for x in rules],
            weights=weights,
            note=note,
        )
