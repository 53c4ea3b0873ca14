"""What both the routing publisher and the experiment runner do to learn rules: read the evidence the
engine needs (minute and feedback rows, breakers, the catalogue), run Engine.recompute off the event
loop, and build each decision's record. One place, so a `weights` arm's rules are computed exactly
like the main ones."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import asyncpg

from worker.routing.breaker import Breaker
from worker.routing.contract import RoutingHeuristic
from worker.routing.engine import BreakerKey, Engine
from worker.routing.evidence import MinuteRow, QualityRow
from worker.routing.heuristics import Decision
from worker.settings import Settings
from worker.store import breakers as breaker_store
from worker.store import catalogue as catalogue_store
from worker.store import evidence as evidence_store


@dataclass(frozen=True)
class Inputs:
    now: float
    minutes: list[MinuteRow]
    quality: list[QualityRow]
    breakers: dict[BreakerKey, Breaker]
    catalogue: dict[str, dict[str, str]]


async def read_inputs(
    conn: asyncpg.Connection, settings: Settings, now: float, catalogue: dict[str, dict[str, str]] | None = None
) -> Inputs:
    """`catalogue`: as the caller just read it (None: read it here)."""
    s = settings
    minutes = await evidence_store.minute_rows(
        conn, now, s.heuristics_window_s, s.routing_max_models, s.routing_max_task_types
    )
    quality = await evidence_store.quality_rows(
        conn, now, s.heuristics_window_s, s.routing_max_models, s.routing_max_task_types
    )
    breakers = await breaker_store.breakers(conn)
    if catalogue is None:
        catalogue = await catalogue_store.catalogue(conn, s.heuristics_catalogue_seen_s, s.routing_max_models)
    return Inputs(now, minutes, quality, breakers, catalogue)


async def decide(
    engine: Engine, inputs: Inputs, previous: Mapping[str, dict | None], only: Iterable[str] | None
) -> dict[str, Decision]:
    """Off the event loop: the web server, the heartbeats and ingestion keep answering meanwhile."""
    i = inputs
    return await asyncio.to_thread(
        engine.recompute, i.now, i.minutes, i.breakers, i.catalogue, previous, only, i.quality
    )


def record_of(decision: Decision, version: int, settings: Settings, now: float) -> RoutingHeuristic:
    return RoutingHeuristic.learned(
        decision, version, settings.heuristics_window_s, dt.datetime.fromtimestamp(now, dt.UTC)
    )
