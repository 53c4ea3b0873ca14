"""A gateway that obeys the published rules: each request is routed by the router client
(RoutingTable.pick with the request id and the models it can reach), the simulated model
answers, and the call is reported to Kafka as a call-completed or call-failed event, with the
experiment and arm the router put it in."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer

from worker.gateway.router import RoutingTable
from worker.settings import Settings


@dataclass
class ObeyingGateway:
    settings: Settings
    table: RoutingTable
    models: dict[str, tuple[str, float]]  # model -> (layer, success rate); change a rate to start an incident
    task_types: tuple[str, ...] = ("coding", "chat")
    rate: float = 100.0  # requests per second
    seed: int = 5
    calls: list[tuple[float, str, str, bool]] = field(default_factory=list)  # (monotonic t, task, model, ok)
    tagged: Counter = field(default_factory=Counter)  # (experiment_id, arm) -> calls sent with that tag
    routes: list[tuple[float, str, str | None, str | None]] = field(default_factory=list)  # (t, model, rule, arm)

    async def run(self, stop: asyncio.Event) -> None:
        rng = random.Random(self.seed)
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap_servers, linger_ms=5)
        await producer.start()
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                tick = loop.time()
                for _ in range(int(self.rate / 10)):
                    await self._one(producer, rng, tick)
                await asyncio.sleep(max(0.0, 0.1 - (loop.time() - tick)))
        finally:
            await producer.flush()
            await producer.stop()

    async def _one(self, producer: AIOKafkaProducer, rng: random.Random, tick: float) -> None:
        task = rng.choice(self.task_types)
        request_id = f"req_{uuid.UUID(int=rng.getrandbits(128))}"
        route = self.table.pick(task, key=request_id, candidates=list(self.models))
        model = route.model
        if model is None:  # no rule yet, or none of its models may be used: the gateway's own default
            rule = self.table.choose(task)
            model = rng.choice(sorted(m for m in self.models if rule is None or m not in rule.excluded))
        layer, success = self.models[model]
        ok = rng.random() < success
        event = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "request_id": request_id,
            "model_id": model,
            "layer": layer,
            "task_type": task,
            "latency_ms": round(rng.uniform(400, 600), 1),
            "cost_usd": 0.001,
            **route.event_fields(),
        }
        if route.experiment_id is not None:
            self.tagged[(route.experiment_id, route.arm)] += 1
        if not ok:
            event |= {
                "error_type": "api",
                "error_message": "Upstream returned HTTP 502",
                "category": "api",
                "http_status": 502,
            }
        topic = self.settings.topic_calls_completed if ok else self.settings.topic_calls_failed
        await producer.send(topic, orjson.dumps(event))
        self.calls.append((tick, task, model, ok))
        self.routes.append((tick, model, route.rule_id, route.arm))

    def calls_to(self, model: str, since: float, until: float = float("inf")) -> Counter:
        return Counter(m for t, _, m, _ in self.calls if since <= t < until and m == model)
