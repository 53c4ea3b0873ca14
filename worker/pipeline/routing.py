"""Computes routing heuristics and publishes them; run by Faust timers on the group leader only.

Every `HEURISTICS_INTERVAL_S` the learned rule of each task type is recomputed from the windowed
aggregates and, when the decision changed enough (worker.heuristics.worth_publishing), stored as
the next version. Every `DEGRADATION_CHECK_S` the fast path looks at 1-second health buckets:
a model that degrades is excluded at once (new versions for its task types, and an alert), and
restored when it recovers. Publication reads versions not yet published from PostgreSQL, so a
publish that fails, or a leader that dies mid-way, is completed by the next tick on any leader;
the same version published twice is the same record, so that is harmless.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from dataclasses import replace

import asyncpg
import mode
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic

from worker import degradation, metrics
from worker.heuristics import Decision, decide, worth_publishing
from worker.routing_contract import RoutingAlert
from worker.scoring import Weights
from worker.settings import Settings
from worker.store import routing as store
from worker.kafka_client import client_options
from worker.topics import create_missing

log = logging.getLogger(__name__)


def learned_record(d: Decision, version: int, window_s: int) -> dict:
    return {"schema_version": 1, "heuristic_id": f"learned:{d.task_type}", "task_type": d.task_type, "pattern": None,
            "preferred_layer": d.preferred_layer, "preferred_model": d.preferred_model,
            "fallback_models": d.fallback_models, "weights": d.weights, "priority": 0, "active": True,
            "version": version, "computed_at": dt.datetime.now(dt.UTC).isoformat(), "window_s": window_s,
            "evidence": d.evidence, "excluded": d.excluded, "reasoning": d.reasoning}


def topic_key(record: dict) -> bytes:
    return (record["task_type"] if record["task_type"] else f"rule:{record['heuristic_id'].split(':', 1)[1]}").encode()


class RoutingPublisher(mode.Service):
    def __init__(self, settings: Settings, pool: asyncpg.Pool, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.pool = pool
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.lock = asyncio.Lock()
        self.producer: AIOKafkaProducer | None = None
        self.rules = degradation.Rules(
            settings.degradation_failure_rate, settings.degradation_recover_rate, settings.degradation_latency_factor,
            settings.degradation_min_calls, settings.degradation_cooldown_s,
        )
        self.published = 0

    async def on_start(self) -> None:
        await self._ensure_topics()
        self.producer = AIOKafkaProducer(**client_options(self.settings),
                                         enable_idempotence=True)
        await self.producer.start()

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def _ensure_topics(self) -> None:
        """The heuristics topic must be compacted (latest version per key); create the worker's topics if missing."""
        s = self.settings
        rf = s.topic_replication_factor
        await create_missing(s, [
            NewTopic(s.topic_heuristics, 1, rf, topic_configs={"cleanup.policy": "compact"}),
            NewTopic(s.topic_alerts, 1, rf), NewTopic(s.topic_dlq, 1, rf),
            NewTopic(s.topic_tool_commands, s.tool_commands_partitions, rf)])

    def weights_for(self, task_type: str) -> Weights:
        return replace(Weights(), **self.settings.routing_weights.get(task_type, {}))

    async def recompute(self, reason: str = "period") -> int:
        """Recompute every task type's learned rule; returns how many new versions were stored."""
        s = self.settings
        async with self.lock, self.pool.acquire() as conn:
            excluded = {m: r for m, (r, _) in (await store.exclusions(conn)).items()}
            evidence = await store.window_evidence(conn, s.heuristics_window_s)
            changed = 0
            for task_type, models in sorted(evidence.items()):
                decision = decide(task_type, models, excluded, self.weights_for(task_type), window_s=s.heuristics_window_s,
                                  min_calls=s.heuristics_min_calls, exploration=s.heuristics_exploration)
                if decision is None:
                    continue
                async with conn.transaction():
                    current = await store.learned_rule(conn, task_type)
                    previous = orjson.loads(current["heuristic"]) if current and current["heuristic"] else None
                    if not worth_publishing(previous, decision, s.heuristics_weight_change):
                        continue
                    version = (current["version"] + 1) if current else 1
                    record = learned_record(decision, version, s.heuristics_window_s)
                    await store.store_learned(conn, current, task_type, record, {"reason": reason})
                    changed += 1
                    log.info("routing %s v%d (%s): %s", task_type, version, reason, decision.reasoning)
            await self._publish_pending(conn)
        return changed

    async def check_degradation(self) -> None:
        """The fast path: exclude degraded models and restore recovered ones, then republish at once."""
        s = self.settings
        now = dt.datetime.now(dt.UTC)
        events: list[RoutingAlert] = []
        async with self.lock, self.pool.acquire() as conn:
            windows = await store.health_windows(conn)
            baselines = await store.baseline_p95(conn, s.heuristics_window_s)
            current = await store.exclusions(conn)
            restored_at = await store.restorations(conn)
            for model_id, model_windows in sorted(windows.items()):
                if model_id in current:
                    since = (now - current[model_id][1]).total_seconds()
                    if degradation.recovered(model_windows, baselines.get(model_id), since, self.rules):
                        if await store.restore(conn, model_id):
                            events.append(RoutingAlert(kind="model_recovered", model_id=model_id, at=now,
                                                       reason=f"healthy again after {since:.0f} s excluded"))
                    continue
                observed = (now - restored_at[model_id]).total_seconds() if model_id in restored_at else float("inf")
                reason = degradation.degraded(model_windows, baselines.get(model_id), self.rules, observed)
                if reason and await store.exclude(conn, model_id, reason):
                    events.append(RoutingAlert(kind="model_degraded", model_id=model_id, reason=reason, at=now))
            if not events:
                await self._publish_pending(conn)  # manual rules and earlier failed publications
        if events:
            for alert in events:
                log.warning("routing alert: %s %s: %s", alert.kind, alert.model_id, alert.reason)
                metrics.ROUTING_ALERTS.labels(alert.kind).inc()
                await self.producer.send_and_wait(s.topic_alerts, key=alert.model_id.encode(),
                                                  value=alert.model_dump_json().encode())
            await self.recompute(reason="degradation")

    async def _publish_pending(self, conn: asyncpg.Connection) -> None:
        for row in await store.unpublished(conn):
            record = orjson.loads(row["heuristic"])
            await self.producer.send_and_wait(self.settings.topic_heuristics, key=topic_key(record),
                                              value=orjson.dumps(record),
                                              headers=[("publisher", self.worker_id.encode())])
            await store.mark_published(conn, row["id"], row["version"], self.worker_id)
            self.published += 1
            metrics.HEURISTICS_PUBLISHED.inc()
