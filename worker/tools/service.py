"""The tools themselves, shared by the HTTP routes and the MCP server.

Reads go to PostgreSQL. Writes that change aggregates (metrics, bug pattern occurrences, model
performance) become commands on the commands topic and are applied by the ingest pipeline's
flush, exactly once. Rows that are not aggregates (a manual routing rule, a regression test) are
written directly: their version or name makes the write idempotent, and the caller gets the id.
"""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from worker.calls import commands
from worker.kafka_client import client_options
from worker.reporting.report import build_report
from worker.settings import Settings
from worker.store import routing as routing_store
from worker.store import tools as store
from worker.store.db import create_pool
from worker.tools import requests as rq
from worker.tools.analysis import analyse
from worker.tools.responses import Accepted, Analysis, ModelDeclared, PageOf, TestSaved

SEND_TIMEOUT_S = 10.0
COMMAND_MAX_BYTES = 512 * 1024  # well under the broker's message limit: a command is refused, never retried in vain


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
            report = await build_report(conn, r.task_type, max_models_per_task=r.max_models)
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
                return await routing_store.save_manual_rule(
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
            rows = await routing_store.declare_model(conn, r.model_id, r.layer.value, r.task_types, r.provider, "tool")
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
