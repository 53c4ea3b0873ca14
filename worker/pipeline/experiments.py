"""Runs the experiments on the group leader: every EXPERIMENTS_INTERVAL_S, each running experiment
is evaluated (worker/experiments/evaluate.py) on its arms' sums, a `weights` arm gets its own learned
rule per task type, and every version not yet published goes to the heuristics topic.

Like the rules, a record is published from PostgreSQL's versions, so a tick that dies half-way is
completed by the next one on any leader; a version is saved only over the one it was computed
from, so an operator's stop or promotion in between is never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import replace

import asyncpg
import orjson

from worker import metrics
from worker.experiments.contract import Experiment, experiment_key
from worker.experiments.evaluate import evaluate
from worker.notifications import webhook
from worker.pipeline import learning
from worker.pipeline.heuristics_topic import HeuristicsTopic
from worker.routing.engine import Engine
from worker.routing.scoring import Weights
from worker.settings import Settings
from worker.store import db
from worker.store import experiments as store
from worker.store import notifications as notification_store
from worker.throttle import Throttle

log = logging.getLogger(__name__)


class ExperimentRunner:
    """The group leader's experiments: each looked at, its `weights` arms' rules learned, records published.
    It shares the heuristics topic and a lock with the routing publisher (worker/pipeline/routing.py)."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, topic: HeuristicsTopic, lock: asyncio.Lock):
        self.settings, self.pool, self.topic, self.lock = settings, pool, topic, lock
        self.shown: set[tuple[str, str]] = set()  # (experiment, arm) label pairs on /metrics
        self.failing = Throttle()

    async def tick(self) -> None:
        async with self.lock, self.pool.acquire() as conn:
            now = await db.db_now(conn)
            running = await store.running(conn)
            tallies = await store.tallies(conn, [e.experiment_id for e in running]) if running else {}
            for exp in running:
                try:  # one experiment's failure must not keep the others (and their guardrails) from running
                    routed = await self._routes(conn, exp, now)
                    evaluation = await asyncio.to_thread(
                        evaluate, routed, tallies.get(exp.experiment_id, {}), dt.datetime.fromtimestamp(now, dt.UTC)
                    )
                except Exception as error:  # noqa: BLE001 - logged and counted per experiment; the others go on
                    metrics.EXPERIMENT_EVALUATION_ERRORS.labels(exp.experiment_id).inc()
                    if self.failing.ready():
                        log.error(
                            "experiment %s could not be evaluated (%s: %s); the other experiments carry on",
                            exp.experiment_id,
                            type(error).__name__,
                            error,
                        )
                    continue
                new = evaluation.experiment
                before = {a.name for a in exp.arms if a.stopped}
                stopped = [a for a in new.arms if a.stopped and a.name not in before]
                saved = False
                if new is not exp:
                    async with conn.transaction():  # the new state and its notifications, or neither
                        saved = await store.save(conn, exp.version, new)
                        if saved:
                            await notification_store.enqueue(conn, notifications_of(new, stopped, now))
                if saved:
                    log.info("experiment %s v%d: %s (%s)", new.experiment_id, new.version, new.status, new.reason)
                    if new.status != "running":
                        metrics.EXPERIMENTS_ENDED.labels(new.status).inc()
                    for state in stopped:  # counted once: the save above succeeds for one leader only
                        metrics.EXPERIMENT_ARMS_STOPPED.labels(new.experiment_id, state.name).inc()
                for arm in evaluation.arms:
                    metrics.EXPERIMENT_ARM_CALLS.labels(exp.experiment_id, arm.arm).set(arm.calls)
                    for bound, value in (("estimate", arm.value), ("low", arm.low), ("high", arm.high)):
                        if value is not None and math.isfinite(value):
                            metrics.EXPERIMENT_ARM_METRIC.labels(exp.experiment_id, arm.arm, bound).set(value)
            self._forget_labels({(e.experiment_id, a.name) for e in running for a in e.arms})
            await self.publish_pending(conn)

    def _forget_labels(self, current: set[tuple[str, str]]) -> None:
        for gone in self.shown - current:
            metrics.EXPERIMENT_ARM_CALLS.remove(*gone)
            for bound in ("estimate", "low", "high"):
                with contextlib.suppress(KeyError):
                    metrics.EXPERIMENT_ARM_METRIC.remove(*gone, bound)
        self.shown = current

    async def _routes(self, conn: asyncpg.Connection, exp: Experiment, now: float) -> Experiment:
        """The experiment with each `weights` arm's own learned rules, recomputed like the main ones."""
        weighted = [a for a in exp.arms if a.strategy.kind == "weights" and a.stopped is None]
        if not weighted:
            return exp
        s = self.settings
        inputs = await learning.read_inputs(conn, s, now)
        arms, changed = list(exp.arms), False
        for i, arm in enumerate(arms):
            if arm not in weighted or arm.strategy.weights is None:
                continue
            weights = replace(Weights(value_usd=s.routing_value_usd), **arm.strategy.weights.model_dump())
            engine = Engine(s.routing_policy, s.breaker_rules, _constant(weights))
            previous = {t: r.model_dump(mode="json") for t, r in arm.routes.items()}
            decisions = await learning.decide(engine, inputs, previous, exp.task_types)
            if not decisions:
                continue
            routes = dict(arm.routes)
            for task, decision in decisions.items():
                version = routes[task].version + 1 if task in routes else 1
                record = learning.record_of(decision, version, s, now)
                routes[task] = record.model_copy(
                    update={"heuristic_id": f"experiment:{exp.experiment_id}:{arm.name}:{task}"}
                )
            arms[i], changed = arm.model_copy(update={"routes": routes}), True
        return exp.changed(arms=arms) if changed else exp

    async def publish_pending(self, conn: asyncpg.Connection) -> None:
        for row in await store.unpublished(conn):
            key, what = experiment_key(row["experiment_id"]), f"experiment {row['experiment_id']} v{row['version']}"
            if await self.topic.publish(key.encode(), orjson.loads(row["record"]), what):
                await store.mark_published(conn, row["experiment_id"], row["version"])
        # ended long enough ago: a tombstone, so that routers forget it (the row stays for the tools)
        for experiment_id in await store.ended_on_topic(conn, self.settings.experiment_retention_s):
            tombstone = experiment_key(experiment_id).encode()
            if await self.topic.publish(tombstone, None, f"the tombstone of experiment {experiment_id}"):
                await store.mark_removed(conn, experiment_id)


def _constant(weights: Weights) -> Callable[[str], Weights]:
    return lambda _task_type: weights


def notifications_of(exp: Experiment, stopped: list, now: float) -> list[webhook.Notification]:
    """The experiment's end, and each arm a guardrail stopped, for the webhook."""
    out = [
        webhook.experiment(
            "experiment_arm_stopped", exp.experiment_id, f"arm {a.name} stopped: {a.stopped}", now, a.name
        )
        for a in stopped
    ]
    if exp.status != "running":
        won = f", winner {exp.winner}" if exp.winner else ""
        out.append(
            webhook.experiment(f"experiment_{exp.status}", exp.experiment_id, f"{exp.status}{won} ({exp.reason})", now)
        )
    return out
