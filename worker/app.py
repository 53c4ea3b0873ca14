"""The Faust application: wires the database, the ingest pipeline, timers and HTTP endpoints.

Faust owns the process lifecycle (signals, graceful shutdown), the web server and leader-only
timers; the ingest pipeline is one of its services (see worker/pipeline/ingest.py for why it
drives its own consumer).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import faust
import mode

from worker import metrics
from worker.kafka_client import faust_credentials
from worker.pipeline.experiments import ExperimentRunner
from worker.pipeline.heuristics_topic import HeuristicsTopic
from worker.pipeline.ingest import Ingest
from worker.pipeline.notifier import Notifier
from worker.pipeline.routing import RoutingPublisher
from worker.settings import Settings
from worker.store.breakers import prune_breakers, prune_health
from worker.store.db import redact_dsn, wait_for_pool
from worker.store.feedback import expire as expire_feedback
from worker.store.migrate import migrate
from worker.store.offsets import prune_seen
from worker.tools import http as tools_http
from worker.tools.service import ToolService

log = logging.getLogger(__name__)

POOL_CLOSE_S = 30.0  # how long stopping waits for the database connections to be released

PRUNE_INTERVAL_S = 300.0
PROGRESS_LOG_S = 30.0
OUTBOX_INTERVAL_S = 2.0  # dead letters decided inside a flush reach the topic within about this long


class Runtime(mode.Service):
    """Connects to PostgreSQL (waiting if needed), migrates, then starts ingestion.

    Start-up runs in the background so the web server answers /healthz (and a not-ready /readyz)
    while the database is still coming up.
    """

    def __init__(self, settings: Settings, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.ingest: Ingest | None = None
        self.topic: HeuristicsTopic | None = None
        self.routing: RoutingPublisher | None = None
        self.experiments: ExperimentRunner | None = None
        self.notifier: Notifier | None = None
        self.tools: ToolService | None = None
        self.phase = "starting"

    async def on_start(self) -> None:
        self.add_future(self._bring_up())

    async def _bring_up(self) -> None:
        self.phase = "waiting for PostgreSQL"
        log.info("connecting to %s", redact_dsn(self.settings.database_url))
        self.pool = await wait_for_pool(
            self.settings.database_url, idle_in_transaction_timeout_s=self.settings.idle_in_transaction_timeout_s
        )
        async with self.pool.acquire() as conn:
            applied = await migrate(conn)
        log.info("schema migrations applied: %s", ", ".join(applied) or "none pending")
        self.topic = HeuristicsTopic(self.settings)
        await self.topic.start()  # creates the worker's topics, the commands topic too
        lock = asyncio.Lock()  # one leader tick at a time: routing and experiments read and write the same rows
        self.routing = RoutingPublisher(self.settings, self.pool, self.topic, lock, loop=self.loop, beacon=self.beacon)
        self.experiments = ExperimentRunner(self.settings, self.pool, self.topic, lock)
        await self.add_runtime_dependency(self.routing)
        self.tools = await ToolService.connect(self.settings)
        self.notifier = Notifier(self.settings, self.pool)
        self.ingest = Ingest(self.settings, self.pool, loop=self.loop, beacon=self.beacon)
        self.phase = "joining the consumer group"
        await self.add_runtime_dependency(self.ingest)
        self.phase = "running"

    async def on_stop(self) -> None:
        if self.ingest is not None:
            await self.ingest.stop()  # final flush needs the pool: stop ingestion first
        if self.routing is not None:
            await self.routing.stop()  # waits for a tick in progress, which may still publish
        if self.topic is not None:
            await self.topic.stop()
        if self.tools is not None:
            await self.tools.close()
        if self.notifier is not None:
            await self.notifier.close()
        if self.pool is not None:
            try:  # a connection something failed to release must not keep the process alive
                await asyncio.wait_for(self.pool.close(), POOL_CLOSE_S)
            except TimeoutError:
                log.warning("database pool did not close within %.0f s; terminating its connections", POOL_CLOSE_S)
                self.pool.terminate()

    @property
    def ready(self) -> bool:
        return self.ingest is not None and self.ingest.ready


async def _logged(work, what: str) -> None:
    """A timer must survive a database or broker hiccup: log it, the next tick tries again."""
    try:
        await work
    except Exception as error:  # noqa: BLE001
        log.warning("%s failed (%s: %s); next tick retries", what, type(error).__name__, error)


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_replication_factor=1,
        topic_partitions=1,
        broker_credentials=faust_credentials(settings),
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout_s / 3),
    )
    runtime = Runtime(settings)
    app.service(runtime)  # type: ignore[arg-type]  # faust types it as a class; an instance is what it takes
    app.runtime = runtime  # type: ignore[attr-defined]

    tools_http.install(app, settings, lambda: runtime.tools)

    @app.page("/healthz")
    async def healthz(web, request):
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web, request):
        ingest = runtime.ingest
        ingestion = ingest.readiness() if ingest else {
            "not_ready_because": [runtime.phase],
            "partitions_offset_ahead": [],
            "failed_flush_attempts": None,
            "partitions_waiting_for_offsets": None,
            "stats": None,
        }  # fmt: skip
        body = {
            "ready": runtime.ready,
            "phase": runtime.phase,
            **ingestion,
            "leader": app.is_leader(),
            "heuristics_published": runtime.routing.published if runtime.routing else 0,
        }
        return web.json(body, status=200 if runtime.ready else 503)

    @app.page("/metrics")
    async def prometheus(web, request):
        if runtime.ingest is not None:
            runtime.ingest.update_lag()
        return web.bytes(metrics.exposition(), content_type="text/plain; version=0.0.4")

    last_logged: dict = {}

    @app.timer(PROGRESS_LOG_S)
    async def log_progress() -> None:
        """Counts only, as structured fields; nothing when idle."""
        if runtime.ingest is None:
            return
        summary = runtime.ingest.stats.summary()
        if summary["messages"] != last_logged.get("messages"):
            log.info(
                "ingest progress: %d messages, %d events counted, %d dead-lettered",
                summary["messages"],
                summary["counted"],
                summary["dead_lettered"],
                extra={"stats": summary},
            )
            last_logged.update(summary)

    @app.timer(PRUNE_INTERVAL_S, on_leader=True)
    async def forget_old_state() -> None:
        if runtime.pool is None:
            return
        async with runtime.pool.acquire() as conn:
            await prune_health(conn)
            await prune_breakers(conn, settings.heuristics_window_s)

    # the dedupe log holds the feedback join's calls: forgotten as often as the shorter window asks
    @app.timer(
        min(PRUNE_INTERVAL_S, max(1.0, min(settings.feedback_window_s, settings.dedupe_window_s) / 10)), on_leader=True
    )
    async def forget_old_events_and_feedback() -> None:
        """Events past their windows are forgotten (event ids past DEDUPE_WINDOW_S, calls also past
        FEEDBACK_WINDOW_S), and so are the scores of forgotten calls; feedback that waited the whole
        window for its call is dead-lettered."""
        if runtime.pool is None or runtime.ingest is None:
            return
        async with runtime.pool.acquire() as conn:
            removed = await prune_seen(conn)
            expired, forgotten = await expire_feedback(conn, runtime.ingest.writer.feedback_limits)
        if removed:
            log.info("dedupe log: forgot %d events past their windows", removed)
        if expired or forgotten:
            log.info(
                "feedback join: %d feedback waited %d s for a call that never came (dead-lettered as "
                "unknown_call); %d scores of forgotten calls forgotten",
                expired,
                settings.feedback_window_s,
                forgotten,
            )

    @app.timer(OUTBOX_INTERVAL_S)
    async def send_decided_dead_letters() -> None:
        if runtime.ingest is not None and runtime.pool is not None:
            await _logged(runtime.ingest.dead_letters.drain_outbox(), "dead-letter outbox")

    @app.timer(settings.heuristics_interval_s, on_leader=True)
    async def recompute_routing() -> None:
        if runtime.routing is not None and runtime.topic is not None and runtime.topic.started:
            await _logged(runtime.routing.recompute(), "routing recompute")

    @app.timer(settings.experiments_interval_s, on_leader=True)
    async def run_experiments() -> None:
        if runtime.experiments is not None and runtime.topic is not None and runtime.topic.started:
            await _logged(runtime.experiments.tick(), "experiments")

    @app.timer(settings.alert_webhook_interval_s, on_leader=True)
    async def send_notifications() -> None:
        if runtime.notifier is not None:
            await _logged(runtime.notifier.tick(), "webhook notifications")

    @app.timer(settings.degradation_check_s, on_leader=True)
    async def watch_for_degradation() -> None:
        if runtime.routing is not None and runtime.topic is not None and runtime.topic.started:
            await _logged(runtime.routing.check_degradation(), "degradation check")

    return app
