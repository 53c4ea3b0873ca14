"""Runs the routing engine on the group leader and publishes what it decides (Faust timers, on_leader).

Every `DEGRADATION_CHECK_S` the breakers are stepped over 1-second health rows (per model and
task type); a transition is stored, alerted, and the affected task types are recomputed at once.
Every `HEURISTICS_INTERVAL_S` every task type's learned rule is recomputed from the minute rows.
The decisions are worker.routing.engine's; this file reads rows, persists breakers and versions,
and publishes. Publication reads versions not yet published from PostgreSQL, so a publish that
fails, or a leader that dies mid-way, is completed by the next tick on any leader; the same
version published twice is the same record, so that is harmless. One record that cannot be
published (too large, say) is logged and skipped: it never holds back the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter

import asyncpg
import mode
import orjson

from worker import metrics
from worker.feedback.quality import windowed
from worker.notifications import webhook
from worker.pipeline import learning
from worker.pipeline.heuristics_topic import HeuristicsTopic
from worker.routing.breaker import Breaker
from worker.routing.contract import RoutingAlert, rule_key
from worker.routing.engine import Engine, affected_tasks, catalogue_changes
from worker.routing.evidence import ANY_TASK, QualityRow
from worker.routing.scoring import Weights, weights_for
from worker.settings import Settings
from worker.store import breakers as breaker_store
from worker.store import catalogue as catalogue_store
from worker.store import db
from worker.store import evidence as evidence_store
from worker.store import experiments as experiment_store
from worker.store import notifications as notification_store
from worker.store import rules as rule_store
from worker.throttle import Throttle

log = logging.getLogger(__name__)

STOP_WAIT_S = 20.0  # how long stopping waits for a routing tick in progress

HEALTH_SPAN_S = 60  # the longest detection window


class RoutingPublisher(mode.Service):
    """The group leader's routing: breakers checked, rules recomputed and published. It shares the
    heuristics topic and a lock with the experiment runner (worker/pipeline/experiments.py), which the
    app runs beside it."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, topic: HeuristicsTopic, lock: asyncio.Lock, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.pool = pool
        self.topic = topic
        self.lock = lock
        self.engine = Engine(settings.routing_policy, settings.breaker_rules, self.weights_for)
        self.baselines: dict | None = None  # latency per (model, scope), refreshed by every recompute
        self.catalogue_seen: tuple | None = None
        self.catalogue_read: dict[str, dict[str, str]] | None = None  # what the last recompute was given
        self.published = 0
        self.breadth_warning = Throttle(600.0)
        self.promoted_weights: dict[str, dict] = {}  # task type (or "*") -> weights promoted from an experiment

    async def on_start(self) -> None:
        if self.settings.routing_catalogue:
            async with self.pool.acquire() as conn:
                for d in self.settings.routing_catalogue:
                    try:
                        await catalogue_store.declare_model(
                            conn,
                            d.model_id,
                            d.layer.value,
                            d.task_types,
                            d.provider,
                            "setting",
                            self.settings.routing_max_models,
                        )
                    except catalogue_store.CatalogueFull as full:
                        log.warning("ROUTING_CATALOGUE: %s is not declared: %s", d.model_id, full)
            log.info("catalogue: declared %d models from ROUTING_CATALOGUE", len(self.settings.routing_catalogue))

    async def on_stop(self) -> None:
        # a tick in progress holds the lock, a database connection and needs the producer: let it end
        # first (bounded), or it would wait on a stopped producer and hold its connection for ever
        try:
            await asyncio.wait_for(self.lock.acquire(), STOP_WAIT_S)
        except TimeoutError:
            log.warning("a routing tick did not end within %.0f s; stopping without it", STOP_WAIT_S)

    def weights_for(self, task_type: str) -> Weights:
        s = self.settings
        return weights_for(task_type, s.routing_value_usd, s.routing_weights, self.promoted_weights)

    async def recompute(self, reason: str = "period") -> int:
        """Recompute every task type's learned rule; returns how many new versions were stored."""
        async with self.lock, self.pool.acquire() as conn:
            changed = await self._recompute(conn, reason)
            await self._publish_pending(conn)
        return changed

    async def _recompute(
        self,
        conn: asyncpg.Connection,
        reason: str,
        only: set[str] | None = None,
        catalogue: dict[str, dict[str, str]] | None = None,
    ) -> int:
        """`catalogue`: as the caller just read it (None: read it here)."""
        now = await db.db_now(conn)
        inputs = await learning.read_inputs(conn, self.settings, now, catalogue)
        export_quality(inputs.quality)
        await self._note_breadth(conn, now)
        self.catalogue_read = inputs.catalogue
        previous = await rule_store.learned_records(conn)
        self.promoted_weights = await experiment_store.weights(conn)
        decisions = await learning.decide(self.engine, inputs, previous, only)
        self.baselines = self.engine.baselines(now, inputs.minutes, inputs.breakers)
        for task_type, decision in sorted(decisions.items()):
            async with conn.transaction():
                current = await rule_store.learned_rule(conn, task_type)
                version = (current["version"] + 1) if current else 1
                record = learning.record_of(decision, version, self.settings, now)
                await rule_store.store_learned(
                    conn, current, task_type, record.model_dump(mode="json"), {"reason": reason}
                )
            log.info("routing %s v%d (%s): %s", task_type, version, reason, decision.reasoning)
        return len(decisions)

    async def _note_breadth(self, conn: asyncpg.Connection, now: float) -> None:
        s = self.settings
        task_types, widest = await evidence_store.breadth(conn, now, s.heuristics_window_s)
        over_tasks, over_models = max(0, task_types - s.routing_max_task_types), max(0, widest - s.routing_max_models)
        metrics.ROUTING_LEFT_OUT.labels("task_types").set(over_tasks)
        metrics.ROUTING_LEFT_OUT.labels("models").set(over_models)
        if (over_tasks or over_models) and self.breadth_warning.ready():
            log.warning(
                "routing bounds reached: %d task types (ROUTING_MAX_TASK_TYPES=%d), up to %d models in one "
                "task type (ROUTING_MAX_MODELS=%d); rules weigh the busiest only",
                task_types,
                s.routing_max_task_types,
                widest,
                s.routing_max_models,
            )

    async def check_degradation(self) -> None:
        """The fast path: step every breaker, store and alert transitions, recompute what they affect."""
        alerts: list[RoutingAlert] = []
        async with self.lock, self.pool.acquire() as conn:
            now = await db.db_now(conn)
            if self.baselines is None:  # a new leader: latency baselines come with a recompute
                await self._recompute(conn, "leader start")
            version = await catalogue_store.catalogue_version(conn)
            seconds = await evidence_store.second_rows(
                conn, now, HEALTH_SPAN_S, self.settings.routing_max_models, self.settings.routing_max_task_types
            )
            breakers = await breaker_store.breakers(conn)
            transitions = await asyncio.to_thread(self.engine.check, now, breakers, seconds, self.baselines or {})
            latest = dict(breakers) | {(t.breaker.model_id, t.breaker.scope): t.breaker for t in transitions}
            export_breakers(list(latest.values()), now)
            for t in transitions:
                b = t.breaker
                async with conn.transaction():  # the breaker's new state and its notification, or neither
                    await breaker_store.save_breaker(conn, b)
                    if t.alert in ("model_degraded", "model_recovered"):
                        task = None if b.scope == ANY_TASK else b.scope
                        incident = b.opened_at or b.since
                        await notification_store.enqueue(
                            conn, [webhook.model_breaker(t.alert, b.model_id, task, b.reason, incident, now)]
                        )
                alerts.append(
                    RoutingAlert(
                        kind=t.alert,
                        model_id=b.model_id,
                        reason=b.reason,
                        task_type=None if b.scope == ANY_TASK else b.scope,
                        at=dt.datetime.fromtimestamp(now, dt.UTC),
                    )
                )
            declared = self.catalogue_seen is not None and version != self.catalogue_seen
            if transitions or declared:  # a declared model is explored at once, where it was declared
                only: set[str] | None = affected_tasks(transitions)
                catalogue = None
                if declared:  # only the task types whose declared models changed: not every rule
                    catalogue = await self._read_catalogue(conn)
                    changed = catalogue_changes(self.catalogue_read, catalogue)
                    only = None if changed is None or only is None else only | changed
                if only is None or only:
                    await self._recompute(conn, "degradation" if transitions else "catalogue", only, catalogue)
            self.catalogue_seen = version
            await self._publish_pending(conn)
        for alert in alerts:
            log.warning(
                "routing alert: %s %s%s: %s",
                alert.kind,
                alert.model_id,
                f" ({alert.task_type})" if alert.task_type else "",
                alert.reason,
            )
            metrics.ROUTING_ALERTS.labels(alert.kind).inc()
            await self.topic.alert(alert.model_id.encode(), alert.model_dump_json().encode())

    async def _read_catalogue(self, conn: asyncpg.Connection) -> dict[str, dict[str, str]]:
        return await catalogue_store.catalogue(
            conn, self.settings.heuristics_catalogue_seen_s, self.settings.routing_max_models
        )

    async def _publish_pending(self, conn: asyncpg.Connection) -> None:
        for row in await rule_store.unpublished(conn):
            record = orjson.loads(row["heuristic"])
            what = f"{record.get('heuristic_id')} v{row['version']}"
            if not await self.topic.publish(rule_key(record), record, what):
                continue
            await rule_store.mark_published(conn, row["id"], row["version"], self.topic.worker_id)
            self.published += 1
            metrics.HEURISTICS_PUBLISHED.inc()


def export_quality(rows: list[QualityRow]) -> None:
    """The window's quality per model and task type on /metrics (a bounded number of series)."""
    metrics.MODEL_QUALITY.clear()
    summary = windowed(
        ((r.model_id, r.task_type, r.name, r.count, r.score_sum) for r in rows), metrics.MODEL_QUALITY_SERIES
    )
    for model, task, q in summary:
        label = metrics.model_label(model)
        for bound, value in (("mean", q.mean), ("low", q.low), ("high", q.high), ("feedback", q.feedback)):
            metrics.MODEL_QUALITY.labels(label, task, q.name, bound).set(value)


def export_breakers(breakers: list[Breaker], now: float) -> None:
    """How many breakers of each model are open or half-open, on /metrics, stamped with this check's time
    (alert rules keep the series of the pod that checked last: the leader)."""
    metrics.MODELS_HELD_BACK.clear()
    held: Counter[tuple[str, str]] = Counter(
        (metrics.model_label(b.model_id), b.state) for b in breakers if b.state != "closed"
    )
    for (label, state), count in held.items():
        metrics.MODELS_HELD_BACK.labels(label, state).set(count)
    metrics.ROUTING_CHECKED.set(now)
